"""The data of encoder pre-training: unlabeled hand crops, two views per sample, cropped as the image processor
crops (one definition of a crop, see `clip_hand3d.training.transforms`).

Unlabeled rows are {image, box (x1, y1, x2, y2 pixels, optional), is_left (optional), group (optional)}: the box
enlarged by the processor's margin (x1.3), left hands mirrored to right ones, resized to the processor's size; no
box: the whole image. Each view is that crop moved by a random similarity (rotation, scale, shift;
`HandAugmentationConfig`) and colour-jittered; `view_affine` is that similarity in the crop's normalised
coordinates (`pretraining_objectives.normalised_view_affine`), for PeCLR's equivariance.

Positives: SimCLR and PeCLR take two views of one row. HandCLR takes a view of a row and a view of one of its
mined neighbours, read from a pairs dataset of rows {index (the unlabeled row), neighbors (rows of other images and
groups, nearest first), distances, keypoints_2d (21, 2), the row's 2D keypoints normalised to its crop} (what
`clip-hand3d mine-pairs` writes); the keypoints of both views feed HandCLR's adaptive weights.
"""

from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, load_from_disk

from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.image_utils import rgb_image
from clip_hand3d.training.augmentation import (
    HandAugmentationConfig,
    augmentation_affine,
    jitter_colour,
    sample_view_augmentation,
)
from clip_hand3d.training.pretraining_objectives import normalised_view_affine

UNLABELED_COLUMNS = ("image", "box", "is_left", "group")
PAIR_COLUMNS = ("index", "neighbors", "distances", "keypoints_2d")


def load_unlabeled(spec: str, image_size: int, seed: int = 0, num_proc: int | None = None) -> Dataset:
    """The unlabeled pool of `spec`: `synthetic:N` (the built-in hands, every label column dropped: the image,
    its box and handedness only) or `disk:PATH` (a `datasets.Dataset` saved with `save_to_disk`)."""
    name, _, value = spec.partition(":")
    if name == "synthetic":
        from clip_hand3d.data.synthetic import load_synthetic

        if value and not value.isdigit():
            raise ValueError(f"--dataset {spec}: synthetic takes a number of samples, e.g. synthetic:2000")
        rows = load_synthetic(int(value or 2000), seed=seed, image_size=image_size, num_proc=num_proc)
    elif name == "disk":
        if not Path(value).is_dir():
            raise ValueError(f"--dataset {spec}: no such folder {value}")
        rows = load_from_disk(value)
    else:
        raise ValueError(f"--dataset {spec}: use synthetic[:N] or disk:PATH (a dataset saved with save_to_disk)")
    if "image" not in rows.column_names:
        raise ValueError(f"--dataset {spec}: the rows have no 'image' column (columns: {rows.column_names})")
    return rows.select_columns([name for name in UNLABELED_COLUMNS if name in rows.column_names])


def load_pairs(path: str | Path) -> Dataset:
    """The pairs dataset of `clip-hand3d mine-pairs` (see the module docstring); ValueError naming missing columns."""
    if not Path(path).is_dir():
        raise ValueError(f"--pairs {path}: no such folder")
    pairs = load_from_disk(str(path))
    missing = [name for name in PAIR_COLUMNS if name not in pairs.column_names]
    if missing:
        raise ValueError(f"--pairs {path}: no columns {missing} (columns: {pairs.column_names})")
    return pairs.select_columns(list(PAIR_COLUMNS))


class ContrastiveViews:
    """Random views of one unlabeled row, cropped by `image_processor` and augmented by `augmentation`."""

    def __init__(self, image_processor: CLIPHand3DImageProcessor, augmentation: HandAugmentationConfig):
        self.image_processor = image_processor
        self.augmentation = augmentation
        self.image_size = image_processor.image_size

    def base_crop(self, row) -> tuple:
        """(RGB image, the processor's crop transform of the row: its box x margin, mirrored when left)."""
        image = rgb_image(row["image"], "field 'image'")
        box = row.get("box")
        box = None if box is None else np.asarray(box, dtype=np.float64)
        is_left = bool(row.get("is_left") or False)
        return image, self.image_processor.crop_transform(box, image.height, image.width, is_left)

    def view(self, image, crop_affine: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented view: the normalised crop (3, S, S) float32 and `view_affine` (2, 3) float32."""
        augmentation = sample_view_augmentation(self.augmentation, rng)
        moved = augmentation_affine(augmentation, self.image_size)
        affine = moved @ np.vstack([crop_affine, [0.0, 0.0, 1.0]])
        crop = self.image_processor.crop(image, affine)
        if self.augmentation.has_colour_jitter:
            crop = jitter_colour(crop.astype(np.float32) / 255, augmentation)
        pixels = self.image_processor.normalize(np.ascontiguousarray(crop.transpose(2, 0, 1)))
        view_affine = normalised_view_affine(torch.from_numpy(moved), self.image_size)
        return pixels.astype(np.float32), view_affine.numpy().astype(np.float32)


class ContrastivePairs(torch.utils.data.Dataset):
    """Pairs of views for contrastive pre-training, one per unlabeled row (SimCLR, PeCLR: `pairs=None`) or per row
    of the pairs dataset that has a neighbour (HandCLR).

    Sample `position` draws from a generator seeded by (seed, epoch, position), whichever worker reads it, so a
    resumed run sees the views the uninterrupted run saw. Each sample: pixel_values and pixel_values_view2
    (3, S, S), view_affine and view_affine_view2 (2, 3), index (the anchor's unlabeled row), and with pairs
    keypoints_2d and keypoints_2d_view2 (21, 2) (anchor and positive) and positive_index.

    Args:
        rows: the unlabeled rows.
        views: the crop and augmentation.
        pairs: HandCLR's pairs dataset, or None.
        num_candidates: HandCLR's positive is drawn uniformly among the first `num_candidates` neighbours (1: the
            nearest, top-1).
        seed: the generator's seed.
    """

    def __init__(
        self,
        rows: Dataset,
        views: ContrastiveViews,
        pairs: Dataset | None = None,
        num_candidates: int = 1,
        seed: int = 0,
    ):
        if num_candidates < 1:
            raise ValueError(f"num_candidates must be >= 1, got {num_candidates}")
        self.rows = rows
        self.views = views
        self.num_candidates = num_candidates
        self.seed = seed
        self.epoch = 0
        self.pairs = None
        if pairs is not None:
            self.pairs = pairs.with_format("numpy")
            columns = pairs.with_format("numpy", columns=["index"])[:]
            indices = np.asarray(columns["index"], dtype=np.int64)
            if len(indices) and (indices.min() < 0 or indices.max() >= len(rows)):
                raise ValueError(f"the pairs' index column refers to rows outside the {len(rows)} unlabeled rows")
            lengths = np.array([len(neighbours) for neighbours in pairs["neighbors"]], dtype=np.int64)
            self.positions = np.flatnonzero(lengths > 0)
            self.pair_of_row = np.full(len(rows), -1, dtype=np.int64)
            self.pair_of_row[indices] = np.arange(len(indices))
            if len(self.positions) == 0:
                raise ValueError("no row of the pairs dataset has a neighbour")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows) if self.pairs is None else len(self.positions)

    def __getitem__(self, position: int) -> dict:
        rng = np.random.default_rng([self.seed, self.epoch, 2, position])
        if self.pairs is None:
            image, crop_affine = self.views.base_crop(self.rows[position])
            first, first_affine = self.views.view(image, crop_affine, rng)
            second, second_affine = self.views.view(image, crop_affine, rng)
            sample = {"index": position}
        else:
            pair = self.pairs[int(self.positions[position])]
            index = int(pair["index"])
            neighbours = np.asarray(pair["neighbors"], dtype=np.int64)
            positive = int(neighbours[rng.integers(min(self.num_candidates, len(neighbours)))])
            positive_pair = self.pair_of_row[positive] if 0 <= positive < len(self.rows) else -1
            if positive_pair < 0:
                raise ValueError(f"row {index}'s neighbour {positive} has no row (no keypoints) in the pairs dataset")
            image, crop_affine = self.views.base_crop(self.rows[index])
            first, first_affine = self.views.view(image, crop_affine, rng)
            image, crop_affine = self.views.base_crop(self.rows[positive])
            second, second_affine = self.views.view(image, crop_affine, rng)
            sample = {
                "index": index,
                "positive_index": positive,
                "keypoints_2d": np.asarray(pair["keypoints_2d"], dtype=np.float32),
                "keypoints_2d_view2": np.asarray(self.pairs[int(positive_pair)]["keypoints_2d"], dtype=np.float32),
            }
        sample.update(
            pixel_values=first,
            pixel_values_view2=second,
            view_affine=first_affine,
            view_affine_view2=second_affine,
        )
        return sample
