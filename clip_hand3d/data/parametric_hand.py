"""`ParametricHand`: the built-in hand template as a differentiable, batched, posable and shapeable right hand.

It poses the template of `clip_hand3d.modeling.hand_template` (rest frame, bones, skinning weights and shape
directions are described there) with linear blend skinning, and draws random plausible poses and shapes for the
synthetic data (`clip_hand3d.data.synthetic`). Outputs are in the template's rest frame, metres, rotated by
`global_orient` about the wrist and then moved by `translation`.
"""

import numpy as np
import torch
from torch import nn

from clip_hand3d.data.pose_prior import sample_finger_pose
from clip_hand3d.modeling.hand_joints import NUM_JOINTS
from clip_hand3d.modeling.hand_surface import NUM_SHAPE_PARAMS
from clip_hand3d.modeling.hand_template import build_hand_template

NUM_FINGER_JOINTS = 15
SCALE_LOG_STD = 0.06  # shape parameter 0 ("scale") multiplies the hand by exp(SCALE_LOG_STD * value)

# Joint limits of `finger_pose`, degrees, per finger joint (thumb MCP, PIP, DIP, index MCP, ..., little DIP) and
# per axis-angle component in the joint's local frame: flexion (towards the palm), abduction (fingers: towards
# the thumb side; thumb: away from the index finger), twist (about the bone).
_THUMB_LIMITS_DEG = [
    [(-15.0, 45.0), (-25.0, 30.0), (-15.0, 15.0)],
    [(-10.0, 60.0), (-10.0, 10.0), (-5.0, 5.0)],
    [(-15.0, 80.0), (-5.0, 5.0), (-5.0, 5.0)],
]
_FINGER_LIMITS_DEG = [
    [(-20.0, 90.0), (-20.0, 20.0), (-5.0, 5.0)],
    [(0.0, 110.0), (-3.0, 3.0), (-3.0, 3.0)],
    [(-5.0, 80.0), (-3.0, 3.0), (-3.0, 3.0)],
]
FINGER_POSE_LIMITS_DEG = np.array(_THUMB_LIMITS_DEG + _FINGER_LIMITS_DEG * 4)  # (15, 3, 2) min, max

# The joint each bone rotates about: bone 0 the wrist, bone 1 + 3 * finger + k joint 1 + 4 * finger + k.
_BONE_PIVOT_JOINTS = [0] + [1 + 4 * finger + k for finger in range(5) for k in range(3)]
# Sign of each finger joint's abduction when the hand spreads (MCP joints only; thumb, index, middle, ring, little).
_SPREAD_DIRECTIONS = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.1, 0.0, 0.0, -1.0, 0.0, 0.0, -1.0, 0.0, 0.0])
_IS_MCP = torch.arange(NUM_FINGER_JOINTS) % 3 == 0


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) from axis-angle vectors (..., 3) (direction = axis, norm = angle in radians).

    Rodrigues' formula with Taylor expansions near zero, so it is exact at zero and differentiable everywhere.
    """
    angle_squared = (axis_angle * axis_angle).sum(-1, keepdim=True)[..., None]
    small = angle_squared < 1e-8
    safe_squared = torch.where(small, torch.ones_like(angle_squared), angle_squared)
    safe_angle = safe_squared.sqrt()
    sine_term = torch.where(small, 1.0 - angle_squared / 6.0, torch.sin(safe_angle) / safe_angle)
    cosine_term = torch.where(small, 0.5 - angle_squared / 24.0, (1.0 - torch.cos(safe_angle)) / safe_squared)
    x, y, z = axis_angle.unbind(-1)
    zeros = torch.zeros_like(x)
    cross = torch.stack([zeros, -z, y, z, zeros, -x, -y, x, zeros], dim=-1).reshape(axis_angle.shape + (3,))
    identity = torch.eye(3, dtype=axis_angle.dtype, device=axis_angle.device).expand_as(cross)
    return identity + sine_term * cross + cosine_term * (cross @ cross)


def _check_batch(name: str, value: torch.Tensor, shape: tuple[int, ...]) -> None:
    """Raise if `value` is not (B,) + shape."""
    if not isinstance(value, torch.Tensor) or value.dim() != len(shape) + 1 or tuple(value.shape[1:]) != shape:
        found = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
        raise ValueError(f"{name} must be a tensor of shape (batch, {', '.join(map(str, shape))}), got {found}")


class ParametricHand(nn.Module):
    """The built-in right hand as a differentiable, batched layer (an `nn.Module` holding buffers only).

    Buffers (not saved in state dicts: they are regenerated from code): `template_vertices` (778, 3),
    `template_joints` (21, 3), `faces` (1552, 3) int64, `skinning_weights` (778, 16), `joint_regressor`
    (21, 778), `vertex_shape_directions` (9, 778, 3), `joint_shape_directions` (9, 21, 3), `pad_normals` (5, 3).
    See `clip_hand3d.modeling.hand_template` for the rest frame, the bones and the shape parameters.
    """

    num_shape_params = NUM_SHAPE_PARAMS

    def __init__(self):
        super().__init__()
        template = build_hand_template()
        buffers = {
            "template_vertices": template.vertices,
            "template_joints": template.joints,
            "faces": template.faces,
            "skinning_weights": template.skinning_weights,
            "joint_regressor": template.joint_regressor,
            "vertex_shape_directions": template.vertex_shape_directions,
            "joint_shape_directions": template.joint_shape_directions,
            "pad_normals": template.pad_normals,
        }
        for name, array in buffers.items():
            dtype = torch.int64 if array.dtype == np.int64 else torch.float32
            self.register_buffer(name, torch.tensor(array, dtype=dtype), persistent=False)
        self.register_buffer(
            "pose_limits", torch.tensor(np.radians(FINGER_POSE_LIMITS_DEG), dtype=torch.float32), persistent=False
        )

    def shaped_rest(self, shape: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Rest-pose vertices (B, 778, 3) and joints (B, 21, 3) in metres for shape parameters (B, 10)."""
        _check_batch("shape", shape, (NUM_SHAPE_PARAMS,))
        scale = torch.exp(SCALE_LOG_STD * shape[:, :1])[:, :, None]
        coefficients = shape[:, 1:]
        vertices = self.template_vertices + torch.einsum("bs,svc->bvc", coefficients, self.vertex_shape_directions)
        joints = self.template_joints + torch.einsum("bs,sjc->bjc", coefficients, self.joint_shape_directions)
        return scale * vertices, scale * joints

    def joint_frames(self, joints: torch.Tensor) -> torch.Tensor:
        """Local frames (B, 15, 3, 3) of the finger joints in the rest pose: columns (flexion axis, abduction
        axis, bone direction). A positive rotation about the flexion axis curls the finger towards its pad."""
        batch = joints.shape[0]
        chains = joints[:, 1:].reshape(batch, 5, 4, 3)
        bone = torch.nn.functional.normalize(chains[:, :, 1:] - chains[:, :, :-1], dim=-1)
        pad = self.pad_normals[None, :, None].expand_as(bone)
        flexion = torch.nn.functional.normalize(torch.cross(bone, pad, dim=-1), dim=-1)
        abduction = torch.cross(bone, flexion, dim=-1)
        return torch.stack([flexion, abduction, bone], dim=-1).reshape(batch, NUM_FINGER_JOINTS, 3, 3)

    def forward(
        self,
        global_orient: torch.Tensor,
        finger_pose: torch.Tensor,
        shape: torch.Tensor,
        translation: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Pose and shape the hand.

        Args:
            global_orient: (B, 3) axis-angle rotation of the whole hand about the wrist joint, rest frame.
            finger_pose: (B, 15, 3) axis-angle of each finger joint (thumb MCP, PIP, DIP, index MCP, ...) in the
                joint's local frame (`joint_frames`): components (flexion, abduction, twist), radians.
            shape: (B, 10) shape parameters (`hand_surface.SHAPE_PARAM_NAMES`), zeros for the mean hand.
            translation: optional (B, 3) metres, added last.

        Returns:
            vertices (B, 778, 3) and joints (B, 21, 3), metres, FreiHAND joint order. The wrist stays at
            `translation` (the origin without it); fingertips are the tip vertices.
        """
        _check_batch("global_orient", global_orient, (3,))
        _check_batch("finger_pose", finger_pose, (NUM_FINGER_JOINTS, 3))
        _check_batch("shape", shape, (NUM_SHAPE_PARAMS,))
        batch = global_orient.shape[0]
        if finger_pose.shape[0] != batch or shape.shape[0] != batch:
            raise ValueError(
                f"global_orient, finger_pose and shape must share the batch size, got {batch}, "
                f"{finger_pose.shape[0]} and {shape.shape[0]}"
            )
        rest_vertices, rest_joints = self.shaped_rest(shape)
        frames = self.joint_frames(rest_joints)
        local_rotations = axis_angle_to_matrix(finger_pose)
        relative = frames @ local_rotations @ frames.transpose(-1, -2)
        rotations, posed_joints = self._forward_kinematics(axis_angle_to_matrix(global_orient), relative, rest_joints)
        pivots = rest_joints[:, _BONE_PIVOT_JOINTS]
        offsets = posed_joints[:, _BONE_PIVOT_JOINTS] - (rotations @ pivots[..., None])[..., 0]
        blended_rotations = torch.einsum("vk,bkij->bvij", self.skinning_weights, rotations)
        vertices = (blended_rotations @ rest_vertices[..., None])[..., 0] + self.skinning_weights @ offsets
        if translation is not None:
            _check_batch("translation", translation, (3,))
            vertices = vertices + translation[:, None]
            posed_joints = posed_joints + translation[:, None]
        return vertices, posed_joints

    def _forward_kinematics(
        self, global_rotation: torch.Tensor, relative: torch.Tensor, rest_joints: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """World rotations of the 16 bones (B, 16, 3, 3) and posed joints (B, 21, 3) (wrist fixed)."""
        rotations = [global_rotation]
        posed = [rest_joints[:, 0]] + [None] * (NUM_JOINTS - 1)
        for finger in range(5):
            parent_rotation = global_rotation
            for k in range(4):
                joint = 1 + 4 * finger + k
                parent_joint = 0 if k == 0 else joint - 1
                step = rest_joints[:, joint] - rest_joints[:, parent_joint]
                posed[joint] = posed[parent_joint] + (parent_rotation @ step[..., None])[..., 0]
                if k < 3:
                    parent_rotation = parent_rotation @ relative[:, 3 * finger + k]
                    rotations.append(parent_rotation)
        return torch.stack(rotations, dim=1), torch.stack(posed, dim=1)

    def sample_pose(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random finger articulations (B, 15, 3), radians, within `FINGER_POSE_LIMITS_DEG`: common gestures and
        grasps or free poses, with the couplings of real fingers (`clip_hand3d.data.pose_prior`)."""
        pose = sample_finger_pose(self.pose_limits.cpu(), batch_size, generator)
        return pose.to(self.template_vertices.device)

    def sample_shape(self, batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Random shape parameters (B, 10): standard normal, truncated to +-2.5."""
        shape = torch.randn(batch_size, NUM_SHAPE_PARAMS, generator=generator).clamp(-2.5, 2.5)
        return shape.to(self.template_vertices.device)
