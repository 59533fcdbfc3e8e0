"""The optimiser step shared by `train.py` and `pretrain.py`: a step skipped on a NaN or infinite loss, and a guard
that stops a run whose loss stays non-finite."""

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger

logger = get_logger(__name__)


def optimizer_step(
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loss: torch.Tensor,
    max_grad_norm: float | None,
) -> bool:
    """Backward pass, gradient clipping (at `max_grad_norm`, when gradients are synchronised) and one step of the
    optimiser and the schedule, unless the loss is NaN or infinite on any process: then nothing is updated. The
    gradients are zeroed either way. Returns whether the loss was finite everywhere (the same on every process)."""
    finite = bool(accelerator.gather(torch.isfinite(loss.detach())[None]).all())
    if finite:
        accelerator.backward(loss)
        if accelerator.sync_gradients and max_grad_norm is not None:
            accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad()
    return finite


class NonFiniteLossGuard:
    """Counts the batches skipped in a row for a non-finite loss and stops the run after `max_in_a_row` of them."""

    def __init__(self, max_in_a_row: int):
        self.max_in_a_row = max_in_a_row
        self.in_a_row = 0

    def skipped(self, finite: bool, step: int) -> bool:
        """True (with a warning) when the batch at optimiser step `step` was skipped; raises a RuntimeError when
        `max_in_a_row` batches in a row were."""
        if finite:
            self.in_a_row = 0
            return False
        self.in_a_row += 1
        logger.warning(f"non-finite loss at step {step}: step skipped ({self.in_a_row} in a row)")
        if self.in_a_row >= self.max_in_a_row:
            raise RuntimeError(
                f"the loss was NaN or infinite for {self.in_a_row} steps in a row (up to step {step}); lower "
                "--learning_rate or check the data"
            )
        return True
