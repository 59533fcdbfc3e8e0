"""The loop parts train.py and pretrain.py share: resumed batches, the skipped non-finite step, the guard."""

import pytest
import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader

from clip_hand3d.training.loop import NonFiniteLossGuard, Throughput, optimizer_step, resumed_batches


class EpochRecorder:
    def __init__(self):
        self.epochs = []

    def set_epoch(self, epoch: int) -> None:
        self.epochs.append(epoch)


def test_resumed_batches_skip_the_done_batches_of_the_resumed_epoch_then_run_whole_epochs():
    accelerator = Accelerator(cpu=True)
    dataloader = accelerator.prepare(DataLoader(list(range(8)), batch_size=2))  # 4 batches, unshuffled
    recorder = EpochRecorder()
    progress = {"epoch": 1, "batches_in_epoch": 3}
    batches = resumed_batches(accelerator, dataloader, progress, recorder)
    first = [next(batches).tolist() for _ in range(5)]
    assert first == [[6, 7], [0, 1], [2, 3], [4, 5], [6, 7]]
    assert recorder.epochs == [1, 2]
    assert progress == {"epoch": 2, "batches_in_epoch": 4}
    assert next(batches).tolist() == [0, 1]
    assert recorder.epochs == [1, 2, 3]
    assert progress == {"epoch": 3, "batches_in_epoch": 1}


def test_optimizer_step_skips_a_non_finite_loss_and_zeroes_the_gradients():
    accelerator = Accelerator(cpu=True)
    weight = torch.nn.Parameter(torch.tensor([1.0]))
    module = torch.nn.ParameterList([weight])
    optimizer = torch.optim.SGD([weight], lr=0.5)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    assert optimizer_step(accelerator, module, optimizer, scheduler, (weight * 2).sum(), None)
    assert weight.item() == pytest.approx(0.0)  # 1 - 0.5 * 2
    assert not optimizer_step(accelerator, module, optimizer, scheduler, (weight * float("nan")).sum(), None)
    assert weight.item() == pytest.approx(0.0)
    assert weight.grad is None or not weight.grad.any()


def test_the_guard_stops_the_run_after_the_given_non_finite_steps_in_a_row():
    guard = NonFiniteLossGuard(max_in_a_row=2)
    assert not guard.skipped(True, 0)
    assert guard.skipped(False, 1)
    assert not guard.skipped(True, 1)  # the count starts again
    assert guard.skipped(False, 2)
    with pytest.raises(RuntimeError, match="NaN or infinite for 2 steps in a row"):
        guard.skipped(False, 2)


def test_throughput_counts_since_the_last_reading(monkeypatch):
    clock = iter([10.0, 12.0, 13.0])
    monkeypatch.setattr("clip_hand3d.training.loop.time.monotonic", lambda: next(clock))
    throughput = Throughput()
    throughput.add(6)
    throughput.add(2)
    assert throughput.read() == pytest.approx(4.0)  # 8 samples in 2 s
    throughput.add(3)
    assert throughput.read() == pytest.approx(3.0)  # counting anew: 3 in 1 s
