"""The Stereo Hand Pose Tracking Benchmark (STB, Zhang et al. 2016), SK subset, as a `datasets.Dataset`.

Layout of the release (the folder `root`):

    labels/B{1..6}{Counting,Random}_SK.mat   key "handPara": (3, 21, 1500) joints in millimetres, in the
                                             frame of the Intel RealSense depth camera
    B{1..6}{Counting,Random}/SK_color_%d.png 640x480 colour images of the RealSense (frames 0..1499)

The field's split: B1 (Counting and Random, 3,000 images) for evaluation, B2-B6 (15,000) for training.

Conversions (each a named constant below, so that a wrong assumption is corrected in one place):
- frame: STB's readme gives a rotation vector and a translation (mm) that "transform the coordinates relative
  to color camera to those relative to depth camera", i.e. X_depth = R X_colour + t; the labels are in the
  depth frame, so X_colour = R^T (X_label - t), then millimetres -> metres.
- joint order: `STB_TO_FREIHAND`.
- root: STB's joint 0 is the palm centre; FreiHAND's is the wrist. The palm centre is taken as the midpoint of
  the wrist and the middle finger's MCP, so wrist = middle MCP + 2 (palm - middle MCP). (Ge et al.'s STB
  loader uses the ring MCP instead.)
- handedness: the labelled hand is the subject's left hand (STB's joint names end in "_L").
"""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import scipy.io
from datasets import Dataset
from scipy.spatial.transform import Rotation

from clip_hand3d.data.features import (
    HAND_FEATURES,
    HandDatasetError,
    RowCounts,
    build_hand_dataset,
    check_required_files,
    make_hand_row,
)
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, ROOT_JOINT
from clip_hand3d.validation import check_choice

logger = logging.getLogger(__name__)

STB_SPLITS = {
    "training": tuple(f"B{subject}{motion}" for subject in range(2, 7) for motion in ("Counting", "Random")),
    "evaluation": ("B1Counting", "B1Random"),
}
STB_LABEL_KEY = "handPara"
STB_IMAGE_NAME = "SK_color_{frame}.png"
# Intrinsics of the RealSense colour camera (the SK colour images), pixels.
STB_COLOUR_K = np.array([[607.92271, 0.0, 314.78337], [0.0, 607.88192, 236.42484], [0.0, 0.0, 1.0]])
# Extrinsics of STB's release: X_depth = R X_colour + t (R from this rotation vector, radians; t in mm).
STB_SK_ROTATION_VECTOR = np.array([0.00531, -0.01196, 0.00301])
STB_SK_TRANSLATION_MM = np.array([-24.0381, -0.4563, -1.2326])
# Assumed source order of STB's 21 joints: 0 palm centre, then little, ring, middle, index and thumb, each
# from the base to the tip (MCP, PIP, DIP, tip) -- the order of the joint names in Ge et al.'s STB loader
# ("loc_bn_palm_L", "loc_bn_pinky_L_01", ..., "loc_bn_thumb_L_04"). FreiHAND joint j is STB joint
# STB_TO_FREIHAND[j].
STB_TO_FREIHAND = (0, 17, 18, 19, 20, 13, 14, 15, 16, 9, 10, 11, 12, 5, 6, 7, 8, 1, 2, 3, 4)
# The palm centre is the midpoint of the wrist and this joint (FreiHAND index: middle MCP).
PALM_CENTRE_PARTNER_JOINT = 9
STB_IS_LEFT = True


def stb_label_to_colour_camera(points_mm: np.ndarray) -> np.ndarray:
    """Points (..., 3) in millimetres in STB's label (depth camera) frame -> colour camera frame, metres."""
    R = Rotation.from_rotvec(STB_SK_ROTATION_VECTOR).as_matrix()
    return (np.asarray(points_mm, dtype=np.float64) - STB_SK_TRANSLATION_MM) @ R / 1000.0


def palm_centre_to_wrist(joints_xyz: np.ndarray) -> np.ndarray:
    """Joints (21, 3) in FreiHAND order whose joint 0 is STB's palm centre -> joint 0 replaced by the wrist."""
    joints_xyz = np.array(joints_xyz, dtype=np.float64)
    partner = joints_xyz[PALM_CENTRE_PARTNER_JOINT]
    joints_xyz[ROOT_JOINT] = partner + 2.0 * (joints_xyz[ROOT_JOINT] - partner)
    return joints_xyz


def stb_joints(hand_para_frame: np.ndarray) -> np.ndarray:
    """One frame of `handPara` (3, 21), millimetres, label frame -> joints (21, 3) in metres, colour camera
    frame, FreiHAND order, wrist as the root."""
    joints = stb_label_to_colour_camera(np.asarray(hand_para_frame, dtype=np.float64).T)
    return palm_centre_to_wrist(joints[list(STB_TO_FREIHAND)])


def stb_label_paths(root: str | os.PathLike, split: str) -> list[Path]:
    """The label files of STB's `split` under `root`, in sequence order."""
    check_choice("STB split", split, tuple(STB_SPLITS))
    return [Path(root).expanduser() / "labels" / f"{sequence}_SK.mat" for sequence in STB_SPLITS[split]]


def check_stb_inputs(root: str | os.PathLike, split: str = "training") -> list[Path]:
    """Check the arguments of `load_stb` and that the required files exist; returns the label files and the
    sequence folders of `split`."""
    label_paths = stb_label_paths(root, split)
    required = label_paths + [Path(root).expanduser() / sequence for sequence in STB_SPLITS[split]]
    check_required_files(f"STB {split}", required, looked_in=[Path(root)])
    return required


def _read_hand_para(path: Path) -> np.ndarray:
    """`handPara` of an STB label file: (3, 21, num_frames) millimetres."""
    try:
        contents = scipy.io.loadmat(path)
    except (ValueError, OSError) as error:
        raise HandDatasetError(f"{path} is not a readable MATLAB file: {error}") from None
    if STB_LABEL_KEY not in contents:
        keys = sorted(key for key in contents if not key.startswith("__"))
        raise HandDatasetError(f"{path} has no key {STB_LABEL_KEY!r} (keys: {keys})")
    hand_para = np.asarray(contents[STB_LABEL_KEY], dtype=np.float64)
    if hand_para.ndim != 3 or hand_para.shape[:2] != (3, NUM_JOINTS):
        raise HandDatasetError(f"{path}: {STB_LABEL_KEY!r} has shape {hand_para.shape}, expected (3, 21, frames)")
    return hand_para


def iter_stb_rows(root: str | os.PathLike, split: str = "training") -> Iterator[dict]:
    """Yield the rows of STB's `split` (see `load_stb`), skipping unusable ones."""
    check_stb_inputs(root, split)
    counts = RowCounts()
    for label_path, sequence in zip(stb_label_paths(root, split), STB_SPLITS[split], strict=True):
        hand_para = _read_hand_para(label_path)
        for frame in range(hand_para.shape[2]):
            image_path = Path(root).expanduser() / sequence / STB_IMAGE_NAME.format(frame=frame)
            row = {"image": str(image_path), "joints_xyz": stb_joints(hand_para[:, :, frame]), "K": STB_COLOUR_K}
            if counts.keep_if_valid(row):
                yield make_hand_row(is_left=STB_IS_LEFT, **row)
    counts.log(logger, f"STB {split} ({root})")


def load_stb(
    root: str | os.PathLike,
    split: str = "training",
    cache_dir: str | os.PathLike | None = None,
    keep_in_memory: bool = False,
) -> Dataset:
    """STB's SK subset `split` as a `Dataset` of `HAND_FEATURES` rows (left hands, no masks).

    Args:
        root: the folder holding `labels/` and the sequence folders `B1Counting/`, ...
        split: "training" (B2-B6, 15,000 frames) or "evaluation" (B1, 3,000 frames).
        cache_dir: where `datasets` caches the Arrow table (tests: a temporary directory).
        keep_in_memory: keep the table in memory instead of memory-mapping the cache.

    Raises:
        MissingDatasetFilesError: listing every missing label file and sequence folder.
        HandDatasetError: a label file without `handPara` or with the wrong shape.
    """
    source_files = check_stb_inputs(root, split)
    return build_hand_dataset(
        iter_stb_rows,
        gen_kwargs={"root": str(Path(root).resolve()), "split": split},
        features=HAND_FEATURES,
        source_files=source_files,
        cache_dir=cache_dir,
        keep_in_memory=keep_in_memory,
    )
