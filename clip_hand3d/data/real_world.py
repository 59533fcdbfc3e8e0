"""Ge et al.'s real-world test set (CVPR 2019, "3D Hand Shape and Pose Estimation from a Single RGB Image").

Layout, as read by the authors' loader in their release (`data/real_world_testset` of hand-graph-cnn):

    params.mat      "image_path": N image paths relative to this folder ("images/00000.jpg", ...),
                    "cam_param": (N, 4) fx, fy, u0, v0 of the original camera, pixels,
                    "bbox": (N, 4) x, y, w, h: the box of the original image that was cropped and resized
                    into the stored image, pixels (also "pose_root", "pose_scale": not read)
    pose_gt.mat     "pose_gt": (N, 21, 3) joints in centimetres, original camera frame
    images/%05d.jpg the stored crops (256x256)

Assumptions (each a named constant below): the joints are in centimetres (the authors' evaluation multiplies
errors by 10 to print millimetres); their joint order is FreiHAND's (wrist, then thumb, index, middle, ring,
little, each MCP to tip: the authors' skeleton drawing), so `REAL_WORLD_TO_FREIHAND` is the identity; the
hands are right hands. The intrinsics of a stored crop follow from the box: the crop (x, y, w, h) resized to
W x H pixels has fx' = fx W / w, fy' = fy H / h, u0' = (u0 - x) W / w, v0' = (v0 - y) H / h (the authors
use H / w for both axes, the same for their square boxes and square images).
"""

import logging
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import PIL.Image
import scipy.io
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

logger = logging.getLogger(__name__)

REAL_WORLD_RELEASE_FOLDER = "real_world_testset"
REAL_WORLD_PARAMS_FILE = "params.mat"
REAL_WORLD_POSE_FILE = "pose_gt.mat"
REAL_WORLD_IMAGE_PATH_KEY = "image_path"
REAL_WORLD_CAMERA_KEY = "cam_param"
REAL_WORLD_BOX_KEY = "bbox"
REAL_WORLD_POSE_KEY = "pose_gt"
# Metres per unit of "pose_gt" (centimetres).
REAL_WORLD_UNIT_METRES = 0.01
# FreiHAND joint j is joint REAL_WORLD_TO_FREIHAND[j] of "pose_gt" (the same order).
REAL_WORLD_TO_FREIHAND = tuple(range(NUM_JOINTS))
REAL_WORLD_IS_LEFT = False
REJECT_EMPTY_BOX = "crop box without width or height"


def real_world_paths(root: str | os.PathLike) -> dict[str, Path]:
    """The annotation files: "params" and "pose". `root`: the `real_world_testset` folder or its parent."""
    folder, _ = resolve_root(root, REAL_WORLD_RELEASE_FOLDER, REAL_WORLD_PARAMS_FILE)
    return {"params": folder / REAL_WORLD_PARAMS_FILE, "pose": folder / REAL_WORLD_POSE_FILE}


def check_real_world_inputs(root: str | os.PathLike) -> dict[str, Path]:
    """Check that the annotation files of `load_real_world` exist; returns `real_world_paths`."""
    paths = real_world_paths(root)
    _, candidates = resolve_root(root, REAL_WORLD_RELEASE_FOLDER, REAL_WORLD_PARAMS_FILE)
    check_required_files("Real-world test set", paths.values(), looked_in=candidates)
    return paths


def _read_mat(path: Path) -> dict:
    try:
        return scipy.io.loadmat(path)
    except (ValueError, OSError) as error:
        raise HandDatasetError(f"{path} is not a readable MATLAB file: {error}") from None


def _mat_field(contents: dict, key: str, path: Path) -> np.ndarray:
    if key not in contents:
        keys = sorted(name for name in contents if not name.startswith("__"))
        raise HandDatasetError(
            f"{path} has no key {key!r} (keys: {keys}); the layout differs from Ge et al.'s release"
        )
    return contents[key]


def _numeric_field(contents: dict, key: str, path: Path, shape: tuple[int, ...]) -> np.ndarray:
    """`contents[key]` as float64 of `shape` (-1: any length)."""
    value = np.asarray(_mat_field(contents, key, path), dtype=np.float64)
    if value.ndim != len(shape) or any(
        expected not in (-1, got) for expected, got in zip(shape, value.shape, strict=True)
    ):
        expected = "(" + ", ".join("N" if size == -1 else str(size) for size in shape) + ")"
        raise HandDatasetError(f"{path}: {key!r} has shape {value.shape}, expected {expected}")
    return value


def _image_paths(contents: dict, path: Path) -> list[str]:
    """`image_path` of params.mat, stored as a MATLAB char matrix (N strings) or a cell array."""
    names = []
    for entry in np.asarray(_mat_field(contents, REAL_WORLD_IMAGE_PATH_KEY, path), dtype=object).ravel():
        values = np.asarray(entry).ravel()
        if values.size != 1:
            raise HandDatasetError(
                f"{path}: {REAL_WORLD_IMAGE_PATH_KEY!r} must hold one path per image, got {entry!r}"
            )
        names.append(str(values[0]).strip())
    return names


def crop_intrinsics(camera: np.ndarray, box: np.ndarray, crop_size: tuple[int, int]) -> np.ndarray:
    """K (3, 3) of a crop: the box (x, y, w, h) of the camera (fx, fy, u0, v0) resized to crop_size (W, H) pixels."""
    fx, fy, u0, v0 = (float(value) for value in camera)
    x, y, w, h = (float(value) for value in box)
    if not (w > 0 and h > 0):
        raise ValueError(f"crop box (x, y, w, h) needs a positive width and height, got {tuple(box)}")
    scale_x, scale_y = crop_size[0] / w, crop_size[1] / h
    return np.array(
        [[fx * scale_x, 0.0, (u0 - x) * scale_x], [0.0, fy * scale_y, (v0 - y) * scale_y], [0.0, 0.0, 1.0]]
    )


def iter_real_world_rows(root: str | os.PathLike) -> Iterator[dict]:
    """Yield the rows of the real-world test set (see `load_real_world`), skipping unusable ones."""
    paths = check_real_world_inputs(root)
    params = _read_mat(paths["params"])
    image_names = _image_paths(params, paths["params"])
    cameras = _numeric_field(params, REAL_WORLD_CAMERA_KEY, paths["params"], (-1, 4))
    boxes = _numeric_field(params, REAL_WORLD_BOX_KEY, paths["params"], (-1, 4))
    poses = _numeric_field(_read_mat(paths["pose"]), REAL_WORLD_POSE_KEY, paths["pose"], (-1, NUM_JOINTS, 3))
    lengths = {
        REAL_WORLD_IMAGE_PATH_KEY: len(image_names),
        REAL_WORLD_CAMERA_KEY: len(cameras),
        REAL_WORLD_BOX_KEY: len(boxes),
        f"{REAL_WORLD_POSE_FILE}:{REAL_WORLD_POSE_KEY}": len(poses),
    }
    if len(set(lengths.values())) != 1:
        raise HandDatasetError(
            f"Real-world test set ({paths['params'].parent}): the fields disagree on the number of images: {lengths}"
        )

    counts = RowCounts()
    for name, camera, box, pose in zip(image_names, cameras, boxes, poses, strict=True):
        image_path = paths["params"].parent / name
        if not image_path.is_file():
            counts.reject(REJECT_MISSING_FILE)
            continue
        if not (box[2] > 0 and box[3] > 0):
            counts.reject(REJECT_EMPTY_BOX)
            continue
        with PIL.Image.open(image_path) as image:
            crop_size = image.size
        row = {
            "image": str(image_path),
            "joints_xyz": pose[list(REAL_WORLD_TO_FREIHAND)] * REAL_WORLD_UNIT_METRES,
            "K": crop_intrinsics(camera, box, crop_size),
        }
        if counts.keep_if_valid(row):
            yield make_hand_row(is_left=REAL_WORLD_IS_LEFT, **row)
    counts.log(logger, f"Real-world test set ({paths['params'].parent})")


def load_real_world(
    root: str | os.PathLike, cache_dir: str | os.PathLike | None = None, keep_in_memory: bool = False
) -> Dataset:
    """Ge et al.'s real-world test set as a `Dataset` of `HAND_FEATURES` rows (no masks).

    Args:
        root: the `real_world_testset` folder (holding `params.mat`, `pose_gt.mat`, `images/`) or its parent.
        cache_dir: where `datasets` caches the Arrow table (tests: a temporary directory).
        keep_in_memory: keep the table in memory instead of memory-mapping the cache.

    Raises:
        MissingDatasetFilesError: when `params.mat` or `pose_gt.mat` is missing.
        HandDatasetError: a missing key or a field of the wrong shape (names the key and the file).
    """
    paths = check_real_world_inputs(root)
    return build_hand_dataset(
        iter_real_world_rows,
        gen_kwargs={"root": str(Path(root).resolve())},
        features=HAND_FEATURES,
        source_files=[*paths.values(), paths["params"].parent / "images"],
        cache_dir=cache_dir,
        keep_in_memory=keep_in_memory,
    )
