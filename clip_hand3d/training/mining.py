"""HandCLR's positive pairs: for every unlabeled hand, the hands of OTHER images with the most similar 2D pose.

    rows (`clip_hand3d.data.unlabeled`) -> the crop of each (box x1.3, left hands mirrored)
    -> its 21 2D keypoints (MediaPipe Hands on the crop, a trained clip-hand3d model on the crop, or a column),
       normalised to the crop: [0, 1], (0, 0) the crop's top-left corner, (1, 1) its bottom-right one
    -> 42 numbers, optionally PCA-reduced (to 14 by default)
    -> a faiss index (exact `IndexFlatL2`, or approximate IVF / HNSW for large pools; `auto`: exact up to 200,000
       rows, IVF above)
    -> each row's k nearest rows of other groups (never its own group: frames of one video are not positives;
       a row without a group is a group of its own), their Euclidean distances in that feature space.

Keypoints are computed in shards of rows written to `OUT/keypoints/shard-NNNNN.npz` (atomically); a run that is
stopped goes on where it stopped, skipping the shards on disk. Crops where the estimator finds no hand are counted
and left out of the pairs. `OUT/pairs` is a `datasets.Dataset` of rows {index (the unlabeled row), neighbors
(list of rows, nearest first), distances (list of float), keypoints_2d (21, 2) float32 (the row's normalised
keypoints)}; `OUT/summary.json` holds the counts, the timings and the index used.

Searching without a row's own group: each row asks the index for k' > k neighbours and drops those of its group;
rows left with fewer than k ask again with a larger k' (and, for IVF, more probed lists); rows still short when k'
reaches `MAX_K_PRIME` are searched exactly against every row outside their group. A row ends with fewer than k
neighbours only when fewer than k rows lie outside its group (reported in the summary).
"""

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

INDEX_TYPES = ("exact", "ivf", "hnsw", "auto")
# `auto` searches exactly up to this many rows (about 2 minutes on one thread), IVF above: on one thread IVF builds
# 30x faster than HNSW and searches as fast, at recall@5 0.99 (HNSW 1.0) on hand keypoints (docs/pretraining.md).
AUTO_EXACT_MAX_ROWS = 200_000
DEFAULT_SHARD_SIZE = 1024
DEFAULT_K = 5
DEFAULT_PCA_DIM = 14
# Search parameters of the approximate indexes (see `build_index`).
HNSW_NEIGHBORS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
IVF_PROBES = 32
# k' grows from 2k + 1 by this factor while rows lack neighbours, up to MAX_K_PRIME; then exact fallback.
K_PRIME_GROWTH = 4
MAX_K_PRIME = 2048
SEARCH_BATCH = 16384
SEARCH_CHUNK = 65536
PCA_FIT_ROWS = 200_000
KEYPOINTS_FOLDER, PAIRS_FOLDER, SUMMARY_FILE, CONFIG_FILE = "keypoints", "pairs", "summary.json", "config.json"
MEDIAPIPE_CONTEXT = 2.0
KEYPOINT_RANGE = "[0, 1] of the crop: (0, 0) its top-left corner, (1, 1) its bottom-right corner"


# --- keypoint estimators -----------------------------------------------------------------------------------------


class KeypointEstimator:
    """Turns crops into 21 2D keypoints in crop pixels (pixel centres at integers), None where it finds no hand.

    `crop_size` is the side of the crops it is given; `needs_pixels` False: it reads the row and the crop's
    transform only (no image is decoded); `batch_size` crops per call. `spec` names it in the summary.
    """

    spec = "estimator"
    crop_size = 224
    needs_pixels = True
    batch_size = 1
    # The estimator is given crops of `context` x the crop's side about the same centre (more of the image around
    # the hand); its keypoints are moved back into the crop.
    context = 1.0

    # The constructor's keyword arguments, with which worker processes build their own copy (None: they cannot).
    arguments: dict | None = None

    def estimate(
        self, crops: list[np.ndarray | None], affines: list[np.ndarray], rows: list[UnlabeledRow]
    ) -> list[np.ndarray | None]:
        raise NotImplementedError

    def close(self) -> None:
        """Free what the estimator holds."""


class MediaPipeKeypoints(KeypointEstimator):
    """MediaPipe Hands (`clip_hand3d.detection.MediaPipeHandDetector`, static images) on each crop; the most
    confident hand's 21 landmarks.

    MediaPipe's palm detector finds more hands with some of the image around them: it is given `context` (2) x the
    crop (found on 25 of 48 synthetic frames at 2, 14 at 1: `docs/pretraining.md`).
    """

    def __init__(
        self,
        crop_size: int = 224,
        model_complexity: int = 1,
        min_detection_confidence: float = 0.5,
        context: float = MEDIAPIPE_CONTEXT,
    ):
        from clip_hand3d.detection import MediaPipeHandDetector

        self.spec = "mediapipe"
        self.crop_size = int(crop_size)
        self.context = float(context)
        self.arguments = {
            "crop_size": crop_size,
            "model_complexity": model_complexity,
            "min_detection_confidence": min_detection_confidence,
            "context": context,
        }
        self.detector = MediaPipeHandDetector(
            max_num_hands=1, model_complexity=model_complexity, min_detection_confidence=min_detection_confidence
        )

    def estimate(self, crops, affines, rows):
        results = []
        for crop in crops:
            hands = _landmarks_and_scores(self.detector.detect_landmarks(np.ascontiguousarray(crop)))
            results.append(max(hands, key=lambda hand: hand[1])[0] if hands else None)
        return results

    def close(self) -> None:
        self.detector.close()


def _landmarks_and_scores(found) -> list[tuple[np.ndarray, float]]:
    """(landmarks, score) per hand of `MediaPipeHandDetector.detect_landmarks`' answer: a list of hands with
    `landmarks` and `score`, or (as before it had them) the tuple (landmarks, labels, scores)."""
    if isinstance(found, tuple) and len(found) == 3 and not hasattr(found, "landmarks"):
        landmarks, _, scores = found
        return list(zip(landmarks, scores, strict=True))
    return [(hand.landmarks, hand.score) for hand in found]


class ModelKeypoints(KeypointEstimator):
    """A trained clip-hand3d model (a folder or Hub id with its processor) on each crop: its `keypoints_2d`, the
    crop being the whole image it is given (the crops are made at the model's input size)."""

    def __init__(self, name_or_path: str, batch_size: int = 32, device: str = "cpu"):
        import torch

        from clip_hand3d.modeling import CLIPHand3DModel
        from clip_hand3d.variants import load_processor

        self.spec = f"model:{name_or_path}"
        self.arguments = {"name_or_path": name_or_path, "batch_size": batch_size, "device": device}
        self.torch = torch
        self.device = device
        self.model = CLIPHand3DModel.from_pretrained(name_or_path, with_text_model=False).to(device).eval()
        self.processor = load_processor(name_or_path, self.model.config)
        self.crop_size = int(self.processor.image_processor.image_size)
        self.batch_size = int(batch_size)

    def estimate(self, crops, affines, rows):
        inputs = self.processor(images=list(crops))
        with self.torch.inference_mode():
            outputs = self.model(pixel_values=inputs["pixel_values"].to(self.device))
        outputs.joints_uvd = outputs.joints_uvd.float().cpu()
        outputs.vertices_uvd = outputs.vertices_uvd.float().cpu()
        return [hand["keypoints_2d"] for hand in self.processor.post_process(outputs, inputs)]


class ColumnKeypoints(KeypointEstimator):
    """Keypoints read from a column of the rows: (21, 2) pixels of the row's image (e.g. the labels' `joints_uv`),
    moved into the crop (mirrored for left hands) as the image is. Rows whose value is None or not finite count as
    no hand."""

    needs_pixels = False

    def __init__(self, column: str, crop_size: int = 224):
        self.spec = f"column:{column}"
        self.arguments = {"column": column, "crop_size": crop_size}
        self.column = column
        self.crop_size = int(crop_size)
        self.batch_size = 256

    def estimate(self, crops, affines, rows):
        results = []
        for affine, row in zip(affines, rows, strict=True):
            value = row.columns[self.column]
            if value is None:
                results.append(None)
                continue
            try:
                points = np.asarray(value, dtype=np.float64).reshape(NUM_JOINTS, 2)
            except (TypeError, ValueError) as error:
                raise UnlabeledDataError(
                    f"{row.name}: column {self.column!r} must hold {NUM_JOINTS} x 2 keypoints (pixels), got "
                    f"{np.shape(value)}"
                ) from error
            results.append(apply_affine(points, affine) if np.isfinite(points).all() else None)
        return results


def make_keypoint_estimator(
    spec: str, crop_size: int = 224, batch_size: int = 32, device: str = "cpu"
) -> KeypointEstimator:
    """`mediapipe`, `model:DIR` or `column:NAME` -> its estimator."""
    kind, _, value = spec.partition(":")
    if spec == "mediapipe":
        return MediaPipeKeypoints(crop_size)
    if kind == "model" and value:
        return ModelKeypoints(value, batch_size=batch_size, device=device)
    if kind == "column" and value:
        return ColumnKeypoints(value, crop_size)
    raise ValueError(f"--keypoints {spec!r}: use mediapipe, model:DIR (a trained clip-hand3d model) or column:NAME")


# --- keypoints in shards -----------------------------------------------------------------------------------------


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


def _write_atomic(path: Path, write) -> None:
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
        _write_atomic(path, lambda file: file.write(json.dumps(config, indent=2).encode()))


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
    _write_atomic(_shard_path(_WORKER["folder"], shard), lambda file: np.savez(file, **arrays))
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
                    _write_atomic(path, lambda file, arrays=arrays: np.savez(file, **arrays))
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


def group_ids(group: np.ndarray, has_group: np.ndarray) -> np.ndarray:
    """(n,) int64 ids: rows of one group share one; a row without a group gets an id of its own."""
    ids = np.empty(len(group), dtype=np.int64)
    _, inverse = np.unique(group[has_group], return_inverse=True)
    ids[has_group] = inverse
    offset = int(inverse.max()) + 1 if inverse.size else 0
    ids[~has_group] = offset + np.arange(int((~has_group).sum()))
    return ids


# --- features and the index --------------------------------------------------------------------------------------


def fit_pca(features: np.ndarray, dim: int, seed: int = 0, max_rows: int = PCA_FIT_ROWS):
    """(mean (D,), components (dim, D), explained variance ratio (dim,)) of `features` (a random subset of at most
    `max_rows`)."""
    if not 0 < dim <= features.shape[1]:
        raise ValueError(f"the PCA dimension must be in 1..{features.shape[1]}, got {dim}")
    sample = features
    if len(features) > max_rows:
        sample = features[np.sort(np.random.default_rng(seed).choice(len(features), max_rows, replace=False))]
    sample = sample.astype(np.float64)
    mean = sample.mean(axis=0)
    _, singular, components = np.linalg.svd(sample - mean, full_matrices=False)
    variance = singular**2
    return mean, components[:dim], variance[:dim] / max(variance.sum(), 1e-30)


def resolve_index_type(kind: str, num_rows: int) -> str:
    """`auto` -> `exact` up to `AUTO_EXACT_MAX_ROWS` rows, `ivf` above; other kinds as they are."""
    if kind not in INDEX_TYPES:
        raise ValueError(f"index must be one of {', '.join(INDEX_TYPES)}, got {kind!r}")
    if kind == "auto":
        return "exact" if num_rows <= AUTO_EXACT_MAX_ROWS else "ivf"
    return kind


def build_index(features: np.ndarray, kind: str, seed: int = 0, nlist: int | None = None):
    """A faiss index over `features` (n, d) float32 (L2): `exact` (IndexFlatL2), `ivf` (IndexIVFFlat, `nlist` lists,
    default about 4 sqrt(n), trained on at most 256 points per list) or `hnsw` (IndexHNSWFlat, `HNSW_NEIGHBORS`
    links per node). Returns (index, its parameters as a dict)."""
    import faiss

    features = np.ascontiguousarray(features, dtype=np.float32)
    num_rows, dim = features.shape
    kind = resolve_index_type(kind, num_rows)
    if kind == "exact":
        index, params = faiss.IndexFlatL2(dim), {}
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBORS)
        index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        index.hnsw.efSearch = HNSW_EF_SEARCH
        params = {"M": HNSW_NEIGHBORS, "efConstruction": HNSW_EF_CONSTRUCTION, "efSearch": HNSW_EF_SEARCH}
    else:
        nlist = nlist or int(np.clip(round(4 * math.sqrt(num_rows)), 1, max(1, num_rows // 39)))
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist)
        train = features
        if num_rows > 256 * nlist:
            train = features[np.random.default_rng(seed).choice(num_rows, 256 * nlist, replace=False)]
        index.cp.seed = seed
        index.train(train)
        index.nprobe = min(nlist, IVF_PROBES)
        params = {"nlist": nlist, "nprobe": index.nprobe}
    index.add(features)
    params["type"] = kind
    return index, params


def _search(index, queries: np.ndarray, k: int, kind: str, nprobe: int | None) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    if kind == "hnsw":
        parameters = faiss.SearchParametersHNSW(efSearch=max(HNSW_EF_SEARCH, k))
    elif kind == "ivf":
        parameters = faiss.SearchParametersIVF(nprobe=nprobe)
    else:
        parameters = None
    distances, labels = [], []
    for start in range(0, len(queries), SEARCH_BATCH):
        batch = np.ascontiguousarray(queries[start : start + SEARCH_BATCH], dtype=np.float32)
        found_distances, found_labels = index.search(batch, k, params=parameters)
        distances.append(found_distances)
        labels.append(found_labels)
    return np.concatenate(distances), np.concatenate(labels)


def _exact_other_groups(features: np.ndarray, groups: np.ndarray, rows: np.ndarray, k: int):
    """Exact k nearest rows outside each row's group for `rows` (few): (labels (m, k) -1 padded, squared distances)."""
    labels = np.full((len(rows), k), -1, dtype=np.int64)
    distances = np.full((len(rows), k), np.inf, dtype=np.float32)
    features = features.astype(np.float32)
    norms = (features * features).sum(axis=1)
    chunk = max(1, 2**24 // max(1, len(features)))
    for start in range(0, len(rows), chunk):
        query_rows = rows[start : start + chunk]
        queries = features[query_rows]
        squared = norms[None] - 2 * queries @ features.T + norms[query_rows, None]
        squared[groups[None] == groups[query_rows, None]] = np.inf
        take = min(k, squared.shape[1])
        nearest = np.argpartition(squared, take - 1, axis=1)[:, :take]
        nearest_distances = np.take_along_axis(squared, nearest, axis=1)
        order = np.argsort(nearest_distances, axis=1, kind="stable")
        nearest, nearest_distances = (
            np.take_along_axis(nearest, order, 1),
            np.take_along_axis(nearest_distances, order, 1),
        )
        valid = np.isfinite(nearest_distances)
        labels[start : start + len(query_rows), :take] = np.where(valid, nearest, -1)
        distances[start : start + len(query_rows), :take] = np.where(valid, np.maximum(nearest_distances, 0), np.inf)
    return labels, distances


def search_other_groups(
    index,
    features: np.ndarray,
    groups: np.ndarray,
    k: int,
    kind: str,
    nprobe: int | None = None,
    chunk_size: int = SEARCH_CHUNK,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """Every row's k nearest rows of other groups: labels (n, k) int64 positions (-1 where there are fewer), their
    Euclidean distances (n, k) float32 (inf there), and what the search did (most rounds and largest k' of a chunk
    of `chunk_size` queries, rows searched by the exact fallback). Queries go in chunks, so memory stays at
    `chunk_size` x k' results."""
    from tqdm.auto import tqdm

    num_rows = len(features)
    labels = np.full((num_rows, k), -1, dtype=np.int64)
    distances = np.full((num_rows, k), np.inf, dtype=np.float32)
    info = {"search_rounds": 0, "k_prime_reached": 0, "exact_fallback_rows": 0}
    with tqdm(total=num_rows, unit="row", desc="neighbours", disable=not progress) as bar:
        for start in range(0, num_rows, chunk_size):
            rows = np.arange(start, min(num_rows, start + chunk_size))
            rounds, k_prime, fallback = _search_rows(index, features, groups, rows, k, kind, nprobe, labels, distances)
            info["search_rounds"] = max(info["search_rounds"], rounds)
            info["k_prime_reached"] = max(info["k_prime_reached"], k_prime)
            info["exact_fallback_rows"] += fallback
            bar.update(len(rows))
    return labels, distances, info


def _search_rows(index, features, groups, pending, k, kind, nprobe, labels, distances) -> tuple[int, int, int]:
    """Fill `labels` and `distances` of the rows `pending`; returns (rounds, the last k', exact fallback rows)."""
    num_rows = len(features)
    k_prime = min(num_rows, 2 * k + 1)
    rounds, fallback = 0, 0
    if kind == "ivf" and nprobe is None:
        nprobe = index.nprobe
    while pending.size:
        rounds += 1
        found_distances, found_labels = _search(index, features[pending], k_prime, kind, nprobe)
        valid = found_labels >= 0
        valid &= groups[np.where(valid, found_labels, 0)] != groups[pending, None]
        order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
        count = np.minimum(valid.sum(axis=1), k)
        chosen = np.take_along_axis(valid, order, 1)
        labels[pending] = np.where(chosen, np.take_along_axis(found_labels, order, 1), -1)
        distances[pending] = np.where(
            chosen, np.sqrt(np.maximum(np.take_along_axis(found_distances, order, 1), 0)), np.inf
        )
        # Exact search over every row has seen all there is; approximate searches may have missed some.
        complete = (count == k) | ((kind == "exact") & (k_prime >= num_rows))
        pending = pending[~complete]
        if not pending.size:
            break
        if k_prime >= min(num_rows, MAX_K_PRIME):
            fallback = len(pending)
            exact_labels, exact_squared = _exact_other_groups(features, groups, pending, k)
            labels[pending] = exact_labels
            distances[pending] = np.sqrt(exact_squared)
            break
        k_prime = min(num_rows, MAX_K_PRIME, k_prime * K_PRIME_GROWTH)
        if kind == "ivf" and nprobe is not None:
            nprobe = min(index.nlist, nprobe * 2)
    return rounds, int(k_prime), int(fallback)


def recall_at_k(approximate: np.ndarray, exact: np.ndarray) -> float:
    """The share of the exact k nearest neighbours (n, k) that the approximate search found (labels -1 ignored)."""
    hits = sum(len(set(a[a >= 0]) & set(e[e >= 0])) for a, e in zip(approximate, exact, strict=True))
    return hits / max(1, int((exact >= 0).sum()))


# --- the whole run -----------------------------------------------------------------------------------------------


def _write_pairs(folder: Path, index, labels, distances, keypoints) -> None:
    """The pairs dataset at `folder` (written beside it, then moved in place), built as Arrow columns at once (2M
    rows in seconds)."""
    import shutil

    import pyarrow as pa
    from datasets import Array2D, Dataset, DatasetInfo, Features, List, Value

    features = Features(
        {
            "index": Value("int64"),
            "neighbors": List(Value("int64")),
            "distances": List(Value("float32")),
            "keypoints_2d": Array2D(shape=(NUM_JOINTS, 2), dtype="float32"),
        }
    )
    num_rows = len(index)
    valid = labels >= 0  # a prefix of each row: the nearest first
    offsets = np.concatenate([[0], np.cumsum(valid.sum(axis=1))]).astype(np.int64)
    points = np.ascontiguousarray(keypoints, dtype=np.float32).reshape(-1)
    keypoint_column = pa.LargeListArray.from_arrays(
        np.arange(0, num_rows * NUM_JOINTS + 1, NUM_JOINTS, dtype=np.int64),
        pa.LargeListArray.from_arrays(np.arange(0, points.size + 1, 2, dtype=np.int64), pa.array(points)),
    )
    table = pa.table(
        {
            "index": pa.array(np.asarray(index, dtype=np.int64)),
            "neighbors": pa.LargeListArray.from_arrays(offsets, pa.array(np.asarray(index)[labels[valid]])),
            "distances": pa.LargeListArray.from_arrays(offsets, pa.array(distances[valid].astype(np.float32))),
            "keypoints_2d": keypoint_column,
        }
    ).cast(features.arrow_schema)
    dataset = Dataset(table, info=DatasetInfo(features=features))
    temporary = folder.with_name(f".{folder.name}.tmp")
    shutil.rmtree(temporary, ignore_errors=True)
    try:
        dataset.save_to_disk(str(temporary))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(temporary, folder)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def mine_pairs(
    source: UnlabeledHands,
    estimator: KeypointEstimator,
    out_dir: str | os.PathLike,
    k: int = DEFAULT_K,
    index: str = "auto",
    pca: int | None = DEFAULT_PCA_DIM,
    shard_size: int = DEFAULT_SHARD_SIZE,
    crop_margin: float = DEFAULT_CROP_MARGIN,
    seed: int = 0,
    progress: bool = True,
    num_workers: int = 1,
    skip_unreadable: bool = False,
) -> dict:
    """Keypoints of every row of `source` (resumable; by `num_workers` processes), the k nearest rows of other
    groups of each, written to `out_dir` (`pairs/`, `summary.json`, `keypoints/`); returns the summary."""
    if not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    out_dir = Path(out_dir)
    start = time.perf_counter()
    table = compute_keypoints(
        source, estimator, out_dir / KEYPOINTS_FOLDER, shard_size, crop_margin, progress, num_workers, skip_unreadable
    )
    keypoint_seconds = time.perf_counter() - start
    groups_all = group_ids(table.group, table.has_group)
    found = table.found
    positions = np.flatnonzero(found)
    if len(positions) < 2:
        raise ValueError(
            f"{source.name}: {estimator.spec} found keypoints in {len(positions)} of {len(found)} crops; mining needs "
            "at least two"
        )
    features = table.keypoints[positions].reshape(len(positions), -1).astype(np.float32)
    groups = groups_all[positions]
    pca_info = None
    if pca:
        # A pool smaller than the dimension has fewer components.
        dim = min(int(pca), len(features))
        mean, components, explained = fit_pca(features, dim, seed)
        features = ((features - mean) @ components.T).astype(np.float32)
        pca_info = {"dim": dim, "requested_dim": int(pca), "explained_variance": float(explained.sum())}
    build_start = time.perf_counter()
    faiss_index, params = build_index(features, index, seed)
    build_seconds = time.perf_counter() - build_start
    search_start = time.perf_counter()
    labels, distances, search_info = search_other_groups(
        faiss_index, features, groups, k, params["type"], params.get("nprobe"), progress=progress
    )
    search_seconds = time.perf_counter() - search_start
    counts = (labels >= 0).sum(axis=1)
    short = counts < k
    _write_pairs(out_dir / PAIRS_FOLDER, table.index[positions], labels, distances, table.keypoints[positions])
    summary = {
        "dataset": source.name,
        "keypoints": estimator.spec,
        "keypoint_range": KEYPOINT_RANGE,
        "crop_size": estimator.crop_size,
        "crop_margin": float(crop_margin),
        "num_rows": int(len(found)),
        "num_with_keypoints": int(found.sum()),
        "num_no_hand": int((~found & ~table.unreadable).sum()),
        "no_hand_rows": table.index[~found & ~table.unreadable][:100].tolist(),
        "num_unreadable": int(table.unreadable.sum()),
        "unreadable_rows": table.index[table.unreadable][:100].tolist(),
        "num_groups": int(len(np.unique(groups_all))),
        "num_rows_without_group": int((~table.has_group).sum()),
        "k": k,
        "num_rows_with_fewer_than_k": int(short.sum()),
        "rows_with_fewer_than_k": table.index[positions][short][:100].tolist(),
        "mean_neighbor_distance": float(np.mean(distances[np.isfinite(distances)])) if counts.any() else None,
        "feature_dim": int(features.shape[1]),
        "pca": pca_info,
        "index": {"requested": index, **params, **search_info},
        "seconds_per_image": table.seconds / len(found),
        "num_workers": num_workers,
        "seconds_keypoints": table.seconds,
        "seconds_index_build": build_seconds,
        "seconds_search": search_seconds,
        "seconds_this_run": time.perf_counter() - start,
        "seconds_this_run_keypoints": keypoint_seconds,
        "shards": {
            "size": shard_size,
            "count": table.num_shards,
            "computed": table.num_computed_shards,
            "skipped": table.num_shards - table.num_computed_shards,
        },
        "pairs": str(out_dir / PAIRS_FOLDER),
    }
    _write_atomic(out_dir / SUMMARY_FILE, lambda file: file.write(json.dumps(summary, indent=2).encode()))
    return summary


def load_mined_pairs(path: str | os.PathLike):
    """The pairs `datasets.Dataset` of a `mine-pairs` output folder (`OUT` or `OUT/pairs`)."""
    from datasets import load_from_disk

    path = Path(path)
    if (path / PAIRS_FOLDER).is_dir():
        path = path / PAIRS_FOLDER
    return load_from_disk(str(path))
