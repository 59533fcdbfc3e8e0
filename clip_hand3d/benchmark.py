"""`clip-hand3d benchmark`: speed and memory of the model variants on this machine.

For every variant and batch size, `measure_inference` times the full model (`model(pixel_values=...)`, text
tower not built) and its ResNet backbone alone in one interleaved loop, so that changes of the machine's load
hit both alike; `measure_training` times full training steps (two views, text prompts, all loss terms, AdamW).
Models have random weights: speed does not depend on them, and nothing is downloaded.

    clip-hand3d benchmark --variants clip-hand3d-tiny clip-hand3d-r50 --batch-sizes 1 16 --threads 2 \\
        --training clip-hand3d-tiny:32 clip-hand3d-r50:16 --json benchmark.json --markdown docs/benchmarks.md

Peak memory is what the process holds above its level before the measured work, in MiB: on CPU the resident
set size (RSS) sampled by a background thread, on CUDA `torch.cuda.max_memory_allocated`.

`--precision bf16` measures what `train.py --mixed_precision bf16 --channels_last` runs: bfloat16 autocast and
channels-last convolutions (the model keeps its outputs and losses in float32).
"""

import argparse
import copy
import ctypes
import functools
import gc
import json
import os
import platform
import shlex
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import torch

from .modeling import CLIPHand3DConfig, CLIPHand3DModel
from .variants import list_variants, resolve_variant

MIB = 2**20
PRECISIONS = ("fp32", "bf16")
DEFAULT_TRAINING_BATCH_SIZE = 16
SEED = 0
INFERENCE_COLUMNS = [
    "variant",
    "image",
    "batch",
    "precision",
    "model ms",
    "model p90",
    "backbone ms",
    "backbone p90",
    "model / backbone",
    "images/s",
    "peak MiB",
    "others' CPU",
]
TRAINING_COLUMNS = [
    "variant",
    "image",
    "batch",
    "precision",
    "step ms",
    "step p90",
    "images/s",
    "peak MiB",
    "final loss",
    "others' CPU",
]
PARAMETER_COLUMNS = ["variant", "total", "trainable", "backbone", "text tower", "inference model"]


class PeakRSS:
    """Context manager: peak resident memory of this process above its level at entry (`peak_bytes`).

    A background thread reads the RSS every `interval_s` seconds. At entry, freed heap pages are handed back to the
    operating system (glibc's `malloc_trim`) so that the baseline is the memory the process really holds, not
    pages that earlier work freed and that the measured work would reuse unseen.
    """

    def __init__(self, interval_s: float = 0.001):
        self.interval_s = interval_s
        self.peak_bytes = 0
        self._process = psutil.Process()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._baseline = 0
        self._highest = 0

    def _rss(self) -> int:
        return self._process.memory_info().rss

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._highest = max(self._highest, self._rss())

    def __enter__(self) -> "PeakRSS":
        release_freed_heap()
        self._baseline = self._highest = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_bytes = max(self._highest, self._rss()) - self._baseline


class PeakCudaMemory:
    """Context manager: peak CUDA memory allocated by torch above the amount allocated at entry (`peak_bytes`)."""

    def __init__(self):
        self.peak_bytes = 0
        self._baseline = 0

    def __enter__(self) -> "PeakCudaMemory":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        self._baseline = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc_info) -> None:
        torch.cuda.synchronize()
        self.peak_bytes = torch.cuda.max_memory_allocated() - self._baseline


class OtherProcessesCPU:
    """Context manager: how many cores, on average, the rest of the machine kept busy while inside (`cores`).

    The machine's busy CPU time (user, nice, system, interrupts, and time stolen by the hypervisor) minus this
    process's own, over the wall time: 0 on a quiet machine, about 1 when another process keeps one core busy.
    """

    def __init__(self):
        self.cores = 0.0
        self._process = psutil.Process()
        self._start = (0.0, 0.0, 0.0)

    def _now(self) -> tuple[float, float, float]:
        machine = psutil.cpu_times()
        busy_fields = ("user", "nice", "system", "irq", "softirq", "steal")
        busy = sum(getattr(machine, field, 0.0) for field in busy_fields)
        own = self._process.cpu_times()
        return busy, own.user + own.system, time.perf_counter()

    def __enter__(self) -> "OtherProcessesCPU":
        self._start = self._now()
        return self

    def __exit__(self, *exc_info) -> None:
        busy_end, own_end, wall_end = self._now()
        busy_start, own_start, wall_start = self._start
        self.cores = max(0.0, ((busy_end - busy_start) - (own_end - own_start)) / (wall_end - wall_start))


def release_freed_heap() -> None:
    """Collect garbage and return freed heap pages to the OS where the C library is glibc (no-op elsewhere)."""
    gc.collect()
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.malloc_trim(0)


def peak_memory_meter(device: str) -> PeakRSS | PeakCudaMemory:
    """The peak-memory context manager for `device` ("cpu" or "cuda")."""
    return PeakCudaMemory() if device == "cuda" else PeakRSS()


def count_parameters(model: CLIPHand3DModel) -> dict[str, int]:
    """Parameters of `model`: total, trainable (requires_grad), of the backbone, and of the frozen text tower."""
    return {
        "total": sum(parameter.numel() for parameter in model.parameters()),
        "trainable": sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad),
        "backbone": sum(parameter.numel() for parameter in model.backbone.parameters()),
        "text_model": 0 if model.text_model is None else sum(p.numel() for p in model.text_model.parameters()),
    }


def build_model(config: CLIPHand3DConfig, with_text_model: bool, device: str = "cpu") -> CLIPHand3DModel:
    """A random-weight model of `config` on `device`, with or without the text tower (the config is not changed)."""
    config = copy.deepcopy(config)
    config.with_text_model = with_text_model
    return CLIPHand3DModel(config).to(device)


def random_pixel_values(config: CLIPHand3DConfig, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Normalised-looking input crops (batch_size, 3, image_size, image_size), standard normal values."""
    size = config.image_size
    return torch.randn(batch_size, 3, size, size, generator=generator)


def random_training_inputs(
    config: CLIPHand3DConfig, batch_size: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """Keyword inputs of one training step: two views, their uvd targets, prompt tokens and a view-2 affine.

    Targets are uniform in uvd space (u, v in [0, heatmap_size), d in [0, depth_size)); token ids are uniform in
    [0, text_config.vocab_size); view 2 is view 1 shifted by one heatmap pixel.
    """
    num_vertices = config.level_sizes[-1]
    uvd_scale = torch.tensor([config.heatmap_size, config.heatmap_size, config.depth_size], dtype=torch.float32)
    text_shape = (batch_size, 3, config.max_text_length)
    affine = torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]).expand(batch_size, 2, 3).clone()
    return {
        "pixel_values": random_pixel_values(config, batch_size, generator),
        "pixel_values_view2": random_pixel_values(config, batch_size, generator),
        "text_input_ids": torch.randint(0, config.text_config.vocab_size, text_shape, generator=generator),
        "text_attention_mask": torch.ones(text_shape, dtype=torch.long),
        "joints_uvd": torch.rand(batch_size, config.num_joints, 3, generator=generator) * uvd_scale,
        "vertices_uvd": torch.rand(batch_size, num_vertices, 3, generator=generator) * uvd_scale,
        "joints_uvd_view2": torch.rand(batch_size, config.num_joints, 3, generator=generator) * uvd_scale,
        "vertices_uvd_view2": torch.rand(batch_size, num_vertices, 3, generator=generator) * uvd_scale,
        "view2_affine_uv": affine,
    }


def measure_inference(
    config: CLIPHand3DConfig,
    batch_size: int,
    repeats: int = 20,
    warmup: int = 3,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict:
    """Latency, throughput and peak memory of the inference forward of `config`'s model at `batch_size`.

    The model is built without its text tower and run in eval mode under `torch.inference_mode`. Each of the
    `repeats` rounds times the full model and the backbone alone, alternating which goes first; `warmup` rounds
    before are not timed. Peak memory is sampled during one more forward of the full model. `precision` is
    "fp32" or "bf16" (bfloat16 autocast, channels-last).

    Returns latencies in milliseconds (`latency_ms_median`, `latency_ms_p90`, `backbone_latency_ms_median`,
    `backbone_latency_ms_p90`), `images_per_second` of the full model, `full_to_backbone_ratio` (median over
    median), `peak_memory_mib`, the model's `parameters` (see `count_parameters`) and the settings.
    """
    _check_positive(batch_size=batch_size, repeats=repeats)
    _check_non_negative(warmup=warmup)
    _check_device(device)
    _check_precision(precision)
    model = build_model(config, with_text_model=False, device=device).eval().to(memory_format=_layout(precision))
    pixel_values = random_pixel_values(config, batch_size, torch.Generator().manual_seed(SEED))
    pixel_values = pixel_values.to(device).contiguous(memory_format=_layout(precision))
    run_full = _in_precision(functools.partial(model, pixel_values=pixel_values), precision, device)
    run_backbone = _in_precision(functools.partial(model.backbone, pixel_values), precision, device)
    full_ms, backbone_ms = [], []
    with torch.inference_mode():
        for _ in range(warmup):
            run_full()
            run_backbone()
        with OtherProcessesCPU() as others:
            for index in range(repeats):
                if index % 2 == 0:
                    full_ms.append(_time_ms(run_full, device))
                    backbone_ms.append(_time_ms(run_backbone, device))
                else:
                    backbone_ms.append(_time_ms(run_backbone, device))
                    full_ms.append(_time_ms(run_full, device))
        with peak_memory_meter(device) as memory:
            run_full()
    full_median = float(np.median(full_ms))
    backbone_median = float(np.median(backbone_ms))
    return {
        "batch_size": batch_size,
        "image_size": config.image_size,
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "repeats": repeats,
        "warmup": warmup,
        "other_processes_cpu": others.cores,
        "latency_ms_median": full_median,
        "latency_ms_p90": float(np.percentile(full_ms, 90)),
        "backbone_latency_ms_median": backbone_median,
        "backbone_latency_ms_p90": float(np.percentile(backbone_ms, 90)),
        "images_per_second": batch_size * 1000.0 / full_median,
        "full_to_backbone_ratio": full_median / backbone_median,
        "peak_memory_mib": memory.peak_bytes / MIB,
        "parameters": count_parameters(model),
    }


def measure_training(
    config: CLIPHand3DConfig,
    batch_size: int,
    steps: int = 5,
    warmup: int = 1,
    device: str = "cpu",
    learning_rate: float = 1e-4,
    precision: str = "fp32",
) -> dict:
    """Throughput and peak memory of full training steps of `config`'s model at `batch_size` images per step.

    One step: the forward over two views of each image with text prompts and all targets (every loss term), the
    backward and an AdamW update of the trainable parameters (the text tower stays frozen). `warmup` steps
    (at least one: the first step allocates AdamW's state) precede the `steps` timed ones. Peak memory is sampled
    over the warmup steps, from before the first step: activations, gradients and the optimizer state.
    `precision` is "fp32" or "bf16" (bfloat16 autocast of the forward, channels-last).

    Returns step latencies in milliseconds (`step_ms_median`, `step_ms_p90`), `images_per_second` (images of the
    batch per second; the network sees each in two views), `peak_memory_mib`, `final_loss`, the model's
    `parameters` (see `count_parameters`) and the settings.
    """
    _check_positive(batch_size=batch_size, steps=steps, warmup=warmup)
    _check_device(device)
    _check_precision(precision)
    model = build_model(config, with_text_model=True, device=device).train().to(memory_format=_layout(precision))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    inputs = random_training_inputs(config, batch_size, torch.Generator().manual_seed(SEED))
    inputs = {name: value.to(device) for name, value in inputs.items()}
    for name in ("pixel_values", "pixel_values_view2"):
        inputs[name] = inputs[name].contiguous(memory_format=_layout(precision))
    forward = _in_precision(lambda: model(**inputs), precision, device)
    losses = []

    def training_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss = forward().loss
        loss.backward()
        optimizer.step()
        losses.append(loss.detach())

    with peak_memory_meter(device) as memory:
        for _ in range(warmup):
            training_step()
    with OtherProcessesCPU() as others:
        step_ms = [_time_ms(training_step, device) for _ in range(steps)]
    step_median = float(np.median(step_ms))
    return {
        "batch_size": batch_size,
        "image_size": config.image_size,
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
        "steps": steps,
        "warmup": warmup,
        "other_processes_cpu": others.cores,
        "step_ms_median": step_median,
        "step_ms_p90": float(np.percentile(step_ms, 90)),
        "images_per_second": batch_size * 1000.0 / step_median,
        "peak_memory_mib": memory.peak_bytes / MIB,
        "final_loss": float(losses[-1]),
        "parameters": count_parameters(model),
    }


def describe_machine(device: str = "cpu") -> dict:
    """The machine the numbers belong to: CPU model, cores usable by this process, torch, threads, GPU."""
    return {
        "cpu": cpu_model_name(),
        "cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "device": device,
        "gpu": torch.cuda.get_device_name() if device == "cuda" else None,
    }


def cpu_model_name() -> str:
    """The CPU's "model name" from /proc/cpuinfo (Linux), else what `platform.processor()` says."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def run_benchmarks(
    variants: list[str],
    batch_sizes: list[int],
    repeats: int,
    warmup: int,
    training_runs: list[tuple[str, int]],
    training_steps: int,
    device: str = "cpu",
    precision: str = "fp32",
) -> dict:
    """Measure every variant at every batch size (inference) and every (variant, batch size) training run.

    Returns {"machine", "parameters" (per variant, of the training model with its text tower), "inference",
    "training"}; each row of the lists is a `measure_*` result with its "variant".
    """
    configs = {name: load_variant_config(name) for name in dict.fromkeys(variants + [v for v, _ in training_runs])}
    results = {"machine": describe_machine(device), "parameters": {}, "inference": [], "training": []}
    for name in variants:
        results["parameters"][name] = count_parameters(build_model(configs[name], with_text_model=True))
        for batch_size in batch_sizes:
            row = {"variant": name, **measure_inference(configs[name], batch_size, repeats, warmup, device, precision)}
            _log(f"{name} inference batch {batch_size}: {row['latency_ms_median']:.1f} ms median")
            results["inference"].append(row)
    for name, batch_size in training_runs:
        row = {
            "variant": name,
            **measure_training(configs[name], batch_size, training_steps, device=device, precision=precision),
        }
        _log(f"{name} training batch {batch_size}: {row['step_ms_median']:.1f} ms per step")
        results["training"].append(row)
    return results


def load_variant_config(name_or_path: str) -> CLIPHand3DConfig:
    """The config of a named variant (see `list_variants()`) or of a folder holding a config.json."""
    return CLIPHand3DConfig.from_pretrained(resolve_variant(name_or_path))


def results_to_markdown(results: dict) -> str:
    """The results as a markdown page: machine, command, inference, training and parameter tables."""
    lines = ["# clip-hand3d benchmark", ""]
    if results.get("command"):
        lines += ["Command:", "", "```", results["command"], "```", ""]
    lines += ["## Machine", "", *_table(["", ""], _machine_rows(results["machine"])), ""]
    if results["inference"]:
        lines += [
            "## Inference",
            "",
            "Latencies in ms (median and 90th percentile over the repeats), the full model and its backbone alone "
            "timed in one interleaved loop; peak memory: above the process's level before one forward; others' CPU: cores kept busy by other "
            "processes during the timed rounds (0 on a quiet machine).",
            "",
            *_table(INFERENCE_COLUMNS, [_inference_row(row) for row in results["inference"]]),
            "",
        ]
    if results["training"]:
        lines += [
            "## Training",
            "",
            "One step: forward over two views per image with text prompts and every loss term, backward, AdamW; "
            "images/s counts images of the batch. Peak memory: above the process's level before the first step.",
            "",
            *_table(TRAINING_COLUMNS, [_training_row(row) for row in results["training"]]),
            "",
        ]
    if results["parameters"]:
        lines += [
            "## Parameters",
            "",
            "In millions. The text tower is frozen and only serves the training loss; inference models leave it out.",
            "",
            *_table(
                PARAMETER_COLUMNS, [_parameter_row(name, counts) for name, counts in results["parameters"].items()]
            ),
            "",
        ]
    return "\n".join(lines)


def register_cli(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
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
        choices=PRECISIONS,
        default="fp32",
        help="bf16: bfloat16 autocast and channels-last, as train.py --mixed_precision bf16 --channels_last (default: fp32)",
    )
    parser.set_defaults(func=run_benchmark_command)
    return parser


def run_benchmark_command(args: argparse.Namespace) -> None:
    """The `benchmark` command: measure, print the tables, write the files asked for."""
    try:
        _check_device(args.device)
        variants = args.variants if args.variants is not None else list_variants()
        training_runs = _expand_training_runs(args.training, variants)
        for name in dict.fromkeys(variants + [name for name, _ in training_runs]):
            resolve_variant(name)
    except ValueError as error:
        raise SystemExit(f"clip-hand3d benchmark: error: {error}") from None
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    results = run_benchmarks(
        variants,
        args.batch_sizes,
        args.repeats,
        args.warmup,
        training_runs,
        args.training_steps,
        args.device,
        args.precision,
    )
    results["command"] = _command_line(args, variants, training_runs)
    markdown = results_to_markdown(results)
    print(markdown)
    if args.json is not None:
        _write_text(args.json, json.dumps(results, indent=2) + "\n")
    if args.markdown is not None:
        _write_text(args.markdown, markdown)


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
    parts += ["--threads", str(torch.get_num_threads()), "--device", args.device, "--precision", args.precision]
    for option, path in (("--json", args.json), ("--markdown", args.markdown)):
        if path is not None:
            parts += [option, path]
    return shlex.join(parts)


def _write_text(path: str, text: str) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(text, encoding="utf-8")


def _layout(precision: str) -> torch.memory_format:
    """Channels-last for bf16 (oneDNN's and the tensor cores' fast layout), the default layout for fp32."""
    return torch.channels_last if precision == "bf16" else torch.contiguous_format


def _in_precision(function: Callable[[], object], precision: str, device: str) -> Callable[[], object]:
    """`function` run under bfloat16 autocast for bf16, as it is for fp32."""

    def run() -> object:
        with torch.autocast(device, dtype=torch.bfloat16, enabled=precision == "bf16"):
            return function()

    return run


def _time_ms(function: Callable[[], object], device: str) -> float:
    """Wall time of one call of `function` in milliseconds, waiting for queued CUDA work on both ends."""
    if device == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    function()
    if device == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) * 1000.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def _check_positive(**values: int) -> None:
    for name, value in values.items():
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer, got {value!r}")


def _check_non_negative(**values: int) -> None:
    for name, value in values.items():
        if not (isinstance(value, int) and value >= 0):
            raise ValueError(f"{name} must be a non-negative integer, got {value!r}")


def _check_device(device: str) -> None:
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")


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


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Markdown table lines."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _machine_rows(machine: dict) -> list[list[str]]:
    rows = [
        ["CPU", machine["cpu"]],
        ["cores", str(machine["cores"])],
        ["memory", f"{machine['memory_gib']:.0f} GiB"],
        ["torch", machine["torch"]],
        ["threads", str(machine["threads"])],
        ["python", machine["python"]],
        ["platform", machine["platform"]],
        ["device", machine["device"]],
    ]
    return rows + ([["GPU", machine["gpu"]]] if machine["gpu"] else [])


def _inference_row(row: dict) -> list[str]:
    return [
        row["variant"],
        str(row["image_size"]),
        str(row["batch_size"]),
        row["precision"],
        f"{row['latency_ms_median']:.1f}",
        f"{row['latency_ms_p90']:.1f}",
        f"{row['backbone_latency_ms_median']:.1f}",
        f"{row['backbone_latency_ms_p90']:.1f}",
        f"{row['full_to_backbone_ratio']:.2f}",
        f"{row['images_per_second']:.1f}",
        f"{row['peak_memory_mib']:.0f}",
        f"{row['other_processes_cpu']:.2f}",
    ]


def _training_row(row: dict) -> list[str]:
    return [
        row["variant"],
        str(row["image_size"]),
        str(row["batch_size"]),
        row["precision"],
        f"{row['step_ms_median']:.0f}",
        f"{row['step_ms_p90']:.0f}",
        f"{row['images_per_second']:.1f}",
        f"{row['peak_memory_mib']:.0f}",
        f"{row['final_loss']:.3f}",
        f"{row['other_processes_cpu']:.2f}",
    ]


def _parameter_row(name: str, counts: dict[str, int]) -> list[str]:
    millions = [counts["total"], counts["trainable"], counts["backbone"], counts["text_model"]]
    millions.append(counts["total"] - counts["text_model"])
    return [name] + [f"{count / 1e6:.2f}" for count in millions]
