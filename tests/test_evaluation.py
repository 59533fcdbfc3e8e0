"""Image-blind baselines: the mean training pose and the aligned mean training shape, on hand-made poses."""

import numpy as np
import pytest

from clip_hand3d.evaluation import aligned_mean_shape, mean_pose_pa_mpjpe, mean_shape_pa_mpjpe, score_predictions
from clip_hand3d.metrics import procrustes_align


def random_rotations(count: int, rng: np.random.Generator) -> np.ndarray:
    """(count, 3, 3) proper rotations."""
    q, r = np.linalg.qr(rng.normal(size=(count, 3, 3)))
    q = q * np.sign(np.diagonal(r, axis1=1, axis2=2))[:, None, :]
    return q * np.sign(np.linalg.det(q))[:, None, None]


def posed_copies(shape: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` copies of `shape` (J, 3), each rotated, scaled and moved: metres, like camera-frame joints."""
    rotations = random_rotations(count, rng)
    scales = rng.uniform(0.8, 1.2, size=(count, 1, 1))
    offsets = rng.normal(0.0, 0.05, size=(count, 1, 3)) + np.array([0.0, 0.0, 0.5])
    return scales * shape @ rotations.transpose(0, 2, 1) + offsets


@pytest.fixture
def hand_shape() -> np.ndarray:
    return np.random.default_rng(0).normal(0.0, 0.03, size=(21, 3))


def test_the_mean_pose_of_one_unrotated_shape_scores_zero(hand_shape):
    train = np.repeat(hand_shape[None] + np.array([0.0, 0.0, 0.5]), 4, axis=0)
    gt = hand_shape[None] - hand_shape[:1]
    assert mean_pose_pa_mpjpe(train, gt) == pytest.approx(0.0, abs=1e-4)  # mm; 1e-8 in the alignment norm


def test_the_aligned_mean_recovers_a_shape_seen_from_every_direction_where_the_plain_mean_collapses(hand_shape):
    rng = np.random.default_rng(1)
    train = posed_copies(hand_shape, 400, rng)
    gt = posed_copies(hand_shape, 20, rng)
    gt = gt - gt[:, :1]

    shape = aligned_mean_shape(train)
    assert np.allclose(shape.mean(axis=0), 0.0, atol=1e-12)
    assert np.linalg.norm(shape) == pytest.approx(1.0)
    # The same hand up to a similarity transform.
    assert np.allclose(procrustes_align(shape, hand_shape), hand_shape, atol=1e-9)
    assert mean_shape_pa_mpjpe(train, gt) == pytest.approx(0.0, abs=1e-6)

    # Averaged in camera coordinates, 400 random orientations of the hand nearly cancel out.
    plain_mean = (train - train[:, :1]).mean(axis=0)
    assert np.ptp(plain_mean, axis=0).max() < 0.25 * np.ptp(hand_shape, axis=0).max()
    assert mean_pose_pa_mpjpe(train, gt) > 5.0


def test_the_aligned_mean_of_two_shapes_lies_between_them(hand_shape):
    rng = np.random.default_rng(2)
    other = hand_shape + rng.normal(0.0, 0.004, size=hand_shape.shape)
    train = np.concatenate([posed_copies(hand_shape, 50, rng), posed_copies(other, 50, rng)])
    to_first = mean_shape_pa_mpjpe(train, (hand_shape - hand_shape[:1])[None])
    to_second = mean_shape_pa_mpjpe(train, (other - other[:1])[None])
    between = mean_shape_pa_mpjpe(train, [(hand_shape + other) / 2 - (hand_shape + other)[:1] / 2])
    assert between < 0.2 * min(to_first, to_second)
    assert to_first == pytest.approx(to_second, rel=0.2)


def test_unaligned_errors_of_root_relative_predictions_are_the_root_relative_ones():
    rng = np.random.default_rng(3)
    gt_joints, gt_vertices = rng.normal(scale=0.04, size=(4, 21, 3)), rng.normal(scale=0.04, size=(4, 50, 3))
    pred_joints = gt_joints + rng.normal(scale=0.01, size=gt_joints.shape)
    pred_vertices = gt_vertices + rng.normal(scale=0.01, size=gt_vertices.shape)
    # As `predict` returns them: every set centred on its own wrist.
    predictions = {
        "pred_joints": pred_joints - pred_joints[:, :1],
        "gt_joints": gt_joints - gt_joints[:, :1],
        "pred_vertices": pred_vertices - pred_joints[:, :1],
        "gt_vertices": gt_vertices - gt_joints[:, :1],
        "vertices_valid": np.ones(4, dtype=bool),
    }
    scores = score_predictions(predictions)
    assert scores["mpjpe_absolute"] == pytest.approx(scores["mpjpe"]) and scores["mpjpe"] > 1.0
    assert scores["mpvpe_absolute"] == pytest.approx(scores["mpvpe"]) and scores["mpvpe"] > 1.0
