"""Measurements of the model variants: inference forward latency, training step throughput, parameter counts.

For every variant and batch size, `measure_inference` times the full model (`model(pixel_values=...)`, text
tower not built) and its ResNet backbone alone in one interleaved loop, so that changes of the machine's load
hit both alike; `measure_training` times full training steps (two views, text prompts, all loss terms, AdamW).
Models have random weights (`random_weight_model`): speed does not depend on them, and nothing is downloaded.

Peak memory is what the process holds above its level before the measured work, in MiB: on CPU the resident
set size (RSS) sampled by a background thread, on CUDA `torch.cuda.max_memory_allocated` (see `meters`).

`precision="bf16"` measures what `train.py --mixed_precision bf16 --channels_last` runs: bfloat16 autocast and
channels-last convolutions (the model keeps its outputs and losses in float32).
"""

import copy
import functools
import sys
import time
from collections.abc import Callable

import numpy as np
import torch

from ..modeling import CLIPHand3DConfig, CLIPHand3DModel
from ..training.data import model_inputs
from ..validation import check_choice, check_non_negative_int, check_positive_int
from ..variants import resolve_variant
from .meters import MIB, OtherProcessesCPU, peak_memory_meter
from .report import describe_machine

PRECISIONS = ("fp32", "bf16")
SEED = 0


def count_parameters(model: CLIPHand3DModel) -> dict[str, int]:
    """Parameters of `model`: total, trainable (requires_grad), of the backbone, and of the frozen text tower."""
    return {
        "total": sum(parameter.numel() for parameter in model.parameters()),
        "trainable": sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad),
        "backbone": sum(parameter.numel() for parameter in model.backbone.parameters()),
        "text_model": 0 if model.text_model is None else sum(p.numel() for p in model.text_model.parameters()),
    }


def random_weight_model(config: CLIPHand3DConfig, with_text_model: bool, device: str = "cpu") -> CLIPHand3DModel:
    """A random-weight model of `config` on `device`, with or without the text tower (the config is not changed)."""
    config = copy.deepcopy(config)
    config.with_text_model = with_text_model
    return CLIPHand3DModel(config).to(device)


def random_pixel_values(config: CLIPHand3DConfig, batch_size: int, generator: torch.Generator) -> torch.Tensor:
    """Normalised-looking input crops (batch_size, 3, image_size, image_size), standard normal values."""
    size = config.image_size
    return torch.randn(batch_size, 3, size, size, generator=generator)


def random_training_batch(
    config: CLIPHand3DConfig, batch_size: int, generator: torch.Generator
) -> dict[str, torch.Tensor]:
    """A collated training batch (the fields train.py's batches have): two views, their uvd targets, prompt tokens
    and a view-2 affine.

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
    check_positive_int("batch_size", batch_size)
    check_positive_int("repeats", repeats)
    check_non_negative_int("warmup", warmup)
    check_device(device)
    check_choice("precision", precision, PRECISIONS)
    model = random_weight_model(config, with_text_model=False, device=device).eval()
    model = model.to(memory_format=_layout(precision))
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
        **_settings(config, batch_size, device, precision),
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
    check_positive_int("batch_size", batch_size)
    check_positive_int("steps", steps)
    check_positive_int("warmup", warmup)
    check_device(device)
    check_choice("precision", precision, PRECISIONS)
    model = random_weight_model(config, with_text_model=True, device=device).train()
    model = model.to(memory_format=_layout(precision))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    batch = random_training_batch(config, batch_size, torch.Generator().manual_seed(SEED))
    batch = {name: value.to(device) for name, value in batch.items()}
    inputs = model_inputs(batch, predict_mesh=True, channels_last=precision == "bf16")
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
        **_settings(config, batch_size, device, precision),
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
        results["parameters"][name] = count_parameters(random_weight_model(configs[name], with_text_model=True))
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


def _settings(config: CLIPHand3DConfig, batch_size: int, device: str, precision: str) -> dict:
    """The settings every measurement reports: batch size, image side (pixels), device, precision, CPU threads."""
    return {
        "batch_size": batch_size,
        "image_size": config.image_size,
        "device": device,
        "precision": precision,
        "threads": torch.get_num_threads(),
    }


def check_device(device: str) -> None:
    """Raise ValueError unless `device` is "cpu", or "cuda" with a GPU torch can use."""
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device 'cuda' was asked for but torch.cuda.is_available() is False")
