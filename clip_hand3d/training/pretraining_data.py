"""The data of encoder pre-training: unlabeled hand crops, two views per sample, cropped as the image processor
crops (one definition of a crop, see `clip_hand3d.training.transforms`).

The unlabeled rows are `clip_hand3d.data.unlabeled`'s (an image, and optionally its box, handedness and group; never
a label): the box enlarged by the processor's margin (x1.3), left hands mirrored to right ones, resized to the
processor's size; no box: the whole image. Each view is that crop moved by a random similarity (rotation, scale, shift;
`HandAugmentationConfig`) and colour-jittered; `view_affine` is that similarity in the crop's normalised
coordinates (`pretraining_objectives.normalised_view_affine`), for PeCLR's equivariance.

Positives: SimCLR and PeCLR take two views of one row. HandCLR takes a view of a row and a view of one of its
mined neighbours, read from a pairs dataset of rows {index (the unlabeled row), neighbors (rows of other images and
groups, nearest first), distances, keypoints_2d (21, 2), the row's 2D keypoints normalised to its crop} (what
`clip-hand3d mine-pairs` writes); the keypoints of both views feed HandCLR's adaptive weights.
"""

import json
from pathlib import Path

import numpy as np
import pyarrow.compute
import torch
from datasets import Dataset, load_from_disk

from clip_hand3d.data.unlabeled import UnlabeledHands, UnlabeledRow, crop_transform, load_unlabeled
from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.training.augmentation import (
    HandAugmentationConfig,
    augment_pixels,
    augmentation_affine,
    sample_view_augmentation,
)
from clip_hand3d.training.pretraining_objectives import normalised_view_affine

PAIR_COLUMNS = ("index", "neighbors", "distances", "keypoints_2d")
PAIRS_FOLDER = "pairs"


def load_pool(spec: str, image_size: int, seed: int = 0, num_proc: int | None = None) -> UnlabeledHands:
    """The unlabeled pool of `spec` (`clip_hand3d.data.unlabeled`'s SPECs), random access. The synthetic sources
    (`synthetic:N`, `synthetic-video:N[xF]`) are rendered once into the `datasets` cache, by `num_proc` processes,
    instead of on every access: the same rows, read without their labels."""
    kind, _, value = spec.partition(":")
    if kind in ("synthetic", "synthetic-video"):
        count, _, frames = value.partition("x")
        if not count.isdigit() or int(count) < 1 or (frames and (kind == "synthetic" or not frames.isdigit())):
            form = (
                "synthetic-video:N[xF], e.g. synthetic-video:100x16" if frames else "synthetic:N, e.g. synthetic:2000"
            )
            raise ValueError(f"--dataset {spec}: expected {form}")
        if kind == "synthetic":
            from clip_hand3d.data.synthetic import load_synthetic

            rows = load_synthetic(int(count), seed=seed, image_size=image_size, num_proc=num_proc)
        else:
            from clip_hand3d.data.synthetic.sequences import load_synthetic_sequences

            frames_per_sequence = int(frames) if frames else 16
            rows = load_synthetic_sequences(
                int(count), frames_per_sequence, seed=seed, image_size=image_size, num_proc=num_proc
            )
        return UnlabeledHands(rows, name=spec)
    pool = load_unlabeled(spec, image_size=image_size, seed=seed)
    if not pool.random_access:
        raise ValueError(
            f"--dataset {spec}: pre-training reads its rows by index; give a map-style source, not a stream"
        )
    return pool


def load_pairs(path: str | Path) -> Dataset:
    """The pairs dataset of `clip-hand3d mine-pairs --out PATH` (PATH or PATH/pairs, see the module docstring);
    ValueError naming missing columns."""
    path = Path(path)
    if (path / PAIRS_FOLDER).is_dir():
        path = path / PAIRS_FOLDER
    if not path.is_dir():
        raise ValueError(f"--pairs {path}: no such folder")
    pairs = load_from_disk(str(path))
    missing = [name for name in PAIR_COLUMNS if name not in pairs.column_names]
    if missing:
        raise ValueError(f"--pairs {path}: no columns {missing} (columns: {pairs.column_names})")
    return pairs.select_columns(list(PAIR_COLUMNS))


def mined_from(path: str | Path) -> str | None:
    """The dataset SPEC the pairs of `mine-pairs --out PATH` were mined from (its summary.json), None if unknown."""
    path = Path(path)
    for summary in (path / "summary.json", path.parent / "summary.json"):
        if summary.is_file():
            return json.loads(summary.read_text()).get("dataset")
    return None


class ContrastiveViews:
    """Random views of one unlabeled row, cropped by `image_processor` and augmented by `augmentation`."""

    def __init__(self, image_processor: CLIPHand3DImageProcessor, augmentation: HandAugmentationConfig):
        self.image_processor = image_processor
        self.augmentation = augmentation
        self.image_size = image_processor.image_size

    def base_crop(self, row: UnlabeledRow) -> tuple:
        """(RGB image, the processor's crop transform of the row: its box x margin, mirrored when left)."""
        image = row.load_image()
        return image, crop_transform(row, self.image_processor, image)

    def view(self, image, crop_affine: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """One augmented view: the normalised crop (3, S, S) float32 and `view_affine` (2, 3) float32."""
        augmentation = sample_view_augmentation(self.augmentation, rng)
        moved = augmentation_affine(augmentation, self.image_size)
        affine = moved @ np.vstack([crop_affine, [0.0, 0.0, 1.0]])
        crop = self.image_processor.crop(image, affine)
        if self.augmentation.changes_pixels:
            crop = augment_pixels(crop, augmentation)
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
        rows: the unlabeled rows (random access).
        views: the crop and augmentation.
        pairs: HandCLR's pairs dataset, or None.
        num_candidates: HandCLR's positive is drawn uniformly among the first `num_candidates` neighbours (1: the
            nearest, top-1).
        seed: the generator's seed.
    """

    def __init__(
        self,
        rows: UnlabeledHands,
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
            table = pairs.with_format("arrow", columns=["index", "neighbors"])[:]
            indices = table.column("index").to_numpy().astype(np.int64)
            if len(indices) and (indices.min() < 0 or indices.max() >= len(rows)):
                raise ValueError(f"the pairs' index column refers to rows outside the {len(rows)} unlabeled rows")
            lengths = pyarrow.compute.list_value_length(table.column("neighbors")).to_numpy(zero_copy_only=False)
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
            image, crop_affine = self.views.base_crop(self.rows.row(position))
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
            image, crop_affine = self.views.base_crop(self.rows.row(index))
            first, first_affine = self.views.view(image, crop_affine, rng)
            image, crop_affine = self.views.base_crop(self.rows.row(positive))
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


@torch.no_grad()
def encode_pool(
    encoder: torch.nn.Module, pool: UnlabeledHands, image_processor: CLIPHand3DImageProcessor, batch_size: int = 64
) -> torch.Tensor:
    """The pooled backbone features (N, C) of every row's un-augmented crop (what fine-tuning starts from), e.g.
    for `pretraining.pose_retrieval_ratio`. The encoder is put in eval mode."""
    encoder.eval()
    views = ContrastiveViews(image_processor, HandAugmentationConfig.eval())
    rng = np.random.default_rng(0)
    features = []
    for start in range(0, len(pool), batch_size):
        crops = [
            views.view(*views.base_crop(pool.row(index)), rng)[0]
            for index in range(start, min(start + batch_size, len(pool)))
        ]
        features.append(encoder.pooled_features(torch.from_numpy(np.stack(crops))))
    return torch.cat(features)
