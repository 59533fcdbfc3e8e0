"""Text prompts that describe the order of hand joints along x, y and z (CLIP-Hand3D, section 3.1).

A prompt names N of the 21 joints sorted by one camera-frame coordinate (OpenCV frame: x right, y down,
z away from the camera), e.g. "From left to right, the joints are index MCP, thumb fingertip, and wrist."
"""

import numpy as np
import torch

from clip_hand3d.modeling.hand_joints import JOINT_NAMES, NUM_JOINTS

# One prefix per axis: ascending x, ascending y, ascending z.
AXIS_PREFIXES = ("From left to right,", "From top to bottom,", "From near to far,")


def _joints_to_numpy(joints_xyz: np.ndarray | torch.Tensor) -> np.ndarray:
    """Numpy or torch joints -> a float64 numpy copy."""
    if isinstance(joints_xyz, torch.Tensor):
        joints_xyz = joints_xyz.detach().cpu().numpy()
    if not isinstance(joints_xyz, np.ndarray):
        raise TypeError(f"joints_xyz must be a numpy array or a torch tensor, got {type(joints_xyz).__name__}")
    if not (np.issubdtype(joints_xyz.dtype, np.floating) or np.issubdtype(joints_xyz.dtype, np.integer)):
        raise TypeError(f"joints_xyz must hold real numbers, got dtype {joints_xyz.dtype}")
    return joints_xyz.astype(np.float64)


def _check_num_joints(num_joints: int) -> None:
    if isinstance(num_joints, bool) or not isinstance(num_joints, int | np.integer):
        raise TypeError(f"num_joints must be an int, got {type(num_joints).__name__}")
    if not 1 <= num_joints <= NUM_JOINTS:
        raise ValueError(f"num_joints must be in 1..{NUM_JOINTS}, got {num_joints}")


def _check_joint_ids(joint_ids) -> np.ndarray:
    """Validate explicit joint ids: distinct integers in 0..20. Returns them as an int64 array."""
    ids = np.asarray(joint_ids)
    if ids.ndim != 1 or ids.size == 0:
        raise ValueError(f"joint_ids must be a non-empty 1D sequence of joint indices, got shape {ids.shape}")
    if not np.issubdtype(ids.dtype, np.integer):
        raise TypeError(f"joint_ids must be integers, got dtype {ids.dtype}")
    if ids.min() < 0 or ids.max() >= NUM_JOINTS:
        raise ValueError(f"joint_ids must be in 0..{NUM_JOINTS - 1}, got {ids.tolist()}")
    if len(np.unique(ids)) != len(ids):
        raise ValueError(f"joint_ids must be distinct, got {ids.tolist()}")
    return ids.astype(np.int64)


def _join_names(names: list[str]) -> str:
    """ "A", "A and B", "A, B, and C" (Oxford comma)."""
    if len(names) == 1:
        return names[0]
    if len(names) == 2:
        return f"{names[0]} and {names[1]}"
    return ", ".join(names[:-1]) + f", and {names[-1]}"


def _describe_axis(joints_xyz: np.ndarray, joint_ids: np.ndarray, axis: int) -> str:
    """The prompt for one axis: the chosen joints sorted ascending along `axis`, ties by joint index."""
    ids = np.sort(joint_ids)
    ordered = ids[np.argsort(joints_xyz[ids, axis], kind="stable")]
    names = [JOINT_NAMES[joint] for joint in ordered]
    if len(names) == 1:
        return f"{AXIS_PREFIXES[axis]} the joint is {names[0]}."
    return f"{AXIS_PREFIXES[axis]} the joints are {_join_names(names)}."


def _prompts_for_valid_joints(
    joints_xyz: np.ndarray, joint_ids, num_joints: int, generator: np.random.Generator | None
) -> tuple[str, str, str]:
    if joint_ids is None:
        generator = np.random.default_rng() if generator is None else generator
        ids = generator.choice(NUM_JOINTS, size=num_joints, replace=False)
    else:
        ids = _check_joint_ids(joint_ids)
    return tuple(_describe_axis(joints_xyz, ids, axis) for axis in range(3))


def build_prompts(
    joints_xyz: np.ndarray | torch.Tensor,
    joint_ids=None,
    num_joints: int = NUM_JOINTS,
    generator: np.random.Generator | None = None,
) -> tuple[str, str, str]:
    """The three prompts (x, y, z order) of one hand.

    Args:
        joints_xyz: (21, 3) joints in the camera frame (x right, y down, z away from the camera), any unit.
        joint_ids: indices (FreiHAND order) of the joints to describe; their order does not matter. If None,
            `num_joints` distinct joints are drawn at random with `generator`.
        num_joints: how many joints to draw when `joint_ids` is None, in 1..21.
        generator: numpy random generator for the draw; a fresh default one when None.

    Returns:
        (text_x, text_y, text_z), e.g. "From left to right, the joints are wrist, thumb MCP, and index MCP."
    """
    _check_num_joints(num_joints)
    joints = _joints_to_numpy(joints_xyz)
    if joints.shape != (NUM_JOINTS, 3):
        raise ValueError(f"joints_xyz must have shape ({NUM_JOINTS}, 3), got {tuple(joints.shape)}")
    if not np.isfinite(joints).all():
        raise ValueError("joints_xyz holds NaN or infinite values")
    return _prompts_for_valid_joints(joints, joint_ids, num_joints, generator)


def build_prompts_batch(
    joints_xyz: np.ndarray | torch.Tensor,
    num_joints: int = NUM_JOINTS,
    generator: np.random.Generator | None = None,
) -> tuple[list[str], list[str], list[str]]:
    """Prompts of a batch of hands, each with its own random draw of `num_joints` joints.

    Args:
        joints_xyz: (B, 21, 3) joints in the camera frame.
        num_joints: joints per prompt, in 1..21.
        generator: numpy random generator; a fresh default one when None.

    Returns:
        (texts_x, texts_y, texts_z), three lists of B strings.
    """
    _check_num_joints(num_joints)
    joints = _joints_to_numpy(joints_xyz)
    if joints.ndim != 3 or joints.shape[1:] != (NUM_JOINTS, 3) or joints.shape[0] == 0:
        raise ValueError(f"joints_xyz must have shape (B, {NUM_JOINTS}, 3) with B >= 1, got {tuple(joints.shape)}")
    not_finite = np.flatnonzero(~np.isfinite(joints).all(axis=(1, 2)))
    if len(not_finite) > 0:
        raise ValueError(f"joints_xyz of sample {not_finite[0]} holds NaN or infinite values")
    generator = np.random.default_rng() if generator is None else generator
    prompts = [_prompts_for_valid_joints(sample, None, num_joints, generator) for sample in joints]
    texts_x, texts_y, texts_z = (list(texts) for texts in zip(*prompts, strict=True))
    return texts_x, texts_y, texts_z
