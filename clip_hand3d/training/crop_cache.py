"""Crops computed once: a transform without randomness (no augmentation, one view) gives every epoch the same
samples, so they are computed once with `datasets.map` and read back from Arrow.

The crops are stored as uint8 (3 * S * S bytes an image, 49 KB at 128 pixels, 150 KB at 224) with their targets,
and `datasets` caches the table next to the source's Arrow files: a second run on the same rows with the same
transform reads it instead of cropping again. At 128 pixels the main process then prepares 1094 rows/s, prompt
tokens included, against 344 rows/s when each row is decoded, cropped and augmented
(`benchmarks/data_throughput.py`).
"""

import copy

import numpy as np
import pyarrow as pa
import torch
from datasets import Array2D, Array3D, Dataset, Features, List, Value

from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.training.data import INDEX_COLUMN, check_index_column, with_sample_transform
from clip_hand3d.training.transforms import HandBatchTransform, HandSampleTransform


def crop_features(image_size: int, num_vertices: int) -> Features:
    """The columns of a precomputed sample: `HandSampleTransform`'s outputs, the crop as uint8, and the index."""
    return Features(
        {
            "pixel_values": Array3D(shape=(3, image_size, image_size), dtype="uint8"),
            "joints_xyz": Array2D(shape=(NUM_JOINTS, 3), dtype="float32"),
            "K_crop": Array2D(shape=(3, 3), dtype="float32"),
            "joints_uvd": Array2D(shape=(NUM_JOINTS, 3), dtype="float32"),
            "vertices_uvd": Array2D(shape=(num_vertices, 3), dtype="float32"),
            "vertices_valid": Value("bool"),
            "joints_valid": List(Value("bool"), length=NUM_JOINTS),
            "scale": Value("float32"),
            "is_left": Value("bool"),
            INDEX_COLUMN: Value("int64"),
        }
    )


class CropBatch:
    """`datasets.map` function: rows in, their uint8 crops and targets out (a class so that it pickles)."""

    def __init__(self, transform: HandSampleTransform):
        self.batch_transform = HandBatchTransform(transform, index_column=INDEX_COLUMN)

    def __call__(self, batch: dict[str, list]) -> dict[str, list]:
        samples = self.batch_transform(batch)
        columns = {
            name: [value.item() if value.ndim == 0 else value.numpy() for value in values]
            for name, values in samples.items()
        }
        columns[INDEX_COLUMN] = list(batch[INDEX_COLUMN])
        return columns


def precompute_samples(dataset: Dataset, transform: HandSampleTransform, num_proc: int | None = None) -> Dataset:
    """The samples of `dataset` (with an `index` column, see `load_split`) through `transform`, as a dataset of
    uint8 crops and targets (`crop_features`), cached by `datasets` when `dataset` lives in Arrow files.

    Raises ValueError when `transform` is random: its samples change from epoch to epoch.
    """
    if transform.is_random:
        raise ValueError("precompute_samples needs a transform without augmentation or second view")
    check_index_column(dataset)
    crop_transform = copy.copy(transform)
    crop_transform.uint8_pixels = True
    return dataset.map(
        CropBatch(crop_transform),
        batched=True,
        batch_size=64,
        features=crop_features(transform.image_size, transform.num_vertices),
        remove_columns=dataset.column_names,
        num_proc=num_proc if num_proc and num_proc > 1 and len(dataset) >= 2 * num_proc else None,
        desc="cropping once (no augmentation)",
    )


def column_to_numpy(column: pa.ChunkedArray, shape: tuple[int, ...]) -> np.ndarray:
    """An Arrow column of fixed-shape values (scalars, fixed-length lists, `Array2D`, `Array3D`) as one numpy
    array (rows, *shape)."""
    array = column.combine_chunks()
    if isinstance(array, pa.ExtensionArray):
        array = array.storage
    while pa.types.is_list(array.type) or pa.types.is_fixed_size_list(array.type):
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False, writable=True).reshape(len(column), *shape)


def feature_shape(feature) -> tuple[int, ...]:
    """The shape of one value of a `crop_features` column."""
    if isinstance(feature, (Array2D, Array3D)):
        return tuple(feature.shape)
    if isinstance(feature, List):
        return (feature.length,)
    return ()


class PrecomputedHandRows(torch.utils.data.Dataset):
    """The samples of `precompute_samples` as a torch Dataset: the fields `TransformedHandRows` gives, with the
    crops normalised by `transform` as they are read."""

    def __init__(self, samples: Dataset, transform: HandSampleTransform):
        self.rows = samples.with_format("arrow")
        self.transform = transform
        self.shapes = {name: feature_shape(feature) for name, feature in samples.features.items()}

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> dict:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: list[int]) -> list[dict]:
        """The samples at `positions`, read from the Arrow table in one go."""
        table = self.rows[list(positions)]
        batch = {
            name: torch.from_numpy(column_to_numpy(table.column(name), shape)) for name, shape in self.shapes.items()
        }
        batch["pixel_values"] = self.transform.normalize_pixels(batch["pixel_values"])
        return [{name: values[offset] for name, values in batch.items()} for offset in range(len(positions))]


def hand_samples(
    dataset: Dataset, transform: HandSampleTransform, num_proc: int | None = None
) -> torch.utils.data.Dataset:
    """`dataset` (with an `index` column) as a torch Dataset of `transform`ed samples: computed once and cached
    when the transform has no randomness (`precompute_samples`), transformed as each row is read otherwise."""
    if transform.is_random:
        return with_sample_transform(dataset, transform)
    return PrecomputedHandRows(precompute_samples(dataset, transform, num_proc), transform)
