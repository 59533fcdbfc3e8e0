"""Poses people make with their hands: the finger articulations `ParametricHand.sample_pose` draws.

A hand is, with the probabilities of `GESTURE_WEIGHTS`, one of the common gestures and grasps of `GESTURES` or
"free" (every finger's curl uniform in [0, 1]). A gesture fixes five finger curls (thumb to little, 0 straight,
1 fully flexed), the thumb's opposition (0 beside the index finger, 1 across the palm, its pad towards the
fingers) and the hand's spread (0 fingers together, 1 fanned out); each hand jitters them.

Within a finger, flexion is coupled as in real hands:
- MCP and PIP flexion follow the finger's curl with their own jitter (a hook or a flat "duck bill" is possible but
  rare);
- the DIP joint cannot be driven on its own: its flexion is `DIP_PIP_COUPLING` of the PIP's (Rijpkema & Girard,
  1991; Leijnse et al., 2010: about 2/3 over the range), plus a little noise;
- abduction (spread) fades as the MCP flexes: a fist's fingers are side by side;
- the thumb's CMC flexion, abduction and roll grow together with opposition.
Every angle is clamped to `FINGER_POSE_LIMITS_DEG` of the joint.
"""

import math

import torch

# The joint order of `finger_pose`: thumb CMC ("thumb MCP" in FreiHAND's names), thumb MCP, thumb IP, then MCP,
# PIP and DIP of the index, middle, ring and little fingers. Components: (flexion, abduction, twist), radians.
NUM_FINGER_JOINTS = 15

# name: (curls thumb..little, thumb opposition, spread). Curls are the mean flexion over each joint's largest.
GESTURES = {
    "open palm": ((0.05, 0.0, 0.0, 0.0, 0.0), 0.1, 0.6),
    "flat hand": ((0.05, 0.0, 0.0, 0.0, 0.0), 0.0, 0.05),
    "relaxed": ((0.2, 0.15, 0.25, 0.3, 0.38), 0.35, 0.25),
    "fist": ((0.55, 1.0, 1.0, 1.0, 1.0), 0.55, 0.0),
    "point": ((0.45, 0.0, 0.95, 1.0, 1.0), 0.6, 0.0),
    "victory": ((0.45, 0.0, 0.0, 0.95, 1.0), 0.75, 0.9),
    "three": ((0.45, 0.0, 0.0, 0.0, 0.95), 0.75, 0.5),
    "OK": ((0.45, 0.5, 0.1, 0.08, 0.05), 0.95, 0.4),
    "pinch": ((0.4, 0.45, 0.5, 0.6, 0.7), 0.9, 0.1),
    "thumbs up": ((0.0, 1.0, 1.0, 1.0, 1.0), 0.0, 0.0),
    "call me": ((0.0, 1.0, 1.0, 1.0, 0.0), 0.0, 1.0),
    "rock": ((0.45, 0.0, 1.0, 1.0, 0.0), 0.6, 0.6),
    "cylinder grasp": ((0.35, 0.55, 0.6, 0.65, 0.7), 0.7, 0.1),
    "sphere grasp": ((0.3, 0.35, 0.4, 0.45, 0.5), 0.85, 0.7),
    "tripod grasp": ((0.4, 0.45, 0.45, 0.75, 0.8), 0.9, 0.2),
}
# Probability of each gesture, then of a free pose (they sum to 1); open and relaxed hands and grasps are the most
# common.
GESTURE_WEIGHTS = {
    "open palm": 0.13,
    "flat hand": 0.05,
    "relaxed": 0.14,
    "fist": 0.07,
    "point": 0.06,
    "victory": 0.04,
    "three": 0.02,
    "OK": 0.04,
    "pinch": 0.07,
    "thumbs up": 0.04,
    "call me": 0.02,
    "rock": 0.02,
    "cylinder grasp": 0.09,
    "sphere grasp": 0.07,
    "tripod grasp": 0.04,
}
FREE_POSE_WEIGHT = 0.1

CURL_JITTER = 0.08  # standard deviation of each finger's curl around its gesture's
JOINT_JITTER = 0.07  # standard deviation of the MCP and PIP curls around the finger's
DIP_PIP_COUPLING = 2.0 / 3.0
DIP_NOISE_DEG = 5.0
# How far each finger fans out at spread 1, as a fraction of its abduction limit (thumb, index .. little); the
# middle finger stays nearly straight, index and ring move away from it, the little finger most.
SPREAD_DIRECTIONS = (0.0, 0.8, 0.1, -0.6, -1.0)
# The thumb's CMC at opposition 1: flexion, abduction and roll as fractions of their largest.
THUMB_OPPOSITION = (0.85, 0.7, 0.8)


def gesture_table() -> tuple[list[str], torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Names, curls (G, 5), oppositions (G,), spreads (G,) and probabilities (G + 1,) (the last: a free pose)."""
    names = list(GESTURES)
    curls = torch.tensor([GESTURES[name][0] for name in names])
    opposition = torch.tensor([GESTURES[name][1] for name in names])
    spread = torch.tensor([GESTURES[name][2] for name in names])
    weights = torch.tensor([GESTURE_WEIGHTS[name] for name in names] + [FREE_POSE_WEIGHT])
    return names, curls, opposition, spread, weights / weights.sum()


def sample_gestures(batch_size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gesture index per hand (B,) int64, `len(GESTURES)` for a free pose."""
    *_, weights = gesture_table()
    return torch.multinomial(weights, batch_size, replacement=True, generator=generator)


def sample_finger_pose(
    limits: torch.Tensor,
    batch_size: int,
    generator: torch.Generator | None = None,
    gestures: torch.Tensor | None = None,
) -> torch.Tensor:
    """Random finger articulations (B, 15, 3), radians, within `limits` (15, 3, 2) radians (min, max).

    `gestures` (B,) picks each hand's gesture (indices into `GESTURES`, `len(GESTURES)` for a free pose); drawn
    with `GESTURE_WEIGHTS` when None. See the module doc for the model.
    """
    normal = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    uniform = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    names, curls, oppositions, spreads, _ = gesture_table()
    gesture = sample_gestures(batch_size, generator) if gestures is None else torch.as_tensor(gestures)
    if gesture.shape != (batch_size,) or not ((gesture >= 0) & (gesture <= len(names))).all():
        raise ValueError(f"gestures must be {batch_size} indices in [0, {len(names)}], got {gesture.tolist()}")
    free = gesture == len(names)
    index = gesture.clamp(max=len(names) - 1)
    curl = torch.where(free[:, None], uniform(batch_size, 5), curls[index] + CURL_JITTER * normal(batch_size, 5))
    opposition = torch.where(free, uniform(batch_size), oppositions[index] + 0.1 * normal(batch_size))
    spread = torch.where(free, uniform(batch_size), spreads[index] + 0.15 * normal(batch_size))
    curl, opposition, spread = curl.clamp(-0.1, 1.05), opposition.clamp(0, 1), spread.clamp(0, 1)

    low, high = limits[..., 0].reshape(5, 3, 3), limits[..., 1].reshape(5, 3, 3)
    joint_curl = curl[:, :, None] + JOINT_JITTER * normal(batch_size, 5, 2)
    flexion = torch.empty(batch_size, 5, 3)
    flexion[:, :, :2] = joint_curl * torch.where(joint_curl > 0, high[None, :, :2, 0], -low[None, :, :2, 0])
    flexion[:, :, 2] = DIP_PIP_COUPLING * flexion[:, :, 1] + math.radians(DIP_NOISE_DEG) * normal(batch_size, 5)

    abduction = 0.25 * (low[..., 1] + (high[..., 1] - low[..., 1]) * uniform(batch_size, 5, 3))
    fan = spread[:, None] * torch.tensor(SPREAD_DIRECTIONS) * (1.0 - curl.clamp(0, 1))
    mcp_abduction = fan * torch.where(fan > 0, high[None, :, 0, 1], -low[None, :, 0, 1])
    abduction[:, 1:, 0] = mcp_abduction[:, 1:] + abduction[:, 1:, 0]
    twist = 0.5 * (low[..., 2] + (high[..., 2] - low[..., 2]) * uniform(batch_size, 5, 3))

    thumb = torch.tensor(THUMB_OPPOSITION) * opposition[:, None]
    flexion[:, 0, 0] = thumb[:, 0] * high[0, 0, 0] + math.radians(5.0) * normal(batch_size)
    abduction[:, 0, 0] = thumb[:, 1] * high[0, 0, 1] + math.radians(5.0) * normal(batch_size)
    twist[:, 0, 0] = thumb[:, 2] * high[0, 0, 2] + math.radians(3.0) * normal(batch_size)

    pose = torch.stack([flexion, abduction, twist], dim=-1).reshape(batch_size, NUM_FINGER_JOINTS, 3)
    return torch.minimum(torch.maximum(pose, limits[..., 0]), limits[..., 1])
