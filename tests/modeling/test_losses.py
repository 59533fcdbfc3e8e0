"""Loss functions against hand-computed cases."""

import math

import pytest
import torch

from clip_hand3d.modeling.losses import (
    apply_uv_affine,
    clip_loss,
    consistency_2d_loss,
    consistency_3d_loss,
    edge_loss,
    joint_offset_loss,
    masked_l1,
    normal_loss,
    pose_text_logits,
)

TRIANGLE = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
FACES = torch.tensor([[0, 1, 2]])


def test_masked_l1_counts_only_valid_samples():
    prediction = torch.zeros(2, 3, 3)
    target = torch.stack([torch.ones(3, 3), 5 * torch.ones(3, 3)])
    assert masked_l1(prediction, target).item() == pytest.approx(3.0)
    assert masked_l1(prediction, target, torch.tensor([True, False])).item() == pytest.approx(1.0)
    assert masked_l1(prediction, target, torch.tensor([False, False])).item() == 0.0


def test_masked_l1_per_point_mask():
    prediction = torch.zeros(1, 2, 3)
    target = torch.tensor([[[1.0, 1.0, 1.0], [3.0, 3.0, 3.0]]])
    assert masked_l1(prediction, target, torch.tensor([[False, True]])).item() == pytest.approx(3.0)


def test_joint_offset_loss_hand_computed():
    target = torch.zeros(1, 3, 3)
    # Errors per joint along u only: 0, 1, 3. Ordered pairs |e_i - e_j|: 0 1 3 / 1 0 2 / 3 2 0, sum 12 over 9
    # pairs, and v, d add 18 zeros: 12 / 27.
    prediction = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]]])
    assert joint_offset_loss(prediction, target).item() == pytest.approx(12 / 27)


def test_joint_offset_loss_ignores_a_shift_of_the_whole_hand():
    generator = torch.Generator().manual_seed(0)
    target = torch.randn(2, 21, 3, generator=generator)
    prediction = target + torch.randn(2, 21, 3, generator=generator)
    shift = torch.tensor([[[4.0, -2.0, 7.0]], [[-1.0, 3.0, 0.5]]])
    assert joint_offset_loss(target + shift, target).item() == pytest.approx(0.0, abs=1e-6)
    assert joint_offset_loss(prediction + shift, target).item() == pytest.approx(
        joint_offset_loss(prediction, target).item(), rel=1e-5
    )


def test_joint_offset_loss_masks():
    target = torch.zeros(2, 3, 3)
    prediction = torch.tensor(
        [[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0]], [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 9.0]]]
    )
    # Per sample: the second sample's pairs (sum 36 over 27 values) are left out.
    assert joint_offset_loss(prediction, target, torch.tensor([True, False])).item() == pytest.approx(12 / 27)
    # Per joint: joint 2 left out of both samples; only the first sample's pair (0, 1) differs: 2 / (2 * 4 * 3).
    joint_mask = torch.tensor([[True, True, False], [True, True, False]])
    assert joint_offset_loss(prediction, target, joint_mask).item() == pytest.approx(2 / 24)


def test_normal_loss_zero_in_plane_and_known_when_tilted():
    assert normal_loss(TRIANGLE, TRIANGLE, FACES).item() == pytest.approx(0.0, abs=1e-7)
    # Lift vertex 2 to z = 1: edges v1->v2 = (-1, 1, 1), v2->v0 = (0, -1, -1); the target normal is +z.
    tilted = TRIANGLE.clone()
    tilted[0, 2, 2] = 1.0
    expected = (0.0 + 1 / math.sqrt(3) + 1 / math.sqrt(2)) / 3
    assert normal_loss(tilted, TRIANGLE, FACES).item() == pytest.approx(expected, rel=1e-6)


def test_edge_loss_of_scaled_triangle():
    # Scaling by 2 doubles every edge: |1-2| + |sqrt2 - 2 sqrt2| + |1-2| over 3 edges.
    expected = (1 + math.sqrt(2) + 1) / 3
    assert edge_loss(2 * TRIANGLE, TRIANGLE, FACES).item() == pytest.approx(expected, rel=1e-6)
    assert edge_loss(TRIANGLE + 5.0, TRIANGLE, FACES).item() == pytest.approx(0.0, abs=1e-6)


def test_uv_affine_moves_uv_and_keeps_depth():
    points = torch.tensor([[[1.0, 2.0, 7.0]]])
    rotate_90_and_shift = torch.tensor([[[0.0, -1.0, 10.0], [1.0, 0.0, 0.0]]])
    assert apply_uv_affine(points, rotate_90_and_shift).tolist() == [[[8.0, 1.0, 7.0]]]


def test_consistency_losses_vanish_for_consistent_views():
    torch.manual_seed(0)
    joints = torch.rand(2, 21, 3)
    vertices = torch.rand(2, 778, 3)
    affine = torch.tensor([[[0.8, -0.6, 3.0], [0.6, 0.8, -1.0]]]).repeat(2, 1, 1)
    assert consistency_2d_loss(joints, apply_uv_affine(joints, affine), affine).item() == pytest.approx(0.0, abs=1e-6)
    assert consistency_3d_loss(vertices, apply_uv_affine(vertices, affine), affine).item() == pytest.approx(
        0.0, abs=1e-6
    )
    shifted = apply_uv_affine(joints, affine) + torch.tensor([0.5, 0.0, 0.0])
    assert consistency_2d_loss(joints, shifted, affine).item() == pytest.approx(0.25, rel=1e-5)


def test_clip_loss_matches_hand_computation():
    # Two samples, orthogonal unit embeddings, perfectly matched: logits = diag(s) on each axis.
    pose = torch.eye(2)[:, None, :].repeat(1, 3, 1)
    scales = torch.tensor([1.0, 2.0, 3.0])
    logits, logits_per_text, first_label = pose_text_logits(pose, pose.clone(), scales, gather=False)
    loss = clip_loss(logits, logits_per_text, first_label)
    assert first_label == 0
    expected_per_axis = [2 * math.log(1 + math.exp(-s)) for s in (1.0, 2.0, 3.0)]
    assert loss.item() == pytest.approx(sum(expected_per_axis) / 3, rel=1e-6)
    assert logits.shape == (3, 2, 2)
    assert torch.allclose(logits[2], torch.diag(torch.tensor([3.0, 3.0])))


def test_clip_loss_is_lower_for_matched_than_swapped_pairs():
    torch.manual_seed(0)
    pose = torch.nn.functional.normalize(torch.randn(4, 3, 8), dim=-1)
    scales = torch.full((3,), 10.0)
    matched = clip_loss(*pose_text_logits(pose, pose, scales, gather=False))
    swapped = clip_loss(*pose_text_logits(pose, pose.flip(0), scales, gather=False))
    assert matched < swapped


def test_clip_loss_counts_labels_from_the_first_sample_of_this_process():
    # Process 1 of 2 (2 samples each): its sample i matches column 2 + i of the global batch.
    logits = torch.zeros(3, 2, 4)
    logits[:, 0, 2] = logits[:, 1, 3] = 1.0
    # Each row: cross-entropy -log(e / (e + 3)), once pose->text and once text->pose.
    assert clip_loss(logits, logits, first_label=2).item() == pytest.approx(2 * math.log(1 + 3 / math.e), rel=1e-6)
    assert clip_loss(logits, logits, first_label=0).item() == pytest.approx(2 * math.log(math.e + 3), rel=1e-6)
