"""Training and evaluation data from a dataset SPEC: which sets, their splits, transforms and batches.

SPEC is one or more of `synthetic[:N]`, `freihand:PATH`, `rhd:PATH`, `stb:PATH`, joined by `+`, e.g.
`freihand:/data/FreiHAND_pub_v2+rhd:/data/RHD_published_v2`. Each set has a training split and a held-out
split (synthetic: N training hands and a disjoint test stream; FreiHAND, RHD, STB: their evaluation splits).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset, concatenate_datasets

from clip_hand3d.data import HAND_FEATURES_WITH_MESH, load_freihand, load_rhd, load_stb
from clip_hand3d.data.synthetic import load_synthetic
from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.modeling.losses import LABEL_NAMES, MESH_LABEL_NAMES, VIEW2_LABEL_NAMES, VIEW2_SUFFIX
from clip_hand3d.modeling.modeling_clip_hand3d import INPUT_NAMES
from clip_hand3d.processing import CLIPHand3DProcessor
from clip_hand3d.training.augmentation import HandAugmentationConfig
from clip_hand3d.training.transforms import HandSampleTransform

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


def training_transform(
    processor: CLIPHand3DProcessor | CLIPHand3DImageProcessor,
    augment: bool = False,
    two_views: bool = False,
    seed: int | None = None,
    degradations: bool = False,
) -> HandSampleTransform:
    """The transform from a dataset row to the model's inputs and targets, cropped by `processor` (the processor
    saved with the model, or its image processor). Without `augment` it crops exactly as `processor` does at
    inference; with it, a random similarity and colour jitter (`HandAugmentationConfig.train()`) come on top, and
    with `degradations` an occluding patch, blur and noise too."""
    image_processor = getattr(processor, "image_processor", processor)
    augmentation = HandAugmentationConfig.train(degradations) if augment else HandAugmentationConfig.eval()
    return HandSampleTransform(image_processor, augmentation=augmentation, two_views=two_views, seed=seed)


def model_inputs(batch: Mapping[str, torch.Tensor], predict_mesh: bool, channels_last: bool = False) -> dict:
    """The keyword arguments of `CLIPHand3DModel.forward` for a collated batch: the inputs it has (`INPUT_NAMES`)
    and its targets as `labels` (`LABEL_NAMES`). Without the mesh (stage 1 of training) the mesh targets and the
    second view are left out. With `channels_last`, the images are laid out channels-last like the model's
    convolution weights."""
    inputs = {name: batch[name] for name in INPUT_NAMES if name in batch}
    labels = {name: batch[name] for name in LABEL_NAMES if name in batch}
    if not predict_mesh:
        inputs.pop("pixel_values" + VIEW2_SUFFIX, None)
        labels = {name: value for name, value in labels.items() if name not in MESH_LABEL_NAMES + VIEW2_LABEL_NAMES}
    if channels_last:
        inputs = {
            name: value.contiguous(memory_format=torch.channels_last) if name.startswith("pixel_values") else value
            for name, value in inputs.items()
        }
    return {**inputs, "labels": labels or None, "predict_mesh": predict_mesh}


def collate_hand_batch(samples: list[dict]) -> dict[str, torch.Tensor]:
    """Stack the fields of transformed samples along a new first (batch) dimension: a `DataLoader` collate_fn."""
    if not samples:
        raise ValueError("collate_hand_batch needs at least one sample")
    names = list(samples[0])
    batch = {}
    for position, sample in enumerate(samples):
        if sorted(sample) != sorted(names):
            raise ValueError(f"sample {position} has fields {sorted(sample)}, sample 0 has {sorted(names)}")
    for name in names:
        values = [torch.as_tensor(sample[name]) for sample in samples]
        shapes = {tuple(value.shape) for value in values}
        if len(shapes) > 1:
            raise ValueError(f"field {name!r} has different shapes across samples: {sorted(shapes)}")
        batch[name] = torch.stack(values)
    return batch


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
