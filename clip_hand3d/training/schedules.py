"""Learning-rate schedules of train.py: the paper's step decay, cosine, constant; all with linear warm-up."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def lr_factor(step: int, kind: str, max_steps: int, warmup_steps: int, decay_every: int, gamma: float) -> float:
    """Multiplier of the base learning rate at optimiser step `step`.

    step: x gamma every `decay_every` steps (the paper: x0.25 every 50 epochs); cosine: from 1 to 0 over
    `max_steps`; constant: 1. The first `warmup_steps` ramp linearly from 0.
    """
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if kind == "step":
        return gamma ** (step // decay_every)
    if kind == "cosine":
        progress = (step - warmup_steps) / max(1, max_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    if kind == "constant":
        return 1.0
    raise ValueError(f"unknown lr_scheduler {kind!r}: use step, cosine or constant")


def build_scheduler(
    optimizer: Optimizer, args, max_steps: int, steps_per_epoch: int, num_processes: int = 1
) -> LambdaLR:
    """The schedule of `args.lr_scheduler`, counted in scheduler steps: Accelerate steps a prepared scheduler once
    per process at every optimiser step, so every length is multiplied by `num_processes`."""
    decay_every = max(1, args.lr_step_epochs * steps_per_epoch) * num_processes
    return LambdaLR(
        optimizer,
        lambda step: lr_factor(
            step,
            args.lr_scheduler,
            max_steps * num_processes,
            args.lr_warmup_steps * num_processes,
            decay_every,
            args.lr_step_gamma,
        ),
    )
