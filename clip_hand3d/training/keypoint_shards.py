"""The keypoints of every row of an unlabeled source, computed by a `KeypointEstimator` in shards of rows written
atomically to `FOLDER/shard-NNNNN.npz` beside `FOLDER/config.json`; a run that is stopped goes on where it stopped,
skipping the shards on disk, and keypoints of another run (other data, estimator, crop or shard size) are refused.
Random-access sources can be computed by several processes."""

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clip_hand3d.data.unlabeled import (
    UnlabeledDataError,
    UnlabeledHands,
    UnlabeledRow,
    crop_processor,
    crop_transform,
    normalize_keypoints,
)
from clip_hand3d.geometry import apply_affine, invert_affine
from clip_hand3d.image_processing import DEFAULT_CROP_MARGIN
from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.training.keypoint_estimators import KeypointEstimator

DEFAULT_SHARD_SIZE = 1024
CONFIG_FILE = "config.json"
KEYPOINT_RANGE = "[0, 1] of the crop: (0, 0) its top-left corner, (1, 1) its bottom-right corner"


@dataclass
class KeypointTable:
    """Every row's keypoints: `index` (n,) rows of the source, `group` (n,) strings ("" where `has_group` is False),
    `keypoints` (n, 21, 2) normalised to the crop (NaN where no hand was found), `found` (n,), `unreadable` (n,)
    (rows whose image could not be read, with `skip_unreadable`), `seconds` (the time
    spent cropping and estimating, all shards), `num_computed` (rows whose keypoints this run computed)."""

    index: np.ndarray
    group: np.ndarray
    has_group: np.ndarray
    keypoints: np.ndarray
    found: np.ndarray
    unreadable: np.ndarray
    seconds: float
    num_shards: int
    num_computed: int = 0
    num_computed_shards: int = 0


def _shard_path(folder: Path, shard: int) -> Path:
    return folder / f"shard-{shard:05d}.npz"


def write_atomic(path: Path, write) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(temporary, "wb") as file:
        write(file)
    os.replace(temporary, path)


def _check_config(folder: Path, config: dict) -> None:
    """Write the run's config, or refuse to go on with keypoints of another run."""
    path = folder / CONFIG_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != config:
            changed = sorted(key for key in set(saved) | set(config) if saved.get(key) != config.get(key))
            raise ValueError(
                f"{folder} holds keypoints of another run (different {', '.join(changed)}: {saved} here, {config} "
                "now); use another --out, or delete it"
            )
    else:
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(path, lambda file: file.write(json.dumps(config, indent=2).encode()))


def _shard_rows(source: UnlabeledHands, shard_size: int, done) -> Iterator[tuple[int, list[UnlabeledRow] | int]]:
    """(shard, its rows) for shards to compute and (shard, number of rows) for shards on disk, in order."""
    if source.random_access:
        num_rows = len(source)
        for shard in range(math.ceil(num_rows / shard_size)):
            start = shard * shard_size
            stop = min(num_rows, start + shard_size)
            if done(shard):
                yield shard, stop - start
            else:
                rows = source.iter_rows(start)
                yield shard, [next(rows) for _ in range(stop - start)]
        return
    shard, rows = 0, []
    for row in source.iter_rows():
        rows.append(row)
        if len(rows) == shard_size:
            yield shard, len(rows) if done(shard) else rows
            shard, rows = shard + 1, []
    if rows:
        yield shard, len(rows) if done(shard) else rows


def _estimate_shard(
    rows: list[UnlabeledRow],
    estimator: KeypointEstimator,
    processor,
    context_processor,
    skip_unreadable: bool = False,
) -> dict:
    """The keypoints of one shard's rows (and what `compute_keypoints` stores with them). With `skip_unreadable`, a
    row whose image cannot be read is marked `unreadable` instead of stopping the run."""
    start = time.perf_counter()
    keypoints = np.full((len(rows), NUM_JOINTS, 2), np.nan, dtype=np.float32)
    unreadable = np.zeros(len(rows), dtype=bool)
    for batch_start in range(0, len(rows), estimator.batch_size):
        positions, batch, crops, affines, crop_affines = [], [], [], [], []
        for position in range(batch_start, min(len(rows), batch_start + estimator.batch_size)):
            row = rows[position]
            try:
                if estimator.needs_pixels or row.box is None:
                    image = row.load_image()
                    affine = crop_transform(row, context_processor, image)
                    crop = context_processor.crop(image, affine) if estimator.needs_pixels else None
                    crop_affine = crop_transform(row, processor, image)
                else:
                    crop, affine = None, crop_transform(row, context_processor)
                    crop_affine = crop_transform(row, processor)
            except UnlabeledDataError:
                if not skip_unreadable:
                    raise
                unreadable[position] = True
                continue
            positions.append(position)
            batch.append(row)
            crops.append(crop)
            affines.append(affine)
            crop_affines.append(crop_affine)
        if not batch:
            continue
        for offset, points in enumerate(estimator.estimate(crops, affines, batch)):
            if points is not None:
                points = np.asarray(points, dtype=np.float64)
                if points.shape != (NUM_JOINTS, 2):
                    raise ValueError(f"{estimator.spec} returned keypoints of shape {points.shape}, not (21, 2)")
                if context_processor is not processor:  # from the wider crop back into the crop
                    points = apply_affine(apply_affine(points, invert_affine(affines[offset])), crop_affines[offset])
                keypoints[positions[offset]] = normalize_keypoints(points, estimator.crop_size)
    return {
        "index": np.array([row.index for row in rows], dtype=np.int64),
        "group": np.array(["" if row.group is None else row.group for row in rows], dtype=str),
        "has_group": np.array([row.group is not None for row in rows], dtype=bool),
        "keypoints": keypoints,
        "found": np.isfinite(keypoints).all(axis=(1, 2)),
        "unreadable": unreadable,
        "seconds": np.float64(time.perf_counter() - start),
    }


_WORKER: dict = {}


def _init_worker(source, estimator_class, arguments, crop_margin, folder, shard_size, skip_unreadable) -> None:
    import torch

    torch.set_num_threads(1)  # one process per core
    estimator = estimator_class(**arguments)
    _WORKER.update(
        source=source,
        estimator=estimator,
        processor=crop_processor(estimator.crop_size, crop_margin),
        context_processor=crop_processor(estimator.crop_size, crop_margin * estimator.context),
        folder=Path(folder),
        shard_size=shard_size,
        skip_unreadable=skip_unreadable,
    )


def _worker_shard(shard: int) -> int:
    """Compute and write shard `shard` in a worker process; returns its number of rows."""
    source, shard_size = _WORKER["source"], _WORKER["shard_size"]
    start = shard * shard_size
    rows_iterator = source.iter_rows(start)
    rows = [next(rows_iterator) for _ in range(min(len(source), start + shard_size) - start)]
    processor, context_processor = _WORKER["processor"], _WORKER["context_processor"]
    if _WORKER["estimator"].context == 1:
        context_processor = processor
    arrays = _estimate_shard(rows, _WORKER["estimator"], processor, context_processor, _WORKER["skip_unreadable"])
    write_atomic(_shard_path(_WORKER["folder"], shard), lambda file: np.savez(file, **arrays))
    return len(rows)


def _compute_in_workers(
    source, estimator, folder, shard_size, crop_margin, num_workers, skip_unreadable, bar
) -> tuple[list, int, int]:
    """The shards of a random-access source, the missing ones computed by `num_workers` processes."""
    import multiprocessing

    if estimator.arguments is None:
        raise ValueError(f"{type(estimator).__name__} cannot be copied into worker processes; use num_workers=1")
    num_shards = math.ceil(len(source) / shard_size)
    paths = [_shard_path(folder, shard) for shard in range(num_shards)]
    pending = [shard for shard, path in enumerate(paths) if not path.is_file()]
    bar.update(len(source) - sum(min(len(source), (s + 1) * shard_size) - s * shard_size for s in pending))
    num_computed = 0
    if pending:
        initargs = (source, type(estimator), estimator.arguments, crop_margin, folder, shard_size, skip_unreadable)
        # Spawned, not forked: MediaPipe's and torch's threads do not survive a fork.
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(num_workers, len(pending)), initializer=_init_worker, initargs=initargs) as pool:
            for num_rows in pool.imap_unordered(_worker_shard, pending):
                num_computed += num_rows
                bar.update(num_rows)
    return paths, num_computed, len(pending)


def compute_keypoints(
    source: UnlabeledHands,
    estimator: KeypointEstimator,
    folder: str | os.PathLike,
    shard_size: int = DEFAULT_SHARD_SIZE,
    crop_margin: float = DEFAULT_CROP_MARGIN,
    progress: bool = True,
    num_workers: int = 1,
    skip_unreadable: bool = False,
) -> KeypointTable:
    """Every row's keypoints, computed shard by shard into `folder` (shards already there are skipped); with
    `num_workers` > 1, by that many processes (a random-access source; each builds its own estimator from
    `estimator.arguments`). `skip_unreadable`: rows whose image cannot be read are counted, not fatal."""
    from tqdm.auto import tqdm

    if shard_size < 1:
        raise ValueError(f"shard_size must be positive, got {shard_size}")
    if num_workers < 1:
        raise ValueError(f"num_workers must be positive, got {num_workers}")
    if num_workers > 1 and not source.random_access:
        raise ValueError(
            f"{source.name} is a stream, read by one process: num_workers > 1 needs a random-access source "
            "(an image folder, disk:PATH, hub:NAME, synthetic)"
        )
    folder = Path(folder)
    config = {
        "dataset": source.name,
        "keypoints": estimator.spec,
        "crop_size": estimator.crop_size,
        "crop_margin": float(crop_margin),
        "context": estimator.context,
        "shard_size": int(shard_size),
        "keypoint_range": KEYPOINT_RANGE,
    }
    _check_config(folder, config)
    processor = crop_processor(estimator.crop_size, crop_margin)
    context_processor = processor
    if estimator.context != 1:
        context_processor = crop_processor(estimator.crop_size, crop_margin * estimator.context)
    shards, num_computed, num_computed_shards = [], 0, 0
    bar = tqdm(total=source.num_rows, unit="img", desc="keypoints", disable=not progress)
    try:
        if num_workers > 1:
            shards, num_computed, num_computed_shards = _compute_in_workers(
                source, estimator, folder, shard_size, crop_margin, num_workers, skip_unreadable, bar
            )
        else:
            for shard, rows in _shard_rows(source, shard_size, lambda shard: _shard_path(folder, shard).is_file()):
                path = _shard_path(folder, shard)
                if isinstance(rows, int):
                    bar.update(rows)
                else:
                    arrays = _estimate_shard(rows, estimator, processor, context_processor, skip_unreadable)
                    write_atomic(path, lambda file, arrays=arrays: np.savez(file, **arrays))
                    num_computed += len(rows)
                    num_computed_shards += 1
                    bar.update(len(rows))
                shards.append(path)
    finally:
        bar.close()
    if not shards:
        raise UnlabeledDataError(f"{source.name} holds no rows")
    parts = []
    for path in shards:
        with np.load(path) as data:
            parts.append({key: data[key] for key in data.files})
    return KeypointTable(
        index=np.concatenate([part["index"] for part in parts]),
        group=np.concatenate([part["group"] for part in parts]),
        has_group=np.concatenate([part["has_group"] for part in parts]),
        keypoints=np.concatenate([part["keypoints"] for part in parts]),
        found=np.concatenate([part["found"] for part in parts]),
        unreadable=np.concatenate([part.get("unreadable", np.zeros(len(part["index"]), bool)) for part in parts]),
        seconds=float(sum(float(part["seconds"]) for part in parts)),
        num_shards=len(parts),
        num_computed=num_computed,
        num_computed_shards=num_computed_shards,
    )
