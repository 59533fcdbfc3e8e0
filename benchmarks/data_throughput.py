"""Throughput of the training data pipeline: rows/s through a DataLoader, the augmentation and the prompt tokens.

Each row is read from a `datasets.Dataset` as train.py reads it (`with_sample_transform`: the array columns in
numpy format; `--reader python` reads every column as Python lists through `Dataset.with_transform` instead;
`--reader cached` crops every row once without augmentation and reads the crops, as train.py does without
`--augment`), augmented by `HandSampleTransform` (train preset, optionally two views), collated by
`collate_hand_batch`, and given its three tokenised prompts by `CLIPHand3DProcessor` inside the collate function
(so the workers do it). The rows come from the built-in synthetic set when `clip_hand3d.data.synthetic` is there (rendered once and
cached under --cache-dir), otherwise from hand-made rows (a smooth random image, a grid of joints, a blob of
vertices).

    python benchmarks/data_throughput.py --num-samples 256 --batch-size 32 --workers 0 1 2

For each number of workers, the first batch (worker start-up included) is timed apart from the rest, whose
rate is the steady-state rows/s; the main process's CPU time per row (the whole pipeline's cost with no workers)
is printed too, as it hardly depends on other processes sharing the cores.
"""

import argparse
import importlib.util
import tempfile
import time

import numpy as np
import PIL.Image
import torch
from datasets import Dataset, Features

from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.processing import CLIPHand3DProcessor
from clip_hand3d.training.augmentation import HandAugmentationConfig
from clip_hand3d.training.crop_cache import PrecomputedHandRows, precompute_samples
from clip_hand3d.training.data import INDEX_COLUMN, collate_hand_batch, with_sample_transform
from clip_hand3d.training.transforms import HandBatchTransform, HandSampleTransform


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num-samples", type=int, default=256, help="rows in the data set")
    parser.add_argument("--image-size", type=int, default=224, help="side of the data set's images and the crops")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DataLoader num_workers to try")
    parser.add_argument("--two-views", action="store_true", help="two augmented views per row")
    parser.add_argument("--cache-dir", default=None, help="datasets cache of the synthetic set (default: a temp dir)")
    parser.add_argument(
        "--reader",
        choices=("numpy", "python", "cached"),
        default="numpy",
        help="numpy: with_sample_transform, as train.py with augmentation (default); python: Dataset.with_transform "
        "on Python lists; cached: crops computed once (no augmentation), as train.py without augmentation",
    )
    return parser.parse_args()


def handmade_columns(num_samples: int, image_size: int, seed: int = 0) -> dict[str, list]:
    """Columns of `num_samples` made-up right-hand rows: joints on a 5 x 5 grid 0.5 m away, a blob of vertices."""
    rng = np.random.default_rng(seed)
    focal = float(image_size)
    K = np.array([[focal, 0.0, image_size / 2], [0.0, focal, image_size / 2], [0.0, 0.0, 1.0]], dtype=np.float32)
    grid = np.array([[(index % 5 - 2) * 0.02, (index // 5 - 2) * 0.02, 0.5] for index in range(21)])
    columns = {name: [] for name in ("image", "joints_xyz", "vertices_xyz", "K", "scale", "box", "is_left")}
    for _ in range(num_samples):
        coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
        image = PIL.Image.fromarray(coarse).resize((image_size, image_size), PIL.Image.Resampling.BICUBIC)
        joints = grid + rng.normal(0.0, 0.005, size=grid.shape)
        vertices = rng.normal([0.0, 0.0, 0.5], 0.03, size=(778, 3))
        uv = joints[:, :2] / joints[:, 2:] * focal + image_size / 2
        columns["image"].append(image)
        columns["joints_xyz"].append(joints.astype(np.float32))
        columns["vertices_xyz"].append(vertices.astype(np.float32))
        columns["K"].append(K)
        columns["scale"].append(float(np.linalg.norm(joints[9] - joints[10])))
        columns["box"].append([*uv.min(axis=0), *uv.max(axis=0)])
        columns["is_left"].append(False)
    return columns


def build_dataset(num_samples: int, image_size: int, cache_dir: str) -> tuple[Dataset, str]:
    """The rows to stream and a word on where they come from."""
    if importlib.util.find_spec("clip_hand3d.data.synthetic") is not None:
        from clip_hand3d.data.synthetic import load_synthetic

        dataset = load_synthetic(num_samples, image_size=image_size, cache_dir=cache_dir, p_left=0.5)
        return dataset, "synthetic set (clip_hand3d.data.synthetic)"
    from clip_hand3d.data.features import HAND_FEATURES_WITH_MESH

    columns = handmade_columns(num_samples, image_size)
    features = Features({name: HAND_FEATURES_WITH_MESH[name] for name in columns})
    return Dataset.from_dict(columns, features=features), "hand-made rows"


class TokenizingCollate:
    """`collate_hand_batch`, plus the processor's `text_input_ids` / `text_attention_mask` from `joints_xyz`."""

    def __init__(self, processor: CLIPHand3DProcessor):
        self.processor = processor

    def __call__(self, samples: list[dict]) -> dict[str, torch.Tensor]:
        batch = collate_hand_batch(samples)
        text = self.processor(joints_xyz=batch["joints_xyz"], generator=np.random.default_rng())
        batch["text_input_ids"] = text["text_input_ids"]
        batch["text_attention_mask"] = text["text_attention_mask"]
        return batch


def measure(dataset: Dataset, batch_size: int, num_workers: int, collate_fn) -> tuple[float, float, float]:
    """One shuffled epoch: seconds to the first batch, then rows/s and main-process CPU ms per row over the rest.

    The CPU time barely depends on other processes sharing the cores; with workers it is the main process's
    own share (receiving the batches).
    """
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=True, num_workers=num_workers, collate_fn=collate_fn
    )
    start = time.perf_counter()
    batches = iter(loader)
    next(batches)
    first_batch_seconds = time.perf_counter() - start
    start, start_cpu = time.perf_counter(), time.process_time()
    rows = sum(len(batch["pixel_values"]) for batch in batches)
    cpu_ms_per_row = (time.process_time() - start_cpu) / rows * 1000
    return first_batch_seconds, rows / (time.perf_counter() - start), cpu_ms_per_row


def main() -> None:
    args = parse_args()
    if args.num_samples < 2 * args.batch_size:
        raise ValueError("--num-samples must be at least twice --batch-size (the first batch is timed apart)")
    with tempfile.TemporaryDirectory() as temporary_dir:
        start = time.perf_counter()
        dataset, source = build_dataset(args.num_samples, args.image_size, args.cache_dir or temporary_dir)
        print(f"{len(dataset)} rows from the {source}, built in {time.perf_counter() - start:.1f} s")
        augmentation = HandAugmentationConfig.eval() if args.reader == "cached" else HandAugmentationConfig.train()
        processor = CLIPHand3DProcessor(CLIPHand3DImageProcessor(image_size=args.image_size))
        transform = HandSampleTransform(processor.image_processor, augmentation=augmentation, two_views=args.two_views)
        if args.reader == "numpy":
            dataset = with_sample_transform(dataset.add_column(INDEX_COLUMN, np.arange(len(dataset))), transform)
        elif args.reader == "cached":
            start = time.perf_counter()
            crops = precompute_samples(dataset.add_column(INDEX_COLUMN, np.arange(len(dataset))), transform)
            dataset = PrecomputedHandRows(crops, transform)
            print(f"cropped once in {time.perf_counter() - start:.1f} s")
        else:
            dataset = dataset.with_transform(HandBatchTransform(transform))
        print(
            f"batch {args.batch_size}, two views: {args.two_views}, reader: {args.reader}, "
            f"torch threads: {torch.get_num_threads()}"
        )
        for num_workers in args.workers:
            first_batch_seconds, rows_per_second, cpu_ms_per_row = measure(
                dataset, args.batch_size, num_workers, TokenizingCollate(processor)
            )
            print(
                f"num_workers={num_workers}: {rows_per_second:7.1f} rows/s, main process {cpu_ms_per_row:5.1f} CPU "
                f"ms/row (first batch after {first_batch_seconds:.2f} s)"
            )


if __name__ == "__main__":
    main()
