"""Streaming versions of the loaders: `datasets.IterableDataset`s that read the files while iterating.

`load_*_streaming` yield the same rows, with the same features, as the map-style `load_*` loaders (nothing is
cached on disk: each pass reads the annotation files again). `load_image_folder_stream` streams the unlabeled
images of a folder tree for contrastive pre-training. Missing files and bad arguments raise when the dataset
is created; rows that fail `validate_hand_row` are skipped and counted while iterating, as in the loaders.
"""

import os
from collections.abc import Iterator
from pathlib import Path

from datasets import Features, Image, IterableDataset

from clip_hand3d.data.features import HAND_FEATURES, HAND_FEATURES_WITH_MESH
from clip_hand3d.data.freihand import check_freihand_inputs, iter_freihand_rows
from clip_hand3d.data.real_world import check_real_world_inputs, iter_real_world_rows
from clip_hand3d.data.rhd import MIN_MASK_PIXELS, MIN_VISIBLE_KEYPOINTS, check_rhd_inputs, iter_rhd_rows
from clip_hand3d.data.stb import check_stb_inputs, iter_stb_rows

# The row generators by dataset name, for `iter_hand_rows`.
HAND_ROW_GENERATORS = {
    "freihand": iter_freihand_rows,
    "rhd": iter_rhd_rows,
    "stb": iter_stb_rows,
    "real_world": iter_real_world_rows,
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
IMAGE_FOLDER_FEATURES = Features({"image": Image()})


def iter_hand_rows(dataset_name: str, root: str | os.PathLike, **options) -> Iterator[dict]:
    """The rows of the dataset `dataset_name` ("freihand", "rhd", "stb", "real_world") under `root`, one by one.

    `options` are the keyword arguments of that dataset's loader (e.g. `split="evaluation"`).
    """
    if dataset_name not in HAND_ROW_GENERATORS:
        raise ValueError(f"unknown hand dataset {dataset_name!r}; known: {sorted(HAND_ROW_GENERATORS)}")
    return HAND_ROW_GENERATORS[dataset_name](root, **options)


def load_freihand_streaming(
    root: str | os.PathLike,
    split: str = "training",
    num_colour_versions: int | None = None,
    with_vertices: bool = True,
) -> IterableDataset:
    """`clip_hand3d.data.freihand.load_freihand` as an `IterableDataset` (same arguments and rows)."""
    check_freihand_inputs(root, split, num_colour_versions, with_vertices)
    return IterableDataset.from_generator(
        iter_freihand_rows,
        features=HAND_FEATURES_WITH_MESH if with_vertices else HAND_FEATURES,
        gen_kwargs={
            "root": str(root),
            "split": split,
            "num_colour_versions": num_colour_versions,
            "with_vertices": with_vertices,
        },
    )


def load_rhd_streaming(
    root: str | os.PathLike,
    split: str = "training",
    hand_selection: str = "visible",
    min_visible_keypoints: int = MIN_VISIBLE_KEYPOINTS,
    min_mask_pixels: int = MIN_MASK_PIXELS,
) -> IterableDataset:
    """`clip_hand3d.data.rhd.load_rhd` as an `IterableDataset` (same arguments and rows)."""
    check_rhd_inputs(root, split, hand_selection)
    return IterableDataset.from_generator(
        iter_rhd_rows,
        features=HAND_FEATURES,
        gen_kwargs={
            "root": str(root),
            "split": split,
            "hand_selection": hand_selection,
            "min_visible_keypoints": min_visible_keypoints,
            "min_mask_pixels": min_mask_pixels,
        },
    )


def load_stb_streaming(root: str | os.PathLike, split: str = "training") -> IterableDataset:
    """`clip_hand3d.data.stb.load_stb` as an `IterableDataset` (same arguments and rows)."""
    check_stb_inputs(root, split)
    return IterableDataset.from_generator(
        iter_stb_rows, features=HAND_FEATURES, gen_kwargs={"root": str(root), "split": split}
    )


def load_real_world_streaming(root: str | os.PathLike) -> IterableDataset:
    """`clip_hand3d.data.real_world.load_real_world` as an `IterableDataset` (same rows)."""
    check_real_world_inputs(root)
    return IterableDataset.from_generator(iter_real_world_rows, features=HAND_FEATURES, gen_kwargs={"root": str(root)})


def iter_image_paths(root: str | os.PathLike) -> Iterator[Path]:
    """The image files (.jpg, .jpeg, .png, any case) under `root`, recursively, in sorted order."""
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for name in sorted(files):
            if name.lower().endswith(IMAGE_EXTENSIONS):
                yield Path(folder) / name


def _image_rows(root: str) -> Iterator[dict]:
    for path in iter_image_paths(root):
        yield {"image": str(path)}


def load_image_folder_stream(root: str | os.PathLike) -> IterableDataset:
    """The images under `root` (recursive, .jpg/.jpeg/.png) as an `IterableDataset` of rows {"image"}.

    For contrastive pre-training on unlabeled images. The folder is walked while iterating, so a pass starts
    at once on large folders.

    Raises:
        NotADirectoryError: `root` is not a folder.
        FileNotFoundError: `root` holds no image.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise NotADirectoryError(f"image folder {root} does not exist or is not a folder")
    if next(iter_image_paths(root), None) is None:
        raise FileNotFoundError(f"no {'/'.join(IMAGE_EXTENSIONS)} images under {root}")
    return IterableDataset.from_generator(_image_rows, features=IMAGE_FOLDER_FEATURES, gen_kwargs={"root": str(root)})
