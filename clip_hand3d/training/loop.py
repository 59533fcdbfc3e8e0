"""What `train.py`'s and `pretrain.py`'s loops share: the batches of a resumed run, the optimiser step (skipped on a
NaN or infinite loss), the guard that stops a run whose loss stays non-finite, and the samples/s meter."""

import itertools
import time
from collections.abc import Iterator

import torch
from accelerate import Accelerator
from accelerate.logging import get_logger

logger = get_logger(__name__)


def resumed_batches(accelerator: Accelerator, dataloader, progress: dict, *per_epoch) -> Iterator[dict]:
    """The batches of `dataloader` (prepared by `accelerator`), epoch after epoch without end, from where `progress`
    ({"epoch", "batches_in_epoch"}, as `checkpoints.resume_progress` gives it) says the run is: the batches of the
    resumed epoch that were done are skipped. Each epoch is set on the dataloader and on every `per_epoch` object
    (transforms, collators: their random draws follow the epoch). `progress` counts the batches handed out."""
    for epoch in itertools.count(progress["epoch"]):
        dataloader.set_epoch(epoch)
        for part in per_epoch:
            part.set_epoch(epoch)
        skip = progress["batches_in_epoch"] if epoch == progress["epoch"] else 0
        batches = accelerator.skip_first_batches(dataloader, skip) if skip else dataloader
        progress.update(epoch=epoch, batches_in_epoch=skip)
        for batch in batches:
            progress["batches_in_epoch"] += 1
            yield batch
        progress.update(epoch=epoch + 1, batches_in_epoch=0)


class Throughput:
    """Samples per second (of all processes) since the last reading."""

    def __init__(self):
        self.samples, self.since = 0, time.monotonic()

    def add(self, samples: int) -> None:
        self.samples += samples

    def read(self) -> float:
        """Samples per second since the last reading (or the start), then starts counting anew."""
        now = time.monotonic()
        value = self.samples / max(now - self.since, 1e-9)
        self.samples, self.since = 0, now
        return value


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
