"""Images per second of the synthetic hand set: one process rendering rows, then `load_synthetic` in parallel.

    python benchmarks/synthetic_speed.py --num 200 --image-size 224 --num-proc 2

Three numbers: `render_sample` alone in this process (rendering only), `load_synthetic` with `num_proc=1` and
with `--num-proc` processes (rendering, PNG encoding and writing the Arrow cache, into a temporary cache folder so
nothing is reused). Timings are wall-clock; run it on an otherwise idle machine.
"""

import argparse
import tempfile
import time

import datasets

from clip_hand3d.data.synthetic import load_synthetic, render_sample


def images_per_second_render(num: int, image_size: int, seed: int) -> float:
    """Rows per second of `render_sample` in this process (after one warm-up row)."""
    render_sample(0, seed=seed, image_size=image_size)
    start = time.perf_counter()
    for index in range(1, num + 1):
        render_sample(index, seed=seed, image_size=image_size)
    return num / (time.perf_counter() - start)


def images_per_second_dataset(num: int, image_size: int, seed: int, num_proc: int | None) -> float:
    """Rows per second of `load_synthetic` building a fresh Arrow cache with `num_proc` processes."""
    with tempfile.TemporaryDirectory() as cache_dir:
        start = time.perf_counter()
        load_synthetic(num_samples=num, seed=seed, image_size=image_size, num_proc=num_proc, cache_dir=cache_dir)
        return num / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num", type=int, default=200, help="images per measurement")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-proc", type=int, default=2, help="processes of the parallel measurement")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    datasets.disable_progress_bars()

    single = images_per_second_render(args.num, args.image_size, args.seed)
    print(f"render_sample, 1 process:         {single:6.1f} images/s")
    dataset_single = images_per_second_dataset(args.num, args.image_size, args.seed, None)
    print(f"load_synthetic, num_proc=1:       {dataset_single:6.1f} images/s")
    dataset_parallel = images_per_second_dataset(args.num, args.image_size, args.seed, args.num_proc)
    print(f"load_synthetic, num_proc={args.num_proc}:       {dataset_parallel:6.1f} images/s")
    print(f"10,000 images with num_proc={args.num_proc}: {10_000 / dataset_parallel / 60:.1f} minutes")


if __name__ == "__main__":
    main()
