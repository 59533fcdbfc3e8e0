"""The Rendered Hand Pose Dataset (RHD, Zimmermann and Brox, ICCV 2017) as a `datasets.Dataset`.

Layout of the release (`RHD_published_v2`):

    {training,evaluation}/anno_{split}.pickle   dict: sample id -> {"xyz": (42, 3) metres, camera frame,
                                                "uv_vis": (42, 3) u, v in pixels and visibility 0/1,
                                                "K": (3, 3) intrinsics}
    {training,evaluation}/color/%05d.png        320x320 RGB images (41,258 training, 2,728 evaluation)
    {training,evaluation}/mask/%05d.png         segmentation: 0 background, 1 person, 2-17 left hand,
                                                18-33 right hand
    {training,evaluation}/depth/%05d.png        depth (not read)

The 42 keypoints are the left hand (0-20) then the right hand (21-41), each as: 0 wrist, then thumb, index,
middle, ring and little finger, each from the tip to the base (tip, DIP, PIP, MCP). `RHD_TO_FREIHAND`
reorders one hand to FreiHAND's order (each finger from the base to the tip).

One row per hand (see `load_rhd`): with `hand_selection="visible"` every hand that is visible, with
`"dominant"` the hand with more mask pixels in each image (the protocol of Zimmermann and Brox's evaluation,
one row per image: 41,258 training and 2,728 evaluation rows). Left hands have `is_left=True`; `mask` is
this hand's segmentation (255 on its pixels, 0 elsewhere).

The annotation file is a Python pickle: load only files from the official release (pickles can run code).
"""

import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
from datasets import Dataset

from clip_hand3d.data.features import (
    HAND_FEATURES,
    REJECT_MISSING_FILE,
    HandDatasetError,
    RowCounts,
    build_hand_dataset,
    check_required_files,
    make_hand_row,
    resolve_root,
)
from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.validation import check_choice

logger = logging.getLogger(__name__)

RHD_RELEASE_FOLDER = "RHD_published_v2"
RHD_SPLITS = ("training", "evaluation")
RHD_IMAGE_NAME = "{sample_id:05d}.png"
RHD_NUM_KEYPOINTS = 42
# FreiHAND joint j of one hand is RHD keypoint RHD_TO_FREIHAND[j] of that hand (0-20; the right hand adds 21).
RHD_TO_FREIHAND = (0, 4, 3, 2, 1, 8, 7, 6, 5, 12, 11, 10, 9, 16, 15, 14, 13, 20, 19, 18, 17)
# Per hand: (is_left, first keypoint, mask ids of the hand's parts as [low, high]).
RHD_HANDS = ((True, 0, (2, 17)), (False, 21, (18, 33)))
RHD_HAND_SELECTIONS = ("visible", "dominant")
# A hand is visible when at least this many of its keypoints are annotated visible inside the image ...
MIN_VISIBLE_KEYPOINTS = 10
# ... and its mask labels cover at least this many pixels (of the 320x320 image).
MIN_MASK_PIXELS = 100


def rhd_paths(root: str | os.PathLike, split: str) -> dict[str, Path]:
    """The files RHD's `split` needs: "annotations", "color", "mask". `root`: `RHD_published_v2` or its parent."""
    check_choice("RHD split", split, RHD_SPLITS)
    folder, _ = resolve_root(root, RHD_RELEASE_FOLDER, split)
    return {
        "annotations": folder / split / f"anno_{split}.pickle",
        "color": folder / split / "color",
        "mask": folder / split / "mask",
    }


def check_rhd_inputs(
    root: str | os.PathLike, split: str = "training", hand_selection: str = "visible"
) -> dict[str, Path]:
    """Check the arguments of `load_rhd` and that the required files exist; returns `rhd_paths`."""
    check_choice("hand_selection", hand_selection, RHD_HAND_SELECTIONS)
    paths = rhd_paths(root, split)
    _, candidates = resolve_root(root, RHD_RELEASE_FOLDER, split)
    check_required_files(f"RHD {split}", paths.values(), looked_in=candidates)
    return paths


def _read_annotations(path: Path) -> dict:
    with open(path, "rb") as file:
        try:
            # The release was pickled by Python 2: latin1 reads its numpy arrays.
            annotations = pickle.load(file, encoding="latin1")
        except (pickle.UnpicklingError, EOFError) as error:
            raise HandDatasetError(f"{path} is not a readable pickle: {error}") from None
    if not isinstance(annotations, dict):
        raise HandDatasetError(f"{path}: expected a dict of sample id -> annotation, got {type(annotations).__name__}")
    return annotations


def _annotation_field(
    annotation: object, key: str, shape: tuple[int, int], path: Path, sample_id: object
) -> np.ndarray:
    if not isinstance(annotation, dict) or key not in annotation:
        raise HandDatasetError(f"{path}: sample {sample_id} has no key {key!r}")
    value = np.asarray(annotation[key], dtype=np.float64)
    if value.shape != shape:
        raise HandDatasetError(f"{path}: sample {sample_id} field {key!r} has shape {value.shape}, expected {shape}")
    return value


def rhd_hand_joints(xyz: np.ndarray, first_keypoint: int) -> np.ndarray:
    """The 21 joints of one hand of RHD's (42, 3) keypoints in FreiHAND order; first_keypoint 0 (left) or 21."""
    return np.asarray(xyz)[first_keypoint + np.asarray(RHD_TO_FREIHAND)]


def _count_visible_keypoints(uv_vis: np.ndarray, width: int, height: int) -> int:
    u, v, visible = uv_vis.T
    return int(((visible > 0.5) & (u >= 0) & (u < width) & (v >= 0) & (v < height)).sum())


def _select_hands(
    uv_vis: np.ndarray,
    hand_pixels: list[np.ndarray],
    hand_selection: str,
    min_visible_keypoints: int,
    min_mask_pixels: int,
) -> list[int]:
    """Indices into `RHD_HANDS` of the hands that get a row."""
    counts = [int(pixels.sum()) for pixels in hand_pixels]
    if hand_selection == "dominant":
        return [0] if counts[0] > counts[1] else [1]
    height, width = hand_pixels[0].shape
    selected = []
    for hand, (_, first, _) in enumerate(RHD_HANDS):
        visible = _count_visible_keypoints(uv_vis[first : first + NUM_JOINTS], width, height)
        if visible >= min_visible_keypoints and counts[hand] >= min_mask_pixels:
            selected.append(hand)
    return selected


def iter_rhd_rows(
    root: str | os.PathLike,
    split: str = "training",
    hand_selection: str = "visible",
    min_visible_keypoints: int = MIN_VISIBLE_KEYPOINTS,
    min_mask_pixels: int = MIN_MASK_PIXELS,
) -> Iterator[dict]:
    """Yield the rows of RHD's `split` (see `load_rhd` for the arguments), skipping unusable ones."""
    paths = check_rhd_inputs(root, split, hand_selection)
    annotations = _read_annotations(paths["annotations"])
    counts = RowCounts()
    for sample_id in sorted(annotations):
        annotation = annotations[sample_id]
        xyz = _annotation_field(annotation, "xyz", (RHD_NUM_KEYPOINTS, 3), paths["annotations"], sample_id)
        uv_vis = _annotation_field(annotation, "uv_vis", (RHD_NUM_KEYPOINTS, 3), paths["annotations"], sample_id)
        K = _annotation_field(annotation, "K", (3, 3), paths["annotations"], sample_id)
        image_path = paths["color"] / RHD_IMAGE_NAME.format(sample_id=int(sample_id))
        mask_path = paths["mask"] / RHD_IMAGE_NAME.format(sample_id=int(sample_id))
        if not mask_path.is_file():
            counts.reject(REJECT_MISSING_FILE)
            continue
        segmentation = np.asarray(PIL.Image.open(mask_path))
        if segmentation.ndim == 3:
            segmentation = segmentation[..., 0]
        hand_pixels = [(segmentation >= low) & (segmentation <= high) for _, _, (low, high) in RHD_HANDS]
        for hand in _select_hands(uv_vis, hand_pixels, hand_selection, min_visible_keypoints, min_mask_pixels):
            is_left, first, _ = RHD_HANDS[hand]
            row = {"image": str(image_path), "joints_xyz": rhd_hand_joints(xyz, first), "K": K}
            if counts.keep_if_valid(row):
                yield make_hand_row(is_left=is_left, mask=hand_pixels[hand].astype(np.uint8) * 255, **row)
    counts.log(logger, f"RHD {split} ({paths['annotations'].parent})")


def load_rhd(
    root: str | os.PathLike,
    split: str = "training",
    hand_selection: str = "visible",
    min_visible_keypoints: int = MIN_VISIBLE_KEYPOINTS,
    min_mask_pixels: int = MIN_MASK_PIXELS,
    cache_dir: str | os.PathLike | None = None,
    keep_in_memory: bool = False,
) -> Dataset:
    """RHD's `split` as a `Dataset` of `HAND_FEATURES` rows, one per selected hand (left hand first).

    Args:
        root: the `RHD_published_v2` folder (holding `training/` and `evaluation/`) or the folder containing it.
        split: "training" or "evaluation".
        hand_selection: "visible": a row for each hand with at least `min_visible_keypoints` keypoints
            annotated visible inside the image and at least `min_mask_pixels` pixels of its mask labels;
            "dominant": one row per image, the hand with more mask pixels (the right hand on a tie), with no
            visibility threshold (Zimmermann and Brox's evaluation protocol).
        min_visible_keypoints: see `hand_selection`.
        min_mask_pixels: see `hand_selection`.
        cache_dir: where `datasets` caches the Arrow table (tests: a temporary directory).
        keep_in_memory: keep the table in memory instead of memory-mapping the cache.

    Raises:
        MissingDatasetFilesError: listing the missing annotation file and image folders.
        HandDatasetError: an annotation that is not the official format (names the sample and the key).
    """
    paths = check_rhd_inputs(root, split, hand_selection)
    return build_hand_dataset(
        iter_rhd_rows,
        gen_kwargs={
            "root": str(Path(root).resolve()),
            "split": split,
            "hand_selection": hand_selection,
            "min_visible_keypoints": min_visible_keypoints,
            "min_mask_pixels": min_mask_pixels,
        },
        features=HAND_FEATURES,
        source_files=paths.values(),
        cache_dir=cache_dir,
        keep_in_memory=keep_in_memory,
    )
