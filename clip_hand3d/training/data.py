"""Training and evaluation data from a dataset SPEC: which sets, their splits, transforms and batches.

SPEC is one or more of `synthetic[:N]`, `freihand:PATH`, `rhd:PATH`, `stb:PATH`, joined by `+`, e.g.
`freihand:/data/FreiHAND_pub_v2+rhd:/data/RHD_published_v2`. Each set has a training split and a held-out
split (synthetic: N training hands and a disjoint test stream; FreiHAND, RHD, STB: their evaluation splits).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets

from clip_hand3d.data import HAND_FEATURES_WITH_MESH, load_freihand, load_rhd, load_stb
from clip_hand3d.data.synthetic import load_synthetic
from clip_hand3d.data.transforms import (
    HandAugmentationConfig,
    HandSampleTransform,
    collate_hand_batch,
)
from clip_hand3d.modeling import CLIPHand3DConfig
from clip_hand3d.processing import CLIPHand3DProcessor

DEFAULT_SYNTHETIC_TRAIN = 2000
DEFAULT_SYNTHETIC_EVAL = 500
INDEX_COLUMN = "index"
LOADERS = {"freihand": load_freihand, "rhd": load_rhd, "stb": load_stb}


@dataclass(frozen=True)
class DatasetSource:
    """One part of a SPEC: `name` (synthetic, freihand, rhd, stb) and its path or number of samples."""

    name: str
    path: str | None = None
    num_samples: int | None = None


def parse_dataset_spec(spec: str) -> list[DatasetSource]:
    """`synthetic:2000+freihand:/data/FreiHAND` -> [DatasetSource(...), ...]; ValueError naming the bad part."""
    sources = []
    for part in spec.split("+"):
        name, _, value = part.strip().partition(":")
        if name == "synthetic":
            if value and not value.isdigit():
                raise ValueError(f"dataset {part!r}: synthetic takes a number of samples, e.g. synthetic:2000")
            sources.append(DatasetSource(name, num_samples=int(value) if value else DEFAULT_SYNTHETIC_TRAIN))
        elif name in LOADERS:
            if not value:
                raise ValueError(f"dataset {part!r}: {name} needs a path, e.g. {name}:/data/{name}")
            if not Path(value).exists():
                raise ValueError(f"dataset {part!r}: path {value} does not exist")
            sources.append(DatasetSource(name, path=value))
        else:
            raise ValueError(
                f"dataset {part!r}: unknown set {name!r}; use synthetic[:N], freihand:PATH, rhd:PATH, stb:PATH"
            )
    return sources


def load_source(
    source: DatasetSource, train: bool, image_size: int, seed: int, eval_samples: int, num_proc: int | None = None
) -> Dataset:
    """The training (train=True) or held-out split of one source, with a mesh column (None where it has none);
    synthetic hands are rendered by `num_proc` processes the first time."""
    if source.name == "synthetic":
        count = source.num_samples if train else eval_samples
        split = "train" if train else "test"
        return load_synthetic(num_samples=count, seed=seed, image_size=image_size, split=split, num_proc=num_proc)
    dataset = LOADERS[source.name](source.path, split="training" if train else "evaluation")
    if "vertices_xyz" not in dataset.column_names:
        dataset = dataset.map(lambda row: {"vertices_xyz": None}, features=HAND_FEATURES_WITH_MESH)
    return dataset


def load_split(
    spec: str,
    train: bool,
    image_size: int = 224,
    seed: int = 0,
    eval_samples: int = DEFAULT_SYNTHETIC_EVAL,
    num_proc: int | None = None,
) -> Dataset:
    """All sources of `spec` joined, with an `index` column of row numbers (for per-sample random streams)."""
    parts = [
        load_source(source, train, image_size, seed, eval_samples, num_proc) for source in parse_dataset_spec(spec)
    ]
    dataset = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    return dataset.add_column(INDEX_COLUMN, np.arange(len(dataset)))


def make_sample_transform(
    config: CLIPHand3DConfig, train: bool, two_views: bool = False, seed: int | None = None, augment: bool = True
) -> HandSampleTransform:
    """The crop/augmentation/targets transform that matches the model's input size and uvd space. Training
    without `augment` crops exactly like evaluation."""
    augmented = train and augment
    return HandSampleTransform(
        image_size=config.image_size,
        heatmap_size=config.heatmap_size,
        depth_size=config.depth_size,
        depth_range=config.depth_range,
        augmentation=HandAugmentationConfig.train() if augmented else HandAugmentationConfig.eval(),
        two_views=two_views and train,
        seed=seed,
    )


# Array2D columns read as numpy arrays: as Python lists (datasets' default format) the 778 x 3 vertices alone
# took a third of the time of a sample.
NUMPY_COLUMNS = ("joints_xyz", "joints_uv", "K", "vertices_xyz")


def check_index_column(dataset: Dataset) -> None:
    """Raise ValueError unless `dataset` has the `index` column that `load_split` adds."""
    if INDEX_COLUMN not in dataset.column_names:
        raise ValueError(f"the dataset has no {INDEX_COLUMN!r} column (columns: {dataset.column_names})")


class TransformedHandRows(torch.utils.data.Dataset):
    """The rows of a hand `datasets.Dataset`, each through a `HandSampleTransform` as it is read.

    The Array2D columns come out as numpy arrays, the others (images, box, flags) as datasets formats them. A null
    `vertices_xyz` (a set without meshes), which numpy format would turn into NaNs, is given to the transform as
    None. Each sample draws its augmentation from `transform.generator_for(index)` and keeps its `index`.
    """

    def __init__(self, dataset: Dataset, transform: HandSampleTransform):
        check_index_column(dataset)
        numeric = [name for name in NUMPY_COLUMNS if name in dataset.column_names]
        self.rows = dataset.with_format("numpy", columns=numeric, output_all_columns=True)
        self.transform = transform
        self.without_mesh = np.zeros(len(dataset), dtype=bool)
        if "vertices_xyz" in dataset.column_names:
            vertices = dataset.with_format("arrow", columns=["vertices_xyz"])["vertices_xyz"]
            self.without_mesh = vertices.is_null().to_numpy(zero_copy_only=False)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, position: int) -> dict:
        return self.__getitems__([position])[0]

    def __getitems__(self, positions: list[int]) -> list[dict]:
        """The transformed samples at `positions` (read from the Arrow table in one go)."""
        batch = self.rows[list(positions)]
        samples = []
        for offset, position in enumerate(positions):
            row = {name: column[offset] for name, column in batch.items()}
            if self.without_mesh[position]:
                row["vertices_xyz"] = None
            index = int(row[INDEX_COLUMN])
            sample = self.transform(row, rng=self.transform.generator_for(index))
            samples.append({**sample, INDEX_COLUMN: index})
        return samples


def with_sample_transform(dataset: Dataset, transform: HandSampleTransform) -> TransformedHandRows:
    """`dataset` (with an `index` column, see `load_split`) as a torch Dataset of transformed samples."""
    return TransformedHandRows(dataset, transform)


class PromptCollator:
    """DataLoader collate_fn: stacks the transformed samples and adds the tokenised prompts of their joints.

    The prompts' random joint choice draws from a generator seeded by (seed, epoch, the batch's sample indices),
    so it does not depend on DataLoader workers, and a resumed run builds the prompts the uninterrupted run
    built. With `processor=None` (no CLIP loss) no text is made.
    """

    def __init__(self, processor: CLIPHand3DProcessor | None, seed: int = 0):
        self.processor = processor
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        batch = collate_hand_batch(samples)
        if self.processor is not None:
            generator = np.random.default_rng([self.seed, self.epoch, *batch[INDEX_COLUMN].tolist()])
            text = self.processor(joints_xyz=batch["joints_xyz"], generator=generator, return_tensors="pt")
            batch["text_input_ids"] = text["text_input_ids"]
            batch["text_attention_mask"] = text["text_attention_mask"]
        return batch
