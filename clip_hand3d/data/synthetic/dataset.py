"""The synthetic set as `datasets` objects: a cached `Dataset` (`load_synthetic`) and a streaming
`IterableDataset` (`iter_synthetic`), both of `HAND_FEATURES_WITH_MESH` rows.
"""

import io
import itertools
import os
from collections.abc import Iterator

import PIL.Image
from datasets import Dataset, Features, IterableDataset, Split
from datasets.fingerprint import Hasher

from clip_hand3d.data.features import HAND_FEATURES_WITH_MESH
from clip_hand3d.data.synthetic.render import check_synthetic_image_size, render_sample
from clip_hand3d.data.synthetic.scene import check_split
from clip_hand3d.validation import check_non_negative_int, check_positive_int, check_probability

# Part of the cache key of `load_synthetic`: bump it when the samples change, so that caches are regenerated.
SYNTHETIC_DATA_VERSION = 2
# zlib level of the PNGs in data set caches: 3-4 times faster to write than the default (6), ~15 % larger.
PNG_COMPRESS_LEVEL = 1


def generate_rows(indices: list[int] | None, seed: int, image_size: int, split: str, p_left: float) -> Iterator[dict]:
    """Yield `render_sample` rows for `indices` (all indices from 0 on when None), images as PNG bytes."""
    for index in itertools.count() if indices is None else indices:
        row = render_sample(index, seed, image_size, split, p_left)
        yield {**row, "image": png_bytes(row["image"]), "mask": png_bytes(row["mask"])}


def png_bytes(image: PIL.Image.Image) -> dict:
    """`image` encoded for `datasets.Image` as a PNG with fast compression (lossless either way)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return {"bytes": buffer.getvalue(), "path": None}


def check_synthetic_arguments(seed: int, split: str, image_size: int, p_left: float) -> None:
    """Raise unless the arguments name a synthetic set (single samples or sequences)."""
    check_split(split)
    check_non_negative_int("seed", seed)
    check_synthetic_image_size(image_size)
    check_probability("p_left", p_left)


def cached_dataset(
    generator, features: Features, gen_kwargs: dict, version, num_proc: int | None, cache_dir
) -> Dataset:
    """`Dataset.from_generator` of `generator(**gen_kwargs)` rows, cached under a fingerprint of the arguments and
    `version` (the renderer's version: a new one renders anew); the split is `gen_kwargs["split"]`."""
    return Dataset.from_generator(
        generator,
        features=features,
        gen_kwargs=gen_kwargs,
        cache_dir=None if cache_dir is None else str(cache_dir),
        num_proc=num_proc,
        split=Split.TRAIN if gen_kwargs["split"] == "train" else Split.TEST,
        fingerprint=Hasher.hash({"gen_kwargs": gen_kwargs, "version": version}),
    )


def streaming_dataset(generator, features: Features, gen_kwargs: dict) -> IterableDataset:
    """`IterableDataset.from_generator` of `generator(**gen_kwargs)` rows, rendered while iterating."""
    split = Split.TRAIN if gen_kwargs["split"] == "train" else Split.TEST
    return IterableDataset.from_generator(generator, features=features, gen_kwargs=gen_kwargs, split=split)


def load_synthetic(
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int = 224,
    split: str = "train",
    num_proc: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    p_left: float = 0.0,
) -> Dataset:
    """The synthetic hand set as a `datasets.Dataset` of `HAND_FEATURES_WITH_MESH` rows.

    Args:
        num_samples: number of rows (indices 0 .. num_samples - 1).
        seed: non-negative seed of the set; rows are a function of (seed, split, index).
        image_size: side of the square images in pixels.
        split: "train" or "test", disjoint random streams.
        num_proc: processes rendering in parallel (None: this one).
        cache_dir: where `datasets` caches the Arrow table (default `~/.cache/huggingface/datasets`); the
            same arguments load the cached table instead of rendering again.
        p_left: probability of a (mirrored) left hand per row.
    """
    check_synthetic_arguments(seed, split, image_size, p_left)
    check_positive_int("num_samples", num_samples)
    gen_kwargs = {
        "indices": list(range(num_samples)),
        "seed": seed,
        "image_size": image_size,
        "split": split,
        "p_left": p_left,
    }
    return cached_dataset(
        generate_rows, HAND_FEATURES_WITH_MESH, gen_kwargs, SYNTHETIC_DATA_VERSION, num_proc, cache_dir
    )


def iter_synthetic(
    num_samples: int | None = None, seed: int = 0, image_size: int = 224, split: str = "train", p_left: float = 0.0
) -> IterableDataset:
    """The synthetic hand set as a streaming `datasets.IterableDataset` (rendered while iterating).

    Same rows as `load_synthetic` with the same arguments; endless when `num_samples` is None. With a
    `num_samples`, each index is a shard, so DataLoader workers render disjoint rows.
    """
    check_synthetic_arguments(seed, split, image_size, p_left)
    if num_samples is not None:
        check_positive_int("num_samples", num_samples)
    indices = None if num_samples is None else list(range(num_samples))
    gen_kwargs = {"indices": indices, "seed": seed, "image_size": image_size, "split": split, "p_left": p_left}
    return streaming_dataset(generate_rows, HAND_FEATURES_WITH_MESH, gen_kwargs)
