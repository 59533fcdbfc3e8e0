"""HandCLR's positive pairs: for every unlabeled hand, the hands of OTHER images with the most similar 2D pose.

    rows (`clip_hand3d.data.unlabeled`) -> the crop of each (box x1.3, left hands mirrored)
    -> its 21 2D keypoints (MediaPipe Hands on the crop, a trained clip-hand3d model on the crop, or a column),
       normalised to the crop: [0, 1], (0, 0) the crop's top-left corner, (1, 1) its bottom-right one
    -> 42 numbers, optionally PCA-reduced (to 14 by default)
    -> a faiss index (exact `IndexFlatL2`, or approximate IVF / HNSW for large pools; `auto`: exact up to 200,000
       rows, IVF above)
    -> each row's k nearest rows of other groups (never its own group: frames of one video are not positives;
       a row without a group is a group of its own), their Euclidean distances in that feature space.

The keypoints come from `keypoint_estimators`, computed by `keypoint_shards` in shards of rows written to
`OUT/keypoints/shard-NNNNN.npz` (atomically); a run that is stopped goes on where it stopped, skipping the shards on
disk. Crops where the estimator finds no hand are counted
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
from pathlib import Path

import numpy as np

from clip_hand3d.data.unlabeled import UnlabeledHands
from clip_hand3d.image_processing import DEFAULT_CROP_MARGIN
from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.training.keypoint_estimators import KeypointEstimator
from clip_hand3d.training.keypoint_shards import (
    DEFAULT_SHARD_SIZE,
    KEYPOINT_RANGE,
    compute_keypoints,
    write_atomic,
)

INDEX_TYPES = ("exact", "ivf", "hnsw", "auto")
# `auto` searches exactly up to this many rows (about 2 minutes on one thread), IVF above: on one thread IVF builds
# 30x faster than HNSW and searches as fast, at recall@5 0.99 (HNSW 1.0) on hand keypoints (docs/pretraining.md).
AUTO_EXACT_MAX_ROWS = 200_000
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
KEYPOINTS_FOLDER, PAIRS_FOLDER, SUMMARY_FILE = "keypoints", "pairs", "summary.json"


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
    write_atomic(out_dir / SUMMARY_FILE, lambda file: file.write(json.dumps(summary, indent=2).encode()))
    return summary


def load_mined_pairs(path: str | os.PathLike):
    """The pairs `datasets.Dataset` of a `mine-pairs` output folder (`OUT` or `OUT/pairs`)."""
    from datasets import load_from_disk

    path = Path(path)
    if (path / PAIRS_FOLDER).is_dir():
        path = path / PAIRS_FOLDER
    return load_from_disk(str(path))
