"""Hand datasets as Hugging Face `datasets`: the shared row schema, one loader per public set, streaming."""

from clip_hand3d.data.features import (
    HAND_FEATURES,
    HAND_FEATURES_WITH_MESH,
    HandDatasetError,
    MissingDatasetFilesError,
)
from clip_hand3d.data.freihand import load_freihand
from clip_hand3d.data.real_world import load_real_world
from clip_hand3d.data.rhd import load_rhd
from clip_hand3d.data.stb import load_stb
from clip_hand3d.data.streaming import (
    iter_hand_rows,
    load_freihand_streaming,
    load_image_folder_stream,
    load_real_world_streaming,
    load_rhd_streaming,
    load_stb_streaming,
)

__all__ = [
    "HAND_FEATURES",
    "HAND_FEATURES_WITH_MESH",
    "HandDatasetError",
    "MissingDatasetFilesError",
    "iter_hand_rows",
    "load_freihand",
    "load_freihand_streaming",
    "load_image_folder_stream",
    "load_real_world",
    "load_real_world_streaming",
    "load_rhd",
    "load_rhd_streaming",
    "load_stb",
    "load_stb_streaming",
]
