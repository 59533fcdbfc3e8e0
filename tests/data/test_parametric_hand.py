"""Tests of `ParametricHand`: posing, shaping, random poses and shapes, rotations and input checks."""

import math

import numpy as np
import pytest
import torch

from clip_hand3d.data.parametric_hand import FINGER_POSE_LIMITS_DEG, ParametricHand, axis_angle_to_matrix
from clip_hand3d.modeling.hand_joints import JOINT_PARENTS
from clip_hand3d.modeling.hand_surface import SHAPE_PARAM_NAMES
from clip_hand3d.modeling.hand_template import build_hand_template

INDEX_MCP, INDEX_PIP, INDEX_TIP = 5, 6, 8
INDEX_BONES = [4, 5, 6]


@pytest.fixture(scope="module")
def hand() -> ParametricHand:
    return ParametricHand()


def pose_hand(hand, finger_pose=None, shape=None, global_orient=None, translation=None):
    batch = 1
    for value in (finger_pose, shape, global_orient):
        if value is not None:
            batch = value.shape[0]
    global_orient = torch.zeros(batch, 3) if global_orient is None else global_orient
    finger_pose = torch.zeros(batch, 15, 3) if finger_pose is None else finger_pose
    shape = torch.zeros(batch, 10) if shape is None else shape
    return hand(global_orient, finger_pose, shape, translation)


def shape_with(name: str, value: float = 1.0) -> torch.Tensor:
    shape = torch.zeros(1, len(SHAPE_PARAM_NAMES))
    shape[0, SHAPE_PARAM_NAMES.index(name)] = value
    return shape


def bone_lengths(joints: torch.Tensor) -> torch.Tensor:
    children = [child for child, parent in enumerate(JOINT_PARENTS) if parent >= 0]
    parents = [JOINT_PARENTS[child] for child in children]
    return (joints[..., children, :] - joints[..., parents, :]).norm(dim=-1)


def test_zero_pose_and_shape_give_the_template(hand):
    vertices, joints = pose_hand(hand)
    assert torch.allclose(vertices[0], hand.template_vertices, atol=1e-7)
    assert torch.allclose(joints[0], hand.template_joints, atol=1e-7)


def test_flexing_the_index_mcp_by_90_degrees_moves_only_the_index_finger(hand):
    finger_pose = torch.zeros(1, 15, 3)
    finger_pose[0, 3, 0] = math.pi / 2  # index MCP, flexion
    vertices, joints = pose_hand(hand, finger_pose)
    rest = hand.template_joints
    # The index lies in the palm plane (z = 0); a right angle at the MCP points it at the camera (-z).
    distances_from_mcp = torch.cumsum(bone_lengths(rest)[5:8], dim=0)  # bones ending at joints 6, 7, 8
    expected = rest[INDEX_MCP] + distances_from_mcp[:, None] * torch.tensor([0.0, 0.0, -1.0])
    assert torch.allclose(joints[0, INDEX_MCP + 1 : INDEX_TIP + 1], expected, atol=1e-6)
    others = [joint for joint in range(21) if not INDEX_MCP < joint <= INDEX_TIP]
    assert torch.allclose(joints[0, others], rest[others], atol=1e-7)
    untouched = hand.skinning_weights[:, INDEX_BONES].sum(dim=1) == 0
    moved = (vertices[0] - hand.template_vertices).norm(dim=-1)
    assert moved[untouched].max() < 1e-7
    assert moved[hand.skinning_weights[:, INDEX_BONES[1]] == 1].min() > 0.02


def test_global_orientation_rotates_about_the_wrist_and_translation_shifts(hand):
    quarter_turn_about_z = torch.tensor([[0.0, 0.0, math.pi / 2]])
    translation = torch.tensor([[0.1, -0.2, 0.5]])
    vertices, joints = pose_hand(hand, global_orient=quarter_turn_about_z, translation=translation)
    rotation = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert torch.allclose(vertices[0], hand.template_vertices @ rotation.T + translation, atol=1e-6)
    assert torch.allclose(joints[0, 0], translation[0])


def test_pose_preserves_bone_lengths_and_the_regressor_tracks_the_joints(hand):
    generator = torch.Generator().manual_seed(0)
    finger_pose, shape = hand.sample_pose(8, generator), hand.sample_shape(8, generator)
    global_orient = torch.randn(8, 3, generator=generator)
    rest_vertices, rest_joints = pose_hand(hand, shape=shape)
    vertices, joints = pose_hand(hand, finger_pose, shape, global_orient)
    assert torch.allclose(bone_lengths(joints), bone_lengths(rest_joints), atol=1e-6)
    assert torch.allclose(hand.joint_regressor @ vertices, joints, atol=1e-6)
    assert (vertices - rest_vertices).norm(dim=-1).max() > 0.05


@pytest.mark.parametrize(
    ("name", "factor"),
    [("palm_width", 1.05), ("palm_length", 1.05), ("finger_thickness", 1.08), ("palm_thickness", 1.08)],
)
def test_shape_parameters_change_the_documented_sizes(hand, name, factor):
    mean_vertices, mean_joints = pose_hand(hand)
    vertices, joints = pose_hand(hand, shape=shape_with(name))
    palm = torch.as_tensor(build_hand_template().vertex_parts == 0)
    if name == "palm_width":
        mean_width = float(mean_vertices[0, palm, 0].max() - mean_vertices[0, palm, 0].min())
        assert 0.075 < mean_width < 0.08  # metres: the knuckles' span (Buchholz et al.) and their flesh
        assert abs(float(vertices[0, palm, 0].max() - vertices[0, palm, 0].min()) - factor * mean_width) < 1e-6
    elif name == "palm_length":
        mcp_joints = [5, 9, 13, 17]
        assert torch.allclose(joints[0, mcp_joints, 1], factor * mean_joints[0, mcp_joints, 1], atol=1e-7)
    elif name == "finger_thickness":
        pip_ring = hand.joint_regressor[INDEX_PIP] > 0
        mean_radius = (mean_vertices[0, pip_ring] - mean_joints[0, INDEX_PIP]).norm(dim=-1)
        radius = (vertices[0, pip_ring] - joints[0, INDEX_PIP]).norm(dim=-1)
        assert torch.allclose(radius, factor * mean_radius, atol=1e-7)
    else:
        thickness = vertices[0, palm, 2].max() - vertices[0, palm, 2].min()
        assert abs(float(thickness) - factor * 0.034) < 1e-6


def test_finger_length_and_scale_parameters(hand):
    _, mean_joints = pose_hand(hand)
    _, joints = pose_hand(hand, shape=shape_with("index_length"))
    ratio = bone_lengths(joints[0]) / bone_lengths(mean_joints[0])
    index_bones = [5, 6, 7]  # bones ending at index PIP, DIP, tip
    assert torch.allclose(ratio[index_bones], torch.full((3,), 1.05), atol=1e-6)
    others = [bone for bone in range(20) if bone not in index_bones]
    assert torch.allclose(ratio[others], torch.ones(len(others)), atol=1e-6)
    vertices, joints = pose_hand(hand, shape=shape_with("scale", -1.0))
    assert torch.allclose(vertices[0], math.exp(-0.06) * hand.template_vertices, atol=1e-7)


def test_sample_pose_is_plausible_and_reproducible(hand):
    pose = hand.sample_pose(512, torch.Generator().manual_seed(1))
    assert pose.shape == (512, 15, 3)
    limits = torch.tensor(np.radians(FINGER_POSE_LIMITS_DEG), dtype=torch.float32)
    assert (pose >= limits[..., 0] - 1e-6).all() and (pose <= limits[..., 1] + 1e-6).all()
    assert torch.equal(pose, hand.sample_pose(512, torch.Generator().manual_seed(1)))
    assert not torch.equal(pose, hand.sample_pose(512, torch.Generator().manual_seed(2)))
    finger_flexion = pose[:, 3:, 0].reshape(512, 4, 3)
    mean_flexion = finger_flexion.mean(dim=(1, 2))
    assert (mean_flexion > math.radians(60)).float().mean() > 0.1  # fists
    assert (mean_flexion < math.radians(15)).float().mean() > 0.1  # open hands
    mcp, pip = finger_flexion[..., 0].flatten(), finger_flexion[..., 1].flatten()
    assert torch.corrcoef(torch.stack([mcp, pip]))[0, 1] > 0.6  # one curl per finger


def test_sample_shape_is_standard_normal_truncated(hand):
    shape = hand.sample_shape(4000, torch.Generator().manual_seed(0))
    assert shape.shape == (4000, 10)
    assert shape.abs().max() <= 2.5
    assert 0.9 < shape.std() < 1.05 and shape.mean().abs() < 0.05


def test_forward_is_differentiable_everywhere(hand):
    global_orient = torch.zeros(2, 3, requires_grad=True)
    finger_pose = torch.zeros(2, 15, 3)
    finger_pose[1] = hand.sample_pose(1, torch.Generator().manual_seed(3))[0]
    finger_pose.requires_grad_(True)
    shape = torch.zeros(2, 10, requires_grad=True)
    vertices, joints = hand(global_orient, finger_pose, shape)
    (vertices.square().sum() + joints[:, :, 2].sum()).backward()
    for value in (global_orient, finger_pose, shape):
        assert torch.isfinite(value.grad).all() and value.grad.abs().sum() > 0


def test_axis_angle_to_matrix_matches_hand_computed_rotations():
    quarter_turn = axis_angle_to_matrix(torch.tensor([math.pi / 2, 0.0, 0.0]))
    assert torch.allclose(quarter_turn, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]), atol=1e-7)
    assert torch.equal(axis_angle_to_matrix(torch.zeros(3)), torch.eye(3))
    tiny = torch.tensor([1e-5, -2e-5, 3e-5], dtype=torch.float64)
    expected = torch.eye(3, dtype=torch.float64) + torch.tensor(
        [[0.0, -3e-5, -2e-5], [3e-5, 0.0, -1e-5], [2e-5, 1e-5, 0.0]], dtype=torch.float64
    )
    assert torch.allclose(axis_angle_to_matrix(tiny), expected, atol=1e-9)
    rotations = axis_angle_to_matrix(torch.randn(16, 3, generator=torch.Generator().manual_seed(0)))
    assert torch.allclose(rotations @ rotations.transpose(-1, -2), torch.eye(3).expand(16, 3, 3), atol=1e-6)
    assert torch.allclose(torch.linalg.det(rotations), torch.ones(16), atol=1e-6)


def test_bad_inputs_are_named(hand):
    with pytest.raises(ValueError, match="finger_pose must be a tensor of shape \\(batch, 15, 3\\)"):
        hand(torch.zeros(1, 3), torch.zeros(1, 16, 3), torch.zeros(1, 10))
    with pytest.raises(ValueError, match="shape must be a tensor of shape \\(batch, 10\\)"):
        hand(torch.zeros(1, 3), torch.zeros(1, 15, 3), torch.zeros(1, 9))
    with pytest.raises(ValueError, match="share the batch size"):
        hand(torch.zeros(2, 3), torch.zeros(1, 15, 3), torch.zeros(1, 10))
    with pytest.raises(ValueError, match="translation"):
        hand(torch.zeros(1, 3), torch.zeros(1, 15, 3), torch.zeros(1, 10), torch.zeros(3))
