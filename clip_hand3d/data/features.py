"""One row, one schema: the `datasets.Features` every hand dataset loader yields, and the checks on its rows.

A row is one hand in one image:

- `image` (Image): the RGB image, stored as the path of the original file (or PNG bytes when generated).
- `mask` (Image or None): the hand's segmentation, nonzero on the hand's pixels (FreiHAND masks are JPEGs:
  threshold them at 127); None where the set has no masks.
- `joints_xyz` (21, 3) float32: the joints in metres, camera frame (OpenCV: x right, y down, z away from the
  camera), FreiHAND's joint order (`clip_hand3d.modeling.hand_joints`).
- `vertices_xyz` (778, 3) float32: the MANO mesh vertices in metres, camera frame; only in
  `HAND_FEATURES_WITH_MESH`.
- `joints_uv` (21, 2) float32: the joints projected with `K`, in pixels of `image`.
- `K` (3, 3) float32: the intrinsics of `image`, in pixels.
- `scale` float32: the metric length of the reference bone 9-10 (middle MCP to PIP), metres.
- `box` 4 x float32: the hand box (x1, y1, x2, y2) in pixels: the extent of the projected joints (and
  vertices, when present), with no margin and not clipped to the image.
- `is_left` bool: a left hand (the pipeline mirrors it to a right hand).

Two feature objects, because a column of `datasets` has one type for every row: `HAND_FEATURES_WITH_MESH`
for sets with meshes (FreiHAND, the synthetic renderer) and `HAND_FEATURES` for sets without (RHD, STB,
Ge et al.'s real-world set). To mix the two (e.g. `concatenate_datasets`), give the mesh-less set an empty
mesh column: `dataset.map(lambda row: {"vertices_xyz": None}, features=HAND_FEATURES_WITH_MESH)`; a None
`vertices_xyz` means "no mesh" to `clip_hand3d.training.transforms`.

Loaders build datasets with `build_hand_dataset` (a thin `Dataset.from_generator`), validate and count each
candidate row with `RowCounts` (`validate_hand_row`), build it with `make_hand_row` and log what they skipped with
`RowCounts.log`.
"""

import logging
import os
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from datasets import Array2D, Dataset, Features, Image, List, Value
from datasets.exceptions import DatasetGenerationError
from datasets.fingerprint import Hasher

from clip_hand3d.geometry import project
from clip_hand3d.modeling.hand_joints import NUM_JOINTS, NUM_VERTICES, REFERENCE_BONE

_COMMON_FIELDS = {
    "image": Image(),
    "mask": Image(),
    "joints_xyz": Array2D(shape=(NUM_JOINTS, 3), dtype="float32"),
    "joints_uv": Array2D(shape=(NUM_JOINTS, 2), dtype="float32"),
    "K": Array2D(shape=(3, 3), dtype="float32"),
    "scale": Value("float32"),
    "box": List(Value("float32"), length=4),
    "is_left": Value("bool"),
}
HAND_FEATURES = Features(_COMMON_FIELDS)
HAND_FEATURES_WITH_MESH = Features(
    {**_COMMON_FIELDS, "vertices_xyz": Array2D(shape=(NUM_VERTICES, 3), dtype="float32")}
)

# Reasons a candidate row is skipped (the keys of the counts that loaders log).
REJECT_MISSING_FILE = "missing image or mask file"
REJECT_NON_FINITE = "non-finite value (NaN or inf)"
REJECT_BEHIND_CAMERA = "point at or behind the camera (z <= 0)"
REJECT_SINGULAR_K = "K not invertible"

# K is treated as not invertible above this condition number (float32 keeps about 7 significant digits).
MAX_K_CONDITION_NUMBER = 1e7


class HandDatasetError(ValueError):
    """A dataset's files are there but cannot be read as the official format (the message names file and field)."""


class MissingDatasetFilesError(FileNotFoundError):
    """Required files of a dataset are missing; the message lists every one and where it was looked for."""


def check_required_files(dataset_name: str, paths: Iterable[Path], looked_in: Iterable[Path] = ()) -> None:
    """Raise `MissingDatasetFilesError` listing every path of `paths` that does not exist.

    Args:
        dataset_name: e.g. "FreiHAND training", used in the message.
        paths: the files and folders the loader needs.
        looked_in: the root folders that were tried, named in the message.
    """
    missing = [str(path) for path in paths if not Path(path).exists()]
    if not missing:
        return
    roots = ", ".join(str(root) for root in looked_in)
    where = f" (looked in {roots})" if roots else ""
    listing = "\n  ".join(missing)
    raise MissingDatasetFilesError(f"{dataset_name}: {len(missing)} required file(s) missing{where}:\n  {listing}")


def _is_missing_file(value: object) -> bool:
    return isinstance(value, (str, os.PathLike)) and not os.path.isfile(value)


def validate_hand_row(row: Mapping) -> str | None:
    """Why `row` cannot be used, or None when it can.

    `row` holds at least `image`, `joints_xyz` (21, 3) metres and `K` (3, 3); `vertices_xyz`, `mask` and
    `scale` are checked when present and not None. Images and masks given as paths must be existing files.

    Returns:
        One of `REJECT_MISSING_FILE`, `REJECT_NON_FINITE`, `REJECT_BEHIND_CAMERA`, `REJECT_SINGULAR_K`, or None.
    """
    if _is_missing_file(row["image"]) or _is_missing_file(row.get("mask")):
        return REJECT_MISSING_FILE
    points = [np.asarray(row["joints_xyz"], dtype=np.float64)]
    if row.get("vertices_xyz") is not None:
        points.append(np.asarray(row["vertices_xyz"], dtype=np.float64))
    K = np.asarray(row["K"], dtype=np.float64)
    numbers = [*points, K]
    if row.get("scale") is not None:
        numbers.append(np.asarray(row["scale"], dtype=np.float64))
    if not all(np.isfinite(array).all() for array in numbers):
        return REJECT_NON_FINITE
    if any((array[..., 2] <= 0).any() for array in points):
        return REJECT_BEHIND_CAMERA
    if not np.linalg.cond(K) < MAX_K_CONDITION_NUMBER:
        return REJECT_SINGULAR_K
    return None


def reference_bone_length(joints_xyz: np.ndarray) -> float:
    """Length of the reference bone 9-10 (middle MCP to PIP) of joints (21, 3), in the joints' unit."""
    joints_xyz = np.asarray(joints_xyz, dtype=np.float64)
    return float(np.linalg.norm(joints_xyz[REFERENCE_BONE[0]] - joints_xyz[REFERENCE_BONE[1]]))


def hand_box(points_uv: np.ndarray) -> list[float]:
    """Tight box (x1, y1, x2, y2) of 2D points (N, 2) in pixels, no margin."""
    points_uv = np.asarray(points_uv, dtype=np.float64)
    x1, y1 = points_uv.min(axis=0)
    x2, y2 = points_uv.max(axis=0)
    return [float(x1), float(y1), float(x2), float(y2)]


def make_hand_row(
    image: object,
    joints_xyz: np.ndarray,
    K: np.ndarray,
    is_left: bool,
    vertices_xyz: np.ndarray | None = None,
    scale: float | None = None,
    mask: object = None,
) -> dict:
    """A row of `HAND_FEATURES` (or `HAND_FEATURES_WITH_MESH` when `vertices_xyz` is given).

    The labels must have passed `validate_hand_row`. `joints_uv` and `box` are computed from the projection
    with `K`; `scale` defaults to the length of bone 9-10 of `joints_xyz`. Numbers are rounded to float32, the
    precision of the features, so that a streamed row equals the row read back from a cached `Dataset`.

    Args:
        image: path of the image file, or an image (array / PIL) for `datasets.Image`.
        joints_xyz: (21, 3) metres, camera frame, FreiHAND order.
        K: (3, 3) intrinsics in pixels.
        is_left: whether the hand is a left hand.
        vertices_xyz: (778, 3) metres, camera frame, or None.
        scale: metric length of bone 9-10 in metres, or None to measure it on `joints_xyz`.
        mask: path or image of the hand's mask, or None.
    """
    joints_xyz = np.asarray(joints_xyz, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    joints_uv = project(joints_xyz, K)
    box_points = joints_uv
    row = {"image": image, "mask": mask}
    if vertices_xyz is not None:
        vertices_xyz = np.asarray(vertices_xyz, dtype=np.float64)
        box_points = np.concatenate([joints_uv, project(vertices_xyz, K)])
        row["vertices_xyz"] = vertices_xyz.astype(np.float32)
    row.update(
        joints_xyz=joints_xyz.astype(np.float32),
        joints_uv=joints_uv.astype(np.float32),
        K=K.astype(np.float32),
        scale=float(np.float32(reference_bone_length(joints_xyz) if scale is None else scale)),
        box=[float(value) for value in np.float32(hand_box(box_points))],
        is_left=bool(is_left),
    )
    return row


@dataclass
class RowCounts:
    """What a loader did with its candidate rows: the number it kept, and the number it skipped per reason."""

    rejects: Counter = field(default_factory=Counter)
    num_kept: int = 0

    def reject(self, reason: str) -> None:
        """Count one row skipped for `reason` (a `REJECT_*` string or one of the loader's own)."""
        self.rejects[reason] += 1

    def keep_if_valid(self, row: Mapping) -> bool:
        """Whether `row` passes `validate_hand_row`: counted as kept when it does, else as skipped for its reason."""
        reason = validate_hand_row(row)
        if reason is not None:
            self.reject(reason)
            return False
        self.num_kept += 1
        return True

    def log(self, logger: logging.Logger, source: str) -> None:
        """Log a warning with the count of skipped rows per reason; raise when no row was kept.

        Args:
            logger: the loader module's logger.
            source: e.g. "FreiHAND training (/data/FreiHAND_pub_v2)".
        """
        total_rejected = sum(self.rejects.values())
        if total_rejected:
            reasons = ", ".join(f"{count} {reason}" for reason, count in sorted(self.rejects.items()))
            logger.warning(
                "%s: skipped %d of %d rows: %s", source, total_rejected, total_rejected + self.num_kept, reasons
            )
        if self.num_kept == 0:
            raise HandDatasetError(f"{source}: no usable rows ({total_rejected} rejected)")


def file_stamps(paths: Iterable[Path]) -> list[tuple[str, int, int]]:
    """(path, size in bytes, modification time in ns) of each existing path: changes when the files change."""
    stamps = []
    for path in paths:
        if Path(path).exists():
            status = os.stat(path)
            stamps.append((str(Path(path).resolve()), status.st_size, status.st_mtime_ns))
    return stamps


def build_hand_dataset(
    generator: Callable,
    gen_kwargs: dict,
    features: Features,
    source_files: Iterable[Path],
    cache_dir: str | os.PathLike | None = None,
    keep_in_memory: bool = False,
) -> Dataset:
    """`Dataset.from_generator(generator, features, gen_kwargs)` with a cache key that follows the files.

    The fingerprint hashes the generator, its arguments and the size and modification time of
    `source_files` (annotation files and image folders), so editing or replacing a dataset's files never
    returns a stale cached copy. A `HandDatasetError` or `MissingDatasetFilesError` raised while generating
    is raised as is (not wrapped in `DatasetGenerationError`). Skipped rows are logged while generating, so a
    load served from the cache logs nothing.

    Args:
        generator: yields rows of `features`; called as `generator(**gen_kwargs)`.
        gen_kwargs: keyword arguments of `generator` (no lists: `datasets` would split them into shards).
        features: `HAND_FEATURES` or `HAND_FEATURES_WITH_MESH`.
        source_files: the files whose changes must invalidate the cache.
        cache_dir: where `datasets` writes the Arrow cache (default: `~/.cache/huggingface/datasets`).
        keep_in_memory: copy the data to memory instead of memory-mapping the cache.
    """
    fingerprint = Hasher.hash(
        {"generator": generator, "gen_kwargs": gen_kwargs, "features": features, "files": file_stamps(source_files)}
    )
    try:
        return Dataset.from_generator(
            generator,
            features=features,
            gen_kwargs=gen_kwargs,
            cache_dir=None if cache_dir is None else str(cache_dir),
            keep_in_memory=keep_in_memory,
            fingerprint=fingerprint,
        )
    except DatasetGenerationError as error:
        if isinstance(error.__cause__, (HandDatasetError, MissingDatasetFilesError)):
            raise error.__cause__ from None
        raise


def resolve_root(root: str | os.PathLike, release_folder: str, marker: str) -> tuple[Path, list[Path]]:
    """The dataset folder: `root` itself when it holds `marker`, else `root / release_folder` when that does.

    Returns:
        (folder, candidates): the chosen folder (`root` when neither holds `marker`, so that the missing-file
        error names the paths under `root`) and the folders tried, for error messages.
    """
    root = Path(root).expanduser()
    candidates = [root, root / release_folder]
    for candidate in candidates:
        if (candidate / marker).exists():
            return candidate, candidates
    return root, candidates
