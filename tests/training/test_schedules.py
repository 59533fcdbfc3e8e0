"""Learning-rate schedules: the paper's step decay, cosine, warm-up, and Accelerate's per-process stepping."""

from types import SimpleNamespace

import pytest
import torch

from clip_hand3d.training.schedules import build_scheduler, lr_factor


def test_paper_step_decay_quarters_every_interval():
    factors = [lr_factor(step, "step", 1000, 0, 50, 0.25) for step in (0, 49, 50, 99, 100, 199, 200)]
    assert factors == [1.0, 1.0, 0.25, 0.25, 0.0625, 0.015625, 0.25**4]


def test_cosine_runs_from_one_to_zero_after_warmup():
    assert lr_factor(0, "cosine", 100, 10, 1, 1.0) == pytest.approx(0.1)
    assert lr_factor(9, "cosine", 100, 10, 1, 1.0) == pytest.approx(1.0)
    assert lr_factor(10, "cosine", 100, 10, 1, 1.0) == pytest.approx(1.0)
    assert lr_factor(55, "cosine", 100, 10, 1, 1.0) == pytest.approx(0.5)
    assert lr_factor(100, "cosine", 100, 10, 1, 1.0) == pytest.approx(0.0)


def test_unknown_schedule_is_named():
    with pytest.raises(ValueError, match="unknown lr_scheduler 'linear'"):
        lr_factor(0, "linear", 10, 0, 1, 1.0)


def test_scheduler_lengths_scale_with_processes():
    args = SimpleNamespace(lr_scheduler="step", lr_step_epochs=2, lr_step_gamma=0.5, lr_warmup_steps=0)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = build_scheduler(optimizer, args, max_steps=100, steps_per_epoch=5, num_processes=2)
    for _ in range(19):  # 19 scheduler steps = 9.5 optimiser steps on 2 processes: still the first 10 steps
        optimizer.step()
        scheduler.step()
    assert scheduler.get_last_lr()[0] == 1.0
    optimizer.step()
    scheduler.step()
    assert scheduler.get_last_lr()[0] == 0.5
