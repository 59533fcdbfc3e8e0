"""The built-in hand's surface points: the sizes of a generated hand and the points of its palm, wrist cap and
finger tubes along the skeleton, in the rest frame (metres). `hand_template` joins them into the triangle surface
and adds the skinning weights and the joint regressor.

Rest frame: camera-like axes, metres, the wrist joint at the origin, fingers pointing up the image (-y), the palm
facing the camera (-z), the thumb towards +x. The joint centres are those of an average adult hand
(`hand_anthropometry`: Buchholz et al. 1992); wrist to middle fingertip 0.172 m, palm width 0.078 m.

The points (vertex order as listed, see `flatten_points`):
- palm: `PALM_NUM_RINGS` rings of `PALM_RING_SIZE` vertices (rounded-rectangle cross-sections from the wrist up
  to the knuckles), minus the inside of a rectangular patch on the radial side where the thumb is attached;
- wrist cap: two smaller rings closing the palm at the wrist;
- thumb, index, middle, ring, little: rings of `FINGER_RING_SIZE` vertices along the bones (one ring exactly at
  each PIP and DIP joint; the index..little fingers start at the web, `WEB_FRACTION` along the proximal
  phalanx, their MCP joints inside the palm), a rounded fingertip and one tip vertex. The thumb joint "thumb MCP"
  (FreiHAND joint 1, anatomically the carpometacarpal joint) is the centroid of the palm patch's border.

Shape: the generator is linear in each size factor (`SHAPE_PARAM_NAMES` 1..9), so the shape directions, central
differences of generated hands (`shape_variants`), reproduce generated hands exactly; parameter 0, `scale`,
multiplies the result (applied by `ParametricHand`).
"""

import math
from dataclasses import dataclass

import numpy as np

from .hand_anthropometry import base_joint_locations, segment_lengths

PALM_RING_SIZE = 28
PALM_NUM_RINGS = 13
FINGER_RING_SIZE = 10
# Vertex counts of the two rings of the wrist cap, outer then inner.
WRIST_CAP_RING_SIZES = (18, 13)
# The palm patch replaced by the thumb: palm rings [first, last] and palm ring vertices [first, last].
THUMB_PATCH_RINGS = (1, 5)
THUMB_PATCH_COLUMNS = (7, 12)

# Shape parameters: all zero is the mean hand; one unit is about one standard deviation of adult hands.
SHAPE_PARAM_NAMES = (
    "scale",  # overall size: factor exp(0.06 * value) about the wrist
    "palm_width",  # palm and knuckle spacing across the hand (x): factor 1 + 0.05 * value
    "palm_length",  # wrist to knuckles (y): factor 1 + 0.05 * value
    "thumb_length",  # bone lengths of one finger: factor 1 + 0.05 * value
    "index_length",
    "middle_length",
    "ring_length",
    "little_length",
    "finger_thickness",  # radii of the five finger tubes: factor 1 + 0.08 * value
    "palm_thickness",  # palm thickness (z): factor 1 + 0.08 * value
)
NUM_SHAPE_PARAMS = len(SHAPE_PARAM_NAMES)
LENGTH_STD = 0.05
THICKNESS_STD = 0.08

# Mean-hand geometry, metres: joint centres from `hand_anthropometry` (Buchholz et al. 1992 for an average adult
# hand), the radial direction (towards the thumb) being +x and the distal one -y. Fingers in FreiHAND order without
# the thumb: index, middle, ring, little.
_MCP_POSITIONS = np.array([[radial, -distal, 0.0] for distal, radial in base_joint_locations()[1:]])
_FINGER_SPLAY_DEG = np.array([8.0, 1.0, -7.0, -16.0])  # angle of each finger from -y towards +x
_FINGER_BONE_LENGTHS = np.array(segment_lengths()[1:])
# Tube radii at the MCP, PIP and DIP joints and of the fingertip's sphere (times `_FINGER_RADIUS_FACTOR`: adult
# fingers are about 20 mm wide at the PIP joint, 16 mm at the DIP).
_FINGER_RADIUS_FACTOR = 1.12
_FINGER_RADII = _FINGER_RADIUS_FACTOR * np.array(
    [
        [0.0095, 0.0088, 0.0078, 0.0072],
        [0.0098, 0.0090, 0.0080, 0.0074],
        [0.0092, 0.0085, 0.0076, 0.0070],
        [0.0082, 0.0075, 0.0068, 0.0063],
    ]
)
_THUMB_BONE_DIRECTIONS = np.array([[0.70, -0.62, -0.35], [0.50, -0.82, -0.28], [0.38, -0.90, -0.22]])
_THUMB_BONE_LENGTHS = np.array(segment_lengths()[0])
# Thumb radii at FreiHAND joints 1, 2, 3 and of the fingertip sphere (joint 1 has no ring: it is the palm patch).
_THUMB_RADII = _FINGER_RADIUS_FACTOR * np.array([0.0125, 0.0108, 0.0098, 0.0088])
# Direction each finger pad faces in the rest pose: flexion curls a finger towards it.
PAD_NORMALS = np.array([[-0.6, 0.0, -0.8]] + [[0.0, 0.0, -1.0]] * 4)

# Palm cross-sections from the wrist (u = 0) to the last ring (u = 1): half width, centre x, half thickness.
_PALM_LENGTH = 0.058
_PALM_PROFILE_U = np.array([0.0, 0.3, 0.6, 1.0])
_PALM_HALF_WIDTH = np.array([0.028, 0.034, 0.0375, 0.0385])
_PALM_CENTRE_X = np.array([0.0, -0.001, -0.004, -0.0065])
_PALM_HALF_THICKNESS = np.array([0.017, 0.016, 0.0145, 0.0125])
_PALM_SQUARENESS = 2.6  # superellipse exponent of the cross-sections (2 = ellipse)
# Wrist cap rings: scale of the wrist cross-section and distance beyond the wrist (+y).
_WRIST_CAP_SCALES = (0.62, 0.28)
_WRIST_CAP_OFFSETS = (0.004, 0.006)

_FINGERTIP_CAP_ANGLE = math.radians(50.0)  # polar angle of the last ring on the fingertip sphere


@dataclass(frozen=True)
class HandSize:
    """Size factors of one generated hand (1 = mean hand)."""

    palm_width: float = 1.0
    palm_length: float = 1.0
    finger_lengths: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    finger_thickness: float = 1.0
    palm_thickness: float = 1.0


@dataclass
class Tube:
    """One finger's surface points and where they lie along the bones (arc length from the first joint, m)."""

    rings: np.ndarray  # (R, FINGER_RING_SIZE, 3)
    ring_arc_lengths: np.ndarray  # (R,)
    tip: np.ndarray  # (3,) the tip vertex, at the end of the distal bone
    joint_arc_lengths: np.ndarray  # (4,) the three movable joints and the tip


@dataclass
class HandPoints:
    """All surface points and joints of one generated hand before they are flattened into vertices."""

    palm: np.ndarray  # (PALM_NUM_RINGS, PALM_RING_SIZE, 3)
    wrist_cap: list[np.ndarray]
    tubes: list[Tube]  # thumb to little
    joints: np.ndarray  # (21, 3)


def normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _ring_angles(size: int) -> np.ndarray:
    """Angles of a ring's vertices: vertex 0 on the -lateral side, increasing counter-clockwise about the axis."""
    return np.pi + 2 * np.pi * np.arange(size) / size


def _superellipse(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rounded-rectangle coordinates (lateral, thickness) at `angles`."""
    exponent = 2.0 / _PALM_SQUARENESS
    cosine, sine = np.cos(angles), np.sin(angles)
    return np.sign(cosine) * np.abs(cosine) ** exponent, np.sign(sine) * np.abs(sine) ** exponent


def _palm_section(u: np.ndarray, size: HandSize) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half width, centre x and half thickness (metres) of the palm cross-sections at fractions `u`."""
    half_width = np.interp(u, _PALM_PROFILE_U, _PALM_HALF_WIDTH) * size.palm_width
    centre_x = np.interp(u, _PALM_PROFILE_U, _PALM_CENTRE_X) * size.palm_width
    half_thickness = np.interp(u, _PALM_PROFILE_U, _PALM_HALF_THICKNESS) * size.palm_thickness
    return half_width, centre_x, half_thickness


def _palm_points(size: HandSize) -> np.ndarray:
    """(PALM_NUM_RINGS, PALM_RING_SIZE, 3) palm rings from the wrist (y = 0) towards the knuckles (-y)."""
    u = np.linspace(0.0, 1.0, PALM_NUM_RINGS)
    half_width, centre_x, half_thickness = _palm_section(u, size)
    lateral, thickness = _superellipse(_ring_angles(PALM_RING_SIZE))
    x = centre_x[:, None] + half_width[:, None] * lateral[None]
    y = np.broadcast_to(-_PALM_LENGTH * size.palm_length * u[:, None], x.shape)
    z = half_thickness[:, None] * thickness[None]
    return np.stack([x, y, z], axis=-1)


def _wrist_cap_points(size: HandSize) -> list[np.ndarray]:
    """The wrist cap's rings, outer to inner: shrunken wrist cross-sections just beyond the wrist (+y)."""
    half_width, centre_x, half_thickness = _palm_section(np.zeros(1), size)
    rings = []
    for ring_size, scale, offset in zip(WRIST_CAP_RING_SIZES, _WRIST_CAP_SCALES, _WRIST_CAP_OFFSETS, strict=True):
        lateral, thickness = _superellipse(_ring_angles(ring_size))
        x = centre_x + scale * half_width * lateral
        z = scale * half_thickness * thickness
        rings.append(np.stack([x, np.full(ring_size, offset * size.palm_length), z], axis=-1))
    return rings


def thumb_patch_border() -> list[tuple[int, int]]:
    """(palm ring, ring vertex) pairs around the thumb patch, counter-clockwise seen from outside."""
    (first_ring, last_ring), (first_column, last_column) = THUMB_PATCH_RINGS, THUMB_PATCH_COLUMNS
    border = [(first_ring, column) for column in range(first_column, last_column)]
    border += [(ring, last_column) for ring in range(first_ring, last_ring)]
    border += [(last_ring, column) for column in range(last_column, first_column, -1)]
    border += [(ring, first_column) for ring in range(last_ring, first_ring, -1)]
    return border


def ring_frame(direction: np.ndarray, dorsal_reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit (lateral, dorsal) axes (..., 3) of rings around `direction` (..., 3), lateral x dorsal = direction."""
    dorsal = normalize(dorsal_reference - (dorsal_reference * direction).sum(-1, keepdims=True) * direction)
    return np.cross(dorsal, direction), dorsal


def _tube_stations(
    bone_lengths: np.ndarray, radii: np.ndarray, fractions: list[tuple[int, float]]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bone (R,), fraction along that bone (R,) and radius (R,) of each ring: the (bone, fraction) places, then
    two rings rounding the fingertip (a sphere ending at the tip).

    `radii` holds the radius at the three joints and of the fingertip sphere; radii along a bone are linear
    (the distal bone tapers to the sphere's radius).
    """
    bones = [bone for bone, _ in fractions] + [2, 2]
    along = [fraction for _, fraction in fractions]
    station_radii = [radii[bone] + fraction * (radii[bone + 1] - radii[bone]) for bone, fraction in fractions]
    tip_radius, distal_length = radii[3], bone_lengths[2]
    cap_height = tip_radius * (1.0 - math.cos(_FINGERTIP_CAP_ANGLE))
    along += [1.0 - tip_radius / distal_length, 1.0 - cap_height / distal_length]
    station_radii += [tip_radius, tip_radius * math.sin(_FINGERTIP_CAP_ANGLE)]
    return np.array(bones), np.array(along), np.array(station_radii)


def _tube(chain: np.ndarray, radii: np.ndarray, fractions: list[tuple[int, float]], pad_normal: np.ndarray) -> Tube:
    """Rings of FINGER_RING_SIZE vertices along the bone chain (4, 3) (three movable joints and the tip).

    A ring lies across its bone; a ring at a joint lies across the mean direction of the bones meeting there.
    """
    bone_vectors = np.diff(chain, axis=0)
    bone_lengths = np.linalg.norm(bone_vectors, axis=1)
    directions = bone_vectors / bone_lengths[:, None]
    joint_arc_lengths = np.concatenate([[0.0], np.cumsum(bone_lengths)])
    bones, along, ring_radii = _tube_stations(bone_lengths, radii, fractions)
    centres = chain[bones] + along[:, None] * bone_vectors[bones]
    at_joint = (along == 0.0) & (bones > 0)
    joint_directions = normalize(directions[bones] + directions[np.maximum(bones - 1, 0)])
    lateral, dorsal = ring_frame(np.where(at_joint[:, None], joint_directions, directions[bones]), -pad_normal)
    angles = _ring_angles(FINGER_RING_SIZE)[None, :, None]
    offsets = np.cos(angles) * lateral[:, None] + np.sin(angles) * dorsal[:, None]
    rings = centres[:, None] + ring_radii[:, None, None] * offsets
    arc_lengths = joint_arc_lengths[bones] + along * bone_lengths[bones]
    return Tube(rings, arc_lengths, chain[3].copy(), joint_arc_lengths)


def _finger_chain(finger: int, size: HandSize) -> np.ndarray:
    """(4, 3) MCP, PIP, DIP and tip of finger 1..4 (index..little) in the rest pose."""
    splay = math.radians(_FINGER_SPLAY_DEG[finger - 1])
    direction = np.array([math.sin(splay), -math.cos(splay), 0.0])
    mcp = _MCP_POSITIONS[finger - 1] * np.array([size.palm_width, size.palm_length, 1.0])
    lengths = np.cumsum(_FINGER_BONE_LENGTHS[finger - 1]) * size.finger_lengths[finger]
    return np.concatenate([mcp[None], mcp + lengths[:, None] * direction])


def _thumb_chain(base: np.ndarray, size: HandSize) -> np.ndarray:
    """(4, 3) thumb joints 1-3 and tip, starting at `base` (the thumb patch's centroid)."""
    steps = normalize(_THUMB_BONE_DIRECTIONS) * (_THUMB_BONE_LENGTHS * size.finger_lengths[0])[:, None]
    return np.concatenate([base[None], base + np.cumsum(steps, axis=0)])


# Rings along the index..little fingers as (bone, fraction along it). The MCP joint centres lie inside the palm
# (the knuckles), so a finger's skin starts at the web, `WEB_FRACTION` along its proximal phalanx: real palms reach
# a third of the way up the proximal phalanges (the web spaces), which is what makes a hand look like a hand.
WEB_FRACTION = 0.3
FINGER_RING_FRACTIONS = [(0, WEB_FRACTION), (0, 0.55), (0, 0.8), (1, 0.0), (1, 0.5), (2, 0.0)]
_THUMB_RING_FRACTIONS = [(0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0), (2, 0.4)]


def hand_points(size: HandSize) -> HandPoints:
    """Generate every surface point and joint of a hand of the given size."""
    palm = _palm_points(size)
    thumb_base = np.mean([palm[ring, column] for ring, column in thumb_patch_border()], axis=0)
    chains = [_thumb_chain(thumb_base, size)] + [_finger_chain(finger, size) for finger in range(1, 5)]
    thickness = size.finger_thickness
    tubes = [_tube(chains[0], _THUMB_RADII * thickness, _THUMB_RING_FRACTIONS, PAD_NORMALS[0])]
    for finger in range(1, 5):
        radii = _FINGER_RADII[finger - 1] * thickness
        tubes.append(_tube(chains[finger], radii, FINGER_RING_FRACTIONS, PAD_NORMALS[finger]))
    joints = np.concatenate([np.zeros((1, 3))] + chains)
    return HandPoints(palm, _wrist_cap_points(size), tubes, joints)


def flatten_points(points: HandPoints) -> np.ndarray:
    """(778, 3) vertices: palm rings (without the thumb patch's inside), wrist cap, then the five fingers."""
    kept = palm_vertex_mask()
    parts = [points.palm[kept]] + points.wrist_cap
    for tube in points.tubes:
        parts += [tube.rings.reshape(-1, 3), tube.tip[None]]
    return np.concatenate(parts)


def palm_vertex_mask() -> np.ndarray:
    """(PALM_NUM_RINGS, PALM_RING_SIZE) True for palm grid points that are vertices (not inside the patch)."""
    (first_ring, last_ring), (first_column, last_column) = THUMB_PATCH_RINGS, THUMB_PATCH_COLUMNS
    mask = np.ones((PALM_NUM_RINGS, PALM_RING_SIZE), dtype=bool)
    mask[first_ring + 1 : last_ring, first_column + 1 : last_column] = False
    return mask


def shape_variants() -> list[tuple[HandSize, HandSize]]:
    """(size at parameter +1, size at parameter -1) for shape parameters 1..9."""
    variants = [
        (HandSize(palm_width=1 + LENGTH_STD), HandSize(palm_width=1 - LENGTH_STD)),
        (HandSize(palm_length=1 + LENGTH_STD), HandSize(palm_length=1 - LENGTH_STD)),
    ]
    for finger in range(5):
        longer, shorter = [1.0] * 5, [1.0] * 5
        longer[finger], shorter[finger] = 1 + LENGTH_STD, 1 - LENGTH_STD
        variants.append((HandSize(finger_lengths=tuple(longer)), HandSize(finger_lengths=tuple(shorter))))
    variants.append((HandSize(finger_thickness=1 + THICKNESS_STD), HandSize(finger_thickness=1 - THICKNESS_STD)))
    variants.append((HandSize(palm_thickness=1 + THICKNESS_STD), HandSize(palm_thickness=1 - THICKNESS_STD)))
    return variants
