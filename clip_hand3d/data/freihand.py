"""FreiHAND (Zimmermann et al., ICCV 2019) as a Hugging Face `datasets.Dataset`.

Layout of the release (`FreiHAND_pub_v2`, with the evaluation annotations released later added beside it):

    training/rgb/%08d.jpg     130,240 images: 4 colour versions of the 32,560 labelled frames
    training/mask/%08d.jpg    32,560 hand masks, one per labelled frame (optional: rows get mask None without)
    training_K.json           list of 3x3 intrinsics, pixels
    training_xyz.json         list of 21x3 joints, metres, camera frame, FreiHAND order
    training_verts.json       list of 778x3 MANO vertices, metres, camera frame
    training_scale.json       list of floats: length of bone 9-10 (middle MCP to PIP), metres
    training_mano.json        MANO parameters (not read)
    evaluation/rgb/%08d.jpg   3,960 images, one version
    evaluation_K.json, evaluation_xyz.json, evaluation_verts.json, evaluation_scale.json

Image `i` of the training split shows label `i mod 32,560` (the colour versions are stored one after the
other). All hands are right hands.
"""

import json
import logging
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from datasets import Dataset

from clip_hand3d.data.features import (
    HAND_FEATURES,
    HAND_FEATURES_WITH_MESH,
    HandDatasetError,
    RowCounts,
    build_hand_dataset,
    check_required_files,
    make_hand_row,
    resolve_root,
)
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, NUM_VERTICES
from clip_hand3d.validation import check_choice

logger = logging.getLogger(__name__)

FREIHAND_RELEASE_FOLDER = "FreiHAND_pub_v2"
FREIHAND_SPLITS = ("training", "evaluation")
# Colour versions of each labelled frame in the release, per split.
FREIHAND_COLOUR_VERSIONS = {"training": 4, "evaluation": 1}
FREIHAND_IMAGE_NAME = "{index:08d}.jpg"


def _check_colour_versions(split: str, num_colour_versions: int | None) -> None:
    check_choice("FreiHAND split", split, FREIHAND_SPLITS)
    available = FREIHAND_COLOUR_VERSIONS[split]
    if num_colour_versions is not None and not 1 <= num_colour_versions <= available:
        raise ValueError(
            f"FreiHAND {split} has {available} colour version(s), got num_colour_versions={num_colour_versions}"
        )


def freihand_paths(root: str | os.PathLike, split: str, with_vertices: bool = True) -> dict[str, Path]:
    """The files FreiHAND's `split` needs, by role: "K", "xyz", "scale", "verts" (with vertices), "rgb", "mask".

    `root` is the `FreiHAND_pub_v2` folder (holding `training/` and the JSON files) or its parent.
    """
    check_choice("FreiHAND split", split, FREIHAND_SPLITS)
    folder, _ = resolve_root(root, FREIHAND_RELEASE_FOLDER, f"{split}_xyz.json")
    paths = {role: folder / f"{split}_{role}.json" for role in ("K", "xyz", "scale")}
    if with_vertices:
        paths["verts"] = folder / f"{split}_verts.json"
    paths["rgb"] = folder / split / "rgb"
    paths["mask"] = folder / split / "mask"
    return paths


def check_freihand_inputs(
    root: str | os.PathLike,
    split: str = "training",
    num_colour_versions: int | None = None,
    with_vertices: bool = True,
) -> dict[str, Path]:
    """Check the arguments of `load_freihand` and that the required files exist; returns `freihand_paths`."""
    _check_colour_versions(split, num_colour_versions)
    paths = freihand_paths(root, split, with_vertices)
    _, candidates = resolve_root(root, FREIHAND_RELEASE_FOLDER, f"{split}_xyz.json")
    required = [path for role, path in paths.items() if role != "mask"]
    check_required_files(f"FreiHAND {split}", required, looked_in=candidates)
    return paths


def _read_json_array(path: Path, entry_shape: tuple[int, ...]) -> np.ndarray:
    """The list in the JSON file `path` as an array (N, *entry_shape), float64; a clear error otherwise."""
    with open(path, encoding="utf-8") as file:
        try:
            entries = json.load(file)
        except json.JSONDecodeError as error:
            raise HandDatasetError(f"{path} is not valid JSON: {error}") from None
    try:
        array = np.asarray(entries, dtype=np.float64)
    except (TypeError, ValueError):
        raise HandDatasetError(
            f"{path}: expected a list of {entry_shape} number arrays, got ragged or non-numeric entries"
        ) from None
    if entry_shape == () and array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 + len(entry_shape) or array.shape[1:] != entry_shape:
        raise HandDatasetError(
            f"{path}: expected a list of entries of shape {entry_shape}, got an array of shape {array.shape}"
        )
    return array


def _count_images(folder: Path) -> int:
    with os.scandir(folder) as entries:
        return sum(1 for entry in entries if entry.name.endswith(".jpg"))


def _read_labels(paths: dict[str, Path], split: str) -> dict[str, np.ndarray]:
    """The annotation files of `paths` as arrays by role ("K", "xyz", "scale" and "verts" when in `paths`)."""
    entry_shapes = {"K": (3, 3), "xyz": (NUM_JOINTS, 3), "scale": (), "verts": (NUM_VERTICES, 3)}
    labels = {role: _read_json_array(paths[role], shape) for role, shape in entry_shapes.items() if role in paths}
    lengths = {paths[role].name: len(array) for role, array in labels.items()}
    if len(set(lengths.values())) != 1:
        listing = ", ".join(f"{name}: {length}" for name, length in lengths.items())
        raise HandDatasetError(f"FreiHAND {split}: the annotation files disagree on the number of labels ({listing})")
    if len(labels["xyz"]) == 0:
        raise HandDatasetError(f"FreiHAND {split}: {paths['xyz']} holds no labels")
    return labels


def _check_image_count(paths: dict[str, Path], split: str, num_labels: int) -> int:
    """The number of images in `rgb/`; raise when the labels cannot cover them."""
    num_images = _count_images(paths["rgb"])
    max_images = num_labels * FREIHAND_COLOUR_VERSIONS[split]
    if num_images > max_images:
        raise HandDatasetError(
            f"FreiHAND {split}: {paths['rgb']} holds {num_images} images but {paths['xyz'].name} has only "
            f"{num_labels} labels ({FREIHAND_COLOUR_VERSIONS[split]} colour version(s) each: at most {max_images} "
            "images); the annotation files look truncated or come from another release"
        )
    return num_images


def iter_freihand_rows(
    root: str | os.PathLike,
    split: str = "training",
    num_colour_versions: int | None = None,
    with_vertices: bool = True,
) -> Iterator[dict]:
    """Yield the rows of FreiHAND's `split` (see `load_freihand` for the arguments), skipping unusable ones."""
    paths = check_freihand_inputs(root, split, num_colour_versions, with_vertices)
    labels = _read_labels(paths, split)
    num_labels = len(labels["xyz"])
    num_images = _check_image_count(paths, split, num_labels)
    # By default as many versions as the folder holds images for (missing images are then counted as rejects).
    num_versions = num_colour_versions or min(
        FREIHAND_COLOUR_VERSIONS[split], max(1, math.ceil(num_images / num_labels))
    )
    has_masks = paths["mask"].is_dir()
    counts = RowCounts()
    for index in range(num_labels * num_versions):
        label = index % num_labels
        row = {
            "image": str(paths["rgb"] / FREIHAND_IMAGE_NAME.format(index=index)),
            "mask": str(paths["mask"] / FREIHAND_IMAGE_NAME.format(index=label)) if has_masks else None,
            "joints_xyz": labels["xyz"][label],
            "vertices_xyz": labels["verts"][label] if with_vertices else None,
            "K": labels["K"][label],
            "scale": labels["scale"][label],
        }
        if counts.keep_if_valid(row):
            yield make_hand_row(is_left=False, **row)
    counts.log(logger, f"FreiHAND {split} ({paths['rgb'].parent.parent})")


def load_freihand(
    root: str | os.PathLike,
    split: str = "training",
    num_colour_versions: int | None = None,
    with_vertices: bool = True,
    cache_dir: str | os.PathLike | None = None,
    keep_in_memory: bool = False,
) -> Dataset:
    """FreiHAND's `split` as a `Dataset` of `HAND_FEATURES_WITH_MESH` rows (`HAND_FEATURES` without vertices).

    Args:
        root: the `FreiHAND_pub_v2` folder (holding `training/`, `training_xyz.json`, ...) or the folder that
            contains `FreiHAND_pub_v2`.
        split: "training" or "evaluation" (the released evaluation annotations must be beside the images).
        num_colour_versions: how many colour versions of each labelled frame to include, in the order of the
            release (training: 1 to 4, image `i` uses label `i mod num_labels`; evaluation: 1). None: as many
            as `rgb/` holds images for, i.e. ceil(images / labels) (4 for the release, 1 for a folder written
            by `make-synthetic`).
        with_vertices: read `{split}_verts.json` (the largest file) and add `vertices_xyz`.
        cache_dir: where `datasets` caches the Arrow table (tests: a temporary directory).
        keep_in_memory: keep the table in memory instead of memory-mapping the cache.

    Raises:
        MissingDatasetFilesError: listing every missing annotation file or image folder.
        HandDatasetError: annotation files of the wrong shape or disagreeing lengths, or more images than labels.

    Rows with missing images, non-finite labels, joints at or behind the camera or a singular K are skipped
    and counted in a warning of this module's logger.
    """
    paths = check_freihand_inputs(root, split, num_colour_versions, with_vertices)
    return build_hand_dataset(
        iter_freihand_rows,
        gen_kwargs={
            "root": str(Path(root).resolve()),
            "split": split,
            "num_colour_versions": num_colour_versions,
            "with_vertices": with_vertices,
        },
        features=HAND_FEATURES_WITH_MESH if with_vertices else HAND_FEATURES,
        source_files=paths.values(),
        cache_dir=cache_dir,
        keep_in_memory=keep_in_memory,
    )
