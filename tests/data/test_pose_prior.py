"""The pose prior: gestures look like themselves, DIP follows PIP, spread fades with flexion, limits hold."""

import math

import numpy as np
import pytest
import torch

from clip_hand3d.data.parametric_hand import FINGER_POSE_LIMITS_DEG
from clip_hand3d.data.pose_prior import (
    DIP_PIP_COUPLING,
    FREE_POSE_WEIGHT,
    GESTURE_WEIGHTS,
    GESTURES,
    gesture_table,
    sample_finger_pose,
)

LIMITS = torch.tensor(np.radians(FINGER_POSE_LIMITS_DEG), dtype=torch.float32)
NAMES = list(GESTURES)


def poses_of(gesture: str, count: int = 256, seed: int = 0) -> torch.Tensor:
    """`count` poses of one gesture ("free" for free poses), (count, 5 fingers, 3 joints, 3) degrees."""
    index = len(NAMES) if gesture == "free" else NAMES.index(gesture)
    gestures = torch.full((count,), index)
    pose = sample_finger_pose(LIMITS, count, torch.Generator().manual_seed(seed), gestures=gestures)
    return torch.rad2deg(pose).reshape(count, 5, 3, 3)


def test_every_gesture_has_a_weight_and_the_probabilities_sum_to_one():
    assert set(GESTURE_WEIGHTS) == set(GESTURES)
    names, curls, oppositions, spreads, probabilities = gesture_table()
    assert names == NAMES and curls.shape == (len(NAMES), 5)
    assert torch.isclose(probabilities.sum(), torch.tensor(1.0))
    assert math.isclose(sum(GESTURE_WEIGHTS.values()) + FREE_POSE_WEIGHT, 1.0)
    assert math.isclose(float(probabilities[-1]), FREE_POSE_WEIGHT, rel_tol=1e-6)


@pytest.mark.parametrize("gesture", NAMES + ["free"])
def test_poses_stay_within_the_joint_limits(gesture):
    pose = torch.deg2rad(poses_of(gesture)).reshape(-1, 15, 3)
    assert (pose >= LIMITS[..., 0] - 1e-6).all() and (pose <= LIMITS[..., 1] + 1e-6).all()


def test_gestures_look_like_themselves():
    fist, open_palm, point = poses_of("fist"), poses_of("open palm"), poses_of("point")
    # Flexion of the index..little MCP and PIP joints, degrees.
    assert fist[:, 1:, :2, 0].mean() > 70 and (fist[:, 1:, 1, 0] > 60).float().mean() > 0.95
    assert open_palm[:, 1:, :2, 0].abs().mean() < 10
    assert point[:, 1, :2, 0].abs().mean() < 10 and point[:, 2:, 1, 0].mean() > 80  # index straight, others curled
    # An open palm fans its fingers: the index abducts towards the thumb, the little finger away (MCP abduction).
    assert open_palm[:, 1, 0, 1].mean() > 5 and open_palm[:, 4, 0, 1].mean() < -5
    thumbs_up = poses_of("thumbs up")
    assert thumbs_up[:, 0, 1:, 0].mean() < 10 and thumbs_up[:, 1:, 1, 0].mean() > 80


def test_dip_flexion_follows_pip_flexion():
    pose = poses_of("free", count=2048)
    pip, dip = pose[:, 1:, 1, 0].flatten(), pose[:, 1:, 2, 0].flatten()
    inside = (dip > -4) & (dip < 79)  # away from the DIP limits (-5, 80), where clamping bends the line
    slope = np.polyfit(pip[inside].numpy(), dip[inside].numpy(), 1)[0]
    assert abs(slope - DIP_PIP_COUPLING) < 0.05
    residual = dip[inside] - DIP_PIP_COUPLING * pip[inside]
    assert residual.std() < 7  # degrees: 5 degrees of noise on top of the coupling


def test_spread_fades_as_the_fingers_flex():
    pose = poses_of("free", count=4096)
    abduction, flexion = pose[:, 1, 0, 1].abs(), pose[:, 1, 0, 0]  # index MCP
    assert abduction[flexion > 70].mean() < 0.5 * abduction[flexion < 20].mean()


def test_sampling_is_reproducible_and_gestures_are_checked():
    first = sample_finger_pose(LIMITS, 64, torch.Generator().manual_seed(3))
    assert torch.equal(first, sample_finger_pose(LIMITS, 64, torch.Generator().manual_seed(3)))
    assert not torch.equal(first, sample_finger_pose(LIMITS, 64, torch.Generator().manual_seed(4)))
    with pytest.raises(ValueError, match=r"gestures must be 2 indices in \[0, 15\], got \[0, 16\]"):
        sample_finger_pose(LIMITS, 2, gestures=torch.tensor([0, 16]))
