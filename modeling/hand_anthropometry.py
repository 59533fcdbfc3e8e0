"""Measured human hands: where the joint centres of an average adult hand lie, from published anthropometry.

The built-in hand's skeleton (`hand_surface`) is built from these numbers, and the synthetic data's realism
probe (`clip_hand3d.data.synthetic.realism`) compares rendered skeletons with `REFERENCE_BONE_RATIOS`.

Sources.
- Joint centres and segment lengths: B. Buchholz, T. J. Armstrong, S. A. Goldstein, "Anthropometric data for
  describing the kinematics of the human hand", Ergonomics 35(3):261-273, 1992. Joint centres are the centres of
  curvature of the head of the bone proximal to each joint (the centres annotators aim at: FreiHAND's MCP joints
  at the knuckle centres); segment lengths between joint centres and the axial location of the finger MCP and
  thumb CMC joints from the distal wrist crease are proportional to hand length, their radio-ulnar location from
  the axis of the third metacarpal to hand breadth. The coefficients are as reproduced by several public
  biomechanical hand models citing that paper (their numbers agree on the segment lengths and axial locations; for
  the radio-ulnar locations two sets circulate, and the one giving a knuckle pitch of about a quarter of the hand
  breadth, as real hands have, is used here).
- Hand length and breadth: T. M. Greiner, "Hand anthropometry of U.S. Army personnel", US Army Natick technical
  report NATICK/TR-92/011, 1991 (1003 men, 1304 women): men 194.1 +- 9.9 mm and 90.4 +- 4.2 mm, women 180.7 +- 9.8 mm and 79.5 +- 3.8 mm;
  `HAND_LENGTH` and `HAND_BREADTH` are the means of the two.
Conventions: the wrist joint is at the middle of the distal wrist crease (the origin of Buchholz's locations);
fingertips are the ends of the distal segments.
"""

import math

HAND_LENGTH = 0.1874  # metres, distal wrist crease to the tip of the middle finger
HAND_BREADTH = 0.0850  # metres, across the metacarpal heads

# Segment lengths between joint centres over hand length, per digit (thumb, index, middle, ring, little): for the
# thumb CMC-MCP, MCP-IP, IP-tip; for the fingers MCP-PIP, PIP-DIP, DIP-tip.
SEGMENT_LENGTH_COEFFICIENTS = (
    (0.251, 0.196, 0.158),
    (0.245, 0.143, 0.097),
    (0.266, 0.170, 0.108),
    (0.244, 0.165, 0.107),
    (0.204, 0.117, 0.093),
)
# Location of the thumb CMC and the finger MCP joints: (distance from the distal wrist crease along the hand over
# hand length, distance from the third metacarpal's axis towards the thumb over hand breadth).
JOINT_LOCATION_COEFFICIENTS = (
    (0.073, 0.196),
    (0.374, 0.251),
    (0.373, 0.0),
    (0.336, -0.206),
    (0.295, -0.402),
)


def segment_lengths() -> tuple[tuple[float, float, float], ...]:
    """Segment lengths (metres) of the average hand, per digit, as `SEGMENT_LENGTH_COEFFICIENTS`."""
    return tuple(tuple(HAND_LENGTH * value for value in digit) for digit in SEGMENT_LENGTH_COEFFICIENTS)


def base_joint_locations() -> tuple[tuple[float, float], ...]:
    """(distal, radial) metres of the thumb CMC and the four MCP joints from the wrist, average hand."""
    return tuple((HAND_LENGTH * along, HAND_BREADTH * across) for along, across in JOINT_LOCATION_COEFFICIENTS)


def _reference_bone_ratios() -> dict[str, float]:
    """Every bone of the realism probe over the wrist-to-middle-MCP length, for the average hand."""
    bases = base_joint_locations()
    names = ("thumb", "index", "middle", "ring", "little")
    denominator = math.hypot(*bases[2])
    thumb_names = ("thumb metacarpal", "thumb proximal", "thumb distal")
    ratios = {"wrist-thumb CMC": math.hypot(*bases[0]) / denominator}
    ratios.update(zip(thumb_names, (length / denominator for length in segment_lengths()[0]), strict=True))
    for digit in range(1, 5):
        name = names[digit]
        ratios[f"wrist-{name} MCP"] = math.hypot(*bases[digit]) / denominator
        for segment, length in zip(("proximal", "middle", "distal"), segment_lengths()[digit], strict=True):
            ratios[f"{name} {segment}"] = length / denominator
    for digit in range(1, 4):
        (along_a, across_a), (along_b, across_b) = bases[digit], bases[digit + 1]
        ratios[f"{names[digit]}-{names[digit + 1]} MCP"] = (
            math.hypot(along_a - along_b, across_a - across_b) / denominator
        )
    return ratios


REFERENCE_BONE_RATIOS = _reference_bone_ratios()
