"""`clip-hand3d benchmark`: speed and memory of the model variants on this machine.

    clip-hand3d benchmark --variants clip-hand3d-tiny clip-hand3d-r50 --batch-sizes 1 16 --threads 2 \\
        --training clip-hand3d-tiny:32 clip-hand3d-r50:16 --json benchmark.json --markdown docs/benchmarks.md

    clip-hand3d benchmark --variants clip-hand3d-tiny clip-hand3d-r18 --runtime torch onnxruntime openvino \
        --precision fp32 bf16 int8 --threads 2 --markdown docs/benchmarks_runtimes.md

Prints the tables and writes them as JSON and markdown; the measurements are `clip_hand3d.benchmark`'s. With
--runtime, the runtimes and precisions asked for (and MediaPipe Hands, when installed) are timed side by side
(`benchmark.runtimes`), the network alone and the whole pipeline; without it, the PyTorch model and its backbone
(`benchmark.measure`), and training steps with --training.
"""

import argparse
import json
import shlex
from pathlib import Path

import torch

from clip_hand3d.benchmark.measure import PRECISIONS, check_device, run_benchmarks
from clip_hand3d.benchmark.report import describe_machine, results_to_markdown, runtimes_to_markdown
from clip_hand3d.benchmark.runtimes import RUNTIME_PRECISIONS, RUNTIMES, measure_runtimes
from clip_hand3d.variants import list_variants, resolve_variant

DEFAULT_TRAINING_BATCH_SIZE = 16


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `benchmark` command to the `clip-hand3d` command line; returns its parser."""
    parser = subparsers.add_parser(
        "benchmark",
        help="speed and memory of the model variants on this machine",
        description=(
            "Time the inference forward of each variant (full model and backbone alone, interleaved) at each batch "
            "size, and optionally full training steps; print the tables and write them as JSON and markdown. "
            "Models have random weights; nothing is downloaded."
        ),
    )
    parser.add_argument(
        "--variants", nargs="+", default=None, metavar="NAME", help="variant names or folders (default: all)"
    )
    parser.add_argument(
        "--batch-sizes", nargs="+", type=_positive_int, default=[1, 16], metavar="N", help="default: 1 16"
    )
    parser.add_argument(
        "--repeats", metavar="N", type=_positive_int, default=20, help="timed rounds per measurement (default 20)"
    )
    parser.add_argument(
        "--warmup", metavar="N", type=_non_negative_int, default=3, help="untimed rounds first (default 3)"
    )
    parser.add_argument(
        "--training",
        nargs="*",
        type=_training_run,
        default=None,
        metavar="VARIANT[:BATCH]",
        help=(
            "also measure training steps: of the given variants (batch size after a colon, default "
            f"{DEFAULT_TRAINING_BATCH_SIZE}), or of every --variants variant when no value follows"
        ),
    )
    parser.add_argument(
        "--training-steps", metavar="N", type=_positive_int, default=5, help="timed training steps (default 5)"
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="write the results as JSON to OUT")
    parser.add_argument("--markdown", default=None, metavar="OUT", help="write the results as markdown to OUT")
    parser.add_argument(
        "--threads", metavar="N", type=_positive_int, default=None, help="torch.set_num_threads (default: torch's)"
    )
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="default: cpu")
    parser.add_argument(
        "--precision",
        nargs="+",
        choices=RUNTIME_PRECISIONS,
        default=["fp32"],
        help=(
            "fp32 (default); bf16: bfloat16 autocast and channels-last for torch, as train.py --mixed_precision bf16 "
            "--channels_last, OpenVINO's bfloat16 inference precision; int8: the static int8 exports (with "
            "--runtime). Several with --runtime, one without"
        ),
    )
    parser.add_argument(
        "--runtime",
        nargs="+",
        choices=RUNTIMES,
        default=None,
        help="time these runtimes at every --precision side by side, with MediaPipe Hands when installed",
    )
    parser.add_argument(
        "--network-only", action="store_true", help="with --runtime: leave out the whole-pipeline measurement"
    )
    parser.add_argument(
        "--compile", action="store_true", help="with --runtime: torch.compile the torch engines (CUDA graphs on cuda)"
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> None:
    """The `benchmark` command: measure, print the tables, write the files asked for."""
    try:
        check_device(args.device)
        variants = args.variants if args.variants is not None else list_variants()
        training_runs = _expand_training_runs(args.training, variants)
        for name in dict.fromkeys(variants + [name for name, _ in training_runs]):
            resolve_variant(name)
        _check_precisions(args, training_runs)
    except ValueError as error:
        raise SystemExit(f"clip-hand3d benchmark: error: {error}") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.runtime is not None:
        results = _run_runtimes(args, variants)
        markdown = runtimes_to_markdown(results)
    else:
        results = run_benchmarks(
            variants,
            args.batch_sizes,
            args.repeats,
            args.warmup,
            training_runs,
            args.training_steps,
            args.device,
            args.precision[0],
        )
        results["command"] = _command_line(args, variants, training_runs)
        markdown = results_to_markdown(results)
    print(markdown)
    if args.json is not None:
        _write_text(args.json, json.dumps(results, indent=2) + "\n")
    if args.markdown is not None:
        _write_text(args.markdown, markdown)


def _check_precisions(args: argparse.Namespace, training_runs: list[tuple[str, int]]) -> None:
    """One --precision of fp32 / bf16 without --runtime; --runtime measures no training."""
    if args.runtime is None:
        if len(args.precision) != 1 or args.precision[0] not in PRECISIONS:
            raise ValueError(
                f"without --runtime, --precision takes one of {PRECISIONS} (the PyTorch model); got {args.precision}"
            )
    elif training_runs:
        raise ValueError("--training measures PyTorch training steps: leave out --runtime")


def _run_runtimes(args: argparse.Namespace, variants: list[str]) -> dict:
    """measure_runtimes of every variant, in one results dict with the machine and the command."""
    runtimes = [
        measure_runtimes(
            name,
            args.runtime,
            args.precision,
            args.batch_sizes,
            args.repeats,
            args.warmup,
            args.device,
            args.threads,
            compile=args.compile,
            pipeline=not args.network_only,
        )
        for name in variants
    ]
    return {
        "machine": describe_machine(args.device),
        "runtimes": runtimes,
        "command": _command_line(args, variants, []),
    }


def _expand_training_runs(training: list[tuple[str, int]] | None, variants: list[str]) -> list[tuple[str, int]]:
    """--training's (variant, batch size) pairs: none when absent, each of `variants` when given bare."""
    if training is None:
        return []
    return training or [(name, DEFAULT_TRAINING_BATCH_SIZE) for name in variants]


def _command_line(args: argparse.Namespace, variants: list[str], training_runs: list[tuple[str, int]]) -> str:
    """The command that reproduces these results, every default spelt out."""
    parts = ["clip-hand3d", "benchmark", "--variants", *variants, "--batch-sizes", *map(str, args.batch_sizes)]
    parts += ["--repeats", str(args.repeats), "--warmup", str(args.warmup)]
    if training_runs:
        parts += ["--training", *(f"{name}:{batch}" for name, batch in training_runs)]
        parts += ["--training-steps", str(args.training_steps)]
    parts += ["--threads", str(torch.get_num_threads()), "--device", args.device, "--precision", *args.precision]
    if args.runtime is not None:
        parts += ["--runtime", *args.runtime]
        parts += ["--network-only"] * args.network_only + ["--compile"] * args.compile
    for option, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path is not None:
            parts += [option, path]
    return shlex.join(parts)


def _write_text(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return int(text)


def _training_run(text: str) -> tuple[str, int]:
    """Parse "VARIANT" or "VARIANT:BATCH" into (variant, batch size)."""
    name, colon, batch = text.rpartition(":")
    if not colon:
        return text, DEFAULT_TRAINING_BATCH_SIZE
    if not name or not batch.isdigit() or int(batch) < 1:
        raise argparse.ArgumentTypeError(f"expected VARIANT or VARIANT:BATCH with a positive batch, got {text!r}")
    return name, int(batch)
