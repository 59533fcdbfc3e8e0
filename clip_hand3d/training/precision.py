"""`--mixed_precision auto`: bfloat16 where the device computes it natively, float32 elsewhere.

bfloat16 autocast pays only on hardware with bfloat16 arithmetic: a CUDA GPU that supports it, or a CPU with
AVX-512 BF16 or AMX. Elsewhere oneDNN emulates it: measured 0.4-0.5x float32's speed on an AVX-512 CPU without
BF16 and 20-80x slower on an AVX2-only one (docs/benchmarks.md). `auto` lets one recipe run at its best on every
machine.
"""

import os

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger

logger = get_logger(__name__)
MIXED_PRECISIONS = ("no", "fp16", "bf16", "auto")


def has_native_bf16(device: torch.device) -> bool:
    """Whether `device` computes in bfloat16 natively: CUDA with bf16 support, or a CPU with AVX-512 BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def launch_device() -> torch.device:
    """The device the Accelerator will train on, read before it exists (creating accelerate's state early would
    set up the process group before the Accelerator does): the CPU under `accelerate launch --cpu` (or
    ACCELERATE_USE_CPU=1) or without CUDA, else CUDA."""
    use_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    return torch.device("cpu" if use_cpu or not torch.cuda.is_available() else "cuda")


def resolve_mixed_precision(requested: str | None, device: torch.device) -> str | None:
    """The mixed precision to train with: `requested` as given, except "auto", which becomes "bf16" where `device`
    has native bfloat16 and "no" elsewhere. None leaves the choice to accelerate's config."""
    if requested not in (None, *MIXED_PRECISIONS):
        raise ValueError(f"--mixed_precision must be one of {', '.join(MIXED_PRECISIONS)}, got {requested!r}")
    if requested != "auto":
        return requested
    return "bf16" if has_native_bf16(device) else "no"


def log_auto_precision(requested: str | None, accelerator: Accelerator) -> None:
    """Say what `--mixed_precision auto` chose on this run's device, and why."""
    if requested != "auto":
        return
    native = "has" if accelerator.mixed_precision == "bf16" else "has no"
    logger.info(
        f"--mixed_precision auto: {accelerator.mixed_precision} ({accelerator.device.type} {native} native bfloat16)"
    )
