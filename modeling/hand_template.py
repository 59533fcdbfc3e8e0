"""The built-in open hand template: a right hand generated in code, with skinning weights and shape directions.

This template is the package's own (it is not derived from MANO in any way): a palm solid with five finger tubes
joined into one closed, genus-0 triangle surface of exactly `NUM_VERTICES` = 778 vertices and `NUM_FACES` = 1552
faces, a 21-joint skeleton in FreiHAND's order, skinning weights for 16 bones and directions for 9 of the 10 shape
parameters. `HandTopology.builtin()` simplifies it into the mesh levels; `clip_hand3d.data.parametric_hand`
poses and shapes it for the synthetic data.

Rest frame: camera-like axes, metres, the wrist joint at the origin, fingers pointing up the image (-y), the palm
facing the camera (-z), the thumb towards +x. Sizes of the mean hand: wrist to middle fingertip 0.185 m, palm
width 0.077 m.

Construction of the surface (vertex order as listed):
- palm: `PALM_NUM_RINGS` rings of `PALM_RING_SIZE` vertices (rounded-rectangle cross-sections from the wrist up
  to the knuckles), minus the inside of a rectangular patch on the radial side where the thumb is attached;
- wrist cap: two smaller rings closing the palm at the wrist;
- thumb, index, middle, ring, little: rings of `FINGER_RING_SIZE` vertices along the bones (one ring exactly at
  each joint), a rounded fingertip and one tip vertex. The four fingers' first rings sit at their MCP joints
  and are joined to the palm's last ring by one strip; neighbouring first rings touch at one edge (the web).
  The thumb's first ring is the border of the palm patch, and the thumb joint "thumb MCP" (FreiHAND joint 1,
  anatomically the carpometacarpal joint) is that border's centroid.

Skinning: bone 0 is the wrist/palm (global rotation); bone `1 + 3 * finger + k` (finger in FreiHAND order
thumb, index, middle, ring, little; k = 0, 1, 2 for the MCP, PIP and DIP joints) rotates about joint
`1 + 4 * finger + k` and moves everything distal to it. Weights change smoothly along a finger across each
joint (a smoothstep over +-6 mm of arc length: the ring at a joint is shared half and half by the two bones);
the thumb patch's border is shared by the palm and the thumb's first bone. Each joint is the centroid of the
ring around it (or the tip vertex, which follows the distal bone rigidly), so `joint_regressor @ vertices`
equals the joints in every pose and shape.

Shape: the generator is linear in each size factor (`SHAPE_PARAM_NAMES` 1..9), so the shape directions, central
differences of generated hands, reproduce generated hands exactly; parameter 0, `scale`, multiplies the result
(applied by `ParametricHand`).
"""

import functools
import math
from dataclasses import dataclass

import numpy as np

from .hand_joints import NUM_JOINTS

NUM_VERTICES = 778
NUM_FACES = 1552
NUM_BONES = 16

PALM_RING_SIZE = 28
PALM_NUM_RINGS = 13
FINGER_RING_SIZE = 10
# Vertex counts of the two rings of the wrist cap, outer then inner.
WRIST_CAP_RING_SIZES = (18, 13)
# The palm patch replaced by the thumb: palm rings [first, last] and palm ring vertices [first, last].
THUMB_PATCH_RINGS = (2, 6)
THUMB_PATCH_COLUMNS = (10, 15)

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

# Mean-hand geometry, metres. Fingers in FreiHAND order without the thumb: index, middle, ring, little.
_MCP_POSITIONS = np.array([[0.027, -0.088, 0.0], [0.006, -0.092, 0.0], [-0.014, -0.088, 0.0], [-0.032, -0.080, 0.0]])
_FINGER_SPLAY_DEG = np.array([8.0, 1.0, -7.0, -16.0])  # angle of each finger from -y towards +x
_FINGER_BONE_LENGTHS = np.array(
    [[0.040, 0.024, 0.021], [0.044, 0.027, 0.022], [0.041, 0.026, 0.022], [0.032, 0.019, 0.019]]
)
# Tube radii at the MCP, PIP and DIP joints and of the fingertip's sphere.
_FINGER_RADII = np.array(
    [
        [0.0095, 0.0088, 0.0078, 0.0072],
        [0.0098, 0.0090, 0.0080, 0.0074],
        [0.0092, 0.0085, 0.0076, 0.0070],
        [0.0082, 0.0075, 0.0068, 0.0063],
    ]
)
_THUMB_BONE_DIRECTIONS = np.array([[0.70, -0.62, -0.35], [0.50, -0.82, -0.28], [0.38, -0.90, -0.22]])
_THUMB_BONE_LENGTHS = np.array([0.036, 0.031, 0.027])
# Thumb radii at FreiHAND joints 1, 2, 3 and of the fingertip sphere (joint 1 has no ring: it is the palm patch).
_THUMB_RADII = np.array([0.0125, 0.0108, 0.0098, 0.0088])
# Direction each finger pad faces in the rest pose: flexion curls a finger towards it.
_PAD_NORMALS = np.array([[-0.6, 0.0, -0.8]] + [[0.0, 0.0, -1.0]] * 4)

# Palm cross-sections from the wrist (u = 0) to the last ring (u = 1): half width, centre x, half thickness.
_PALM_LENGTH = 0.072
_PALM_PROFILE_U = np.array([0.0, 0.3, 0.6, 1.0])
_PALM_HALF_WIDTH = np.array([0.028, 0.034, 0.0375, 0.0385])
_PALM_CENTRE_X = np.array([0.0, 0.0, -0.001, -0.0019])
_PALM_HALF_THICKNESS = np.array([0.017, 0.016, 0.0145, 0.0125])
_PALM_SQUARENESS = 2.6  # superellipse exponent of the cross-sections (2 = ellipse)
# Wrist cap rings: scale of the wrist cross-section and distance beyond the wrist (+y).
_WRIST_CAP_SCALES = (0.62, 0.28)
_WRIST_CAP_OFFSETS = (0.004, 0.006)

_FINGERTIP_CAP_ANGLE = math.radians(50.0)  # polar angle of the last ring on the fingertip sphere
_BLEND_HALF_WIDTH = 0.006  # metres along a finger over which the weights of two bones blend


@dataclass(frozen=True)
class HandTemplate:
    """The generated hand as numpy arrays (read-only), all in the rest frame, metres.

    Attributes:
        vertices: (778, 3) mean-hand surface.
        faces: (1552, 3) int64, counter-clockwise seen from outside.
        joints: (21, 3) FreiHAND order.
        skinning_weights: (778, 16), rows sum to 1.
        joint_regressor: (21, 778), non-negative rows summing to 1, `joint_regressor @ vertices == joints`.
        vertex_shape_directions: (9, 778, 3) offsets per unit of shape parameters 1..9 (before the overall scale).
        joint_shape_directions: (9, 21, 3) the same for the joints.
        vertex_parts: (778,) int64: 0 palm and wrist, 1..5 thumb, index, middle, ring, little.
        fingertip_vertex_ids: (5,) int64 tip vertices, thumb to little.
        pad_normals: (5, 3) unit directions the finger pads face, used to build the joints' local frames.
    """

    vertices: np.ndarray
    faces: np.ndarray
    joints: np.ndarray
    skinning_weights: np.ndarray
    joint_regressor: np.ndarray
    vertex_shape_directions: np.ndarray
    joint_shape_directions: np.ndarray
    vertex_parts: np.ndarray
    fingertip_vertex_ids: np.ndarray
    pad_normals: np.ndarray


@dataclass(frozen=True)
class _HandSize:
    """Size factors of one generated hand (1 = mean hand)."""

    palm_width: float = 1.0
    palm_length: float = 1.0
    finger_lengths: tuple[float, ...] = (1.0, 1.0, 1.0, 1.0, 1.0)
    finger_thickness: float = 1.0
    palm_thickness: float = 1.0


@dataclass
class _Tube:
    """One finger's surface points and where they lie along the bones (arc length from the first joint, m)."""

    rings: np.ndarray  # (R, FINGER_RING_SIZE, 3)
    ring_arc_lengths: np.ndarray  # (R,)
    tip: np.ndarray  # (3,) the tip vertex, at the end of the distal bone
    joint_arc_lengths: np.ndarray  # (4,) the three movable joints and the tip


@dataclass
class _HandPoints:
    """All surface points and joints of one generated hand before they are flattened into vertices."""

    palm: np.ndarray  # (PALM_NUM_RINGS, PALM_RING_SIZE, 3)
    wrist_cap: list[np.ndarray]
    tubes: list[_Tube]  # thumb to little
    joints: np.ndarray  # (21, 3)


def _normalize(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _ring_angles(size: int) -> np.ndarray:
    """Angles of a ring's vertices: vertex 0 on the -lateral side, increasing counter-clockwise about the axis."""
    return np.pi + 2 * np.pi * np.arange(size) / size


def _superellipse(angles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit rounded-rectangle coordinates (lateral, thickness) at `angles`."""
    exponent = 2.0 / _PALM_SQUARENESS
    cosine, sine = np.cos(angles), np.sin(angles)
    return np.sign(cosine) * np.abs(cosine) ** exponent, np.sign(sine) * np.abs(sine) ** exponent


def _palm_section(u: np.ndarray, size: _HandSize) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half width, centre x and half thickness (metres) of the palm cross-sections at fractions `u`."""
    half_width = np.interp(u, _PALM_PROFILE_U, _PALM_HALF_WIDTH) * size.palm_width
    centre_x = np.interp(u, _PALM_PROFILE_U, _PALM_CENTRE_X) * size.palm_width
    half_thickness = np.interp(u, _PALM_PROFILE_U, _PALM_HALF_THICKNESS) * size.palm_thickness
    return half_width, centre_x, half_thickness


def _palm_points(size: _HandSize) -> np.ndarray:
    """(PALM_NUM_RINGS, PALM_RING_SIZE, 3) palm rings from the wrist (y = 0) towards the knuckles (-y)."""
    u = np.linspace(0.0, 1.0, PALM_NUM_RINGS)
    half_width, centre_x, half_thickness = _palm_section(u, size)
    lateral, thickness = _superellipse(_ring_angles(PALM_RING_SIZE))
    x = centre_x[:, None] + half_width[:, None] * lateral[None]
    y = np.broadcast_to(-_PALM_LENGTH * size.palm_length * u[:, None], x.shape)
    z = half_thickness[:, None] * thickness[None]
    return np.stack([x, y, z], axis=-1)


def _wrist_cap_points(size: _HandSize) -> list[np.ndarray]:
    """The wrist cap's rings, outer to inner: shrunken wrist cross-sections just beyond the wrist (+y)."""
    half_width, centre_x, half_thickness = _palm_section(np.zeros(1), size)
    rings = []
    for ring_size, scale, offset in zip(WRIST_CAP_RING_SIZES, _WRIST_CAP_SCALES, _WRIST_CAP_OFFSETS, strict=True):
        lateral, thickness = _superellipse(_ring_angles(ring_size))
        x = centre_x + scale * half_width * lateral
        z = scale * half_thickness * thickness
        rings.append(np.stack([x, np.full(ring_size, offset * size.palm_length), z], axis=-1))
    return rings


def _thumb_patch_border() -> list[tuple[int, int]]:
    """(palm ring, ring vertex) pairs around the thumb patch, counter-clockwise seen from outside."""
    (first_ring, last_ring), (first_column, last_column) = THUMB_PATCH_RINGS, THUMB_PATCH_COLUMNS
    border = [(first_ring, column) for column in range(first_column, last_column)]
    border += [(ring, last_column) for ring in range(first_ring, last_ring)]
    border += [(last_ring, column) for column in range(last_column, first_column, -1)]
    border += [(ring, first_column) for ring in range(last_ring, first_ring, -1)]
    return border


def _ring_frame(direction: np.ndarray, dorsal_reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit (lateral, dorsal) axes (..., 3) of rings around `direction` (..., 3), lateral x dorsal = direction."""
    dorsal = _normalize(dorsal_reference - (dorsal_reference * direction).sum(-1, keepdims=True) * direction)
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


def _tube(chain: np.ndarray, radii: np.ndarray, fractions: list[tuple[int, float]], pad_normal: np.ndarray) -> _Tube:
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
    joint_directions = _normalize(directions[bones] + directions[np.maximum(bones - 1, 0)])
    lateral, dorsal = _ring_frame(np.where(at_joint[:, None], joint_directions, directions[bones]), -pad_normal)
    angles = _ring_angles(FINGER_RING_SIZE)[None, :, None]
    offsets = np.cos(angles) * lateral[:, None] + np.sin(angles) * dorsal[:, None]
    rings = centres[:, None] + ring_radii[:, None, None] * offsets
    arc_lengths = joint_arc_lengths[bones] + along * bone_lengths[bones]
    return _Tube(rings, arc_lengths, chain[3].copy(), joint_arc_lengths)


def _finger_chain(finger: int, size: _HandSize) -> np.ndarray:
    """(4, 3) MCP, PIP, DIP and tip of finger 1..4 (index..little) in the rest pose."""
    splay = math.radians(_FINGER_SPLAY_DEG[finger - 1])
    direction = np.array([math.sin(splay), -math.cos(splay), 0.0])
    mcp = _MCP_POSITIONS[finger - 1] * np.array([size.palm_width, size.palm_length, 1.0])
    lengths = np.cumsum(_FINGER_BONE_LENGTHS[finger - 1]) * size.finger_lengths[finger]
    return np.concatenate([mcp[None], mcp + lengths[:, None] * direction])


def _thumb_chain(base: np.ndarray, size: _HandSize) -> np.ndarray:
    """(4, 3) thumb joints 1-3 and tip, starting at `base` (the thumb patch's centroid)."""
    steps = _normalize(_THUMB_BONE_DIRECTIONS) * (_THUMB_BONE_LENGTHS * size.finger_lengths[0])[:, None]
    return np.concatenate([base[None], base + np.cumsum(steps, axis=0)])


_FINGER_RING_FRACTIONS = [(0, 0.0), (0, 1 / 3), (0, 2 / 3), (1, 0.0), (1, 0.5), (2, 0.0)]
_THUMB_RING_FRACTIONS = [(0, 0.5), (1, 0.0), (1, 0.5), (2, 0.0), (2, 0.4)]


def _hand_points(size: _HandSize) -> _HandPoints:
    """Generate every surface point and joint of a hand of the given size."""
    palm = _palm_points(size)
    thumb_base = np.mean([palm[ring, column] for ring, column in _thumb_patch_border()], axis=0)
    chains = [_thumb_chain(thumb_base, size)] + [_finger_chain(finger, size) for finger in range(1, 5)]
    thickness = size.finger_thickness
    tubes = [_tube(chains[0], _THUMB_RADII * thickness, _THUMB_RING_FRACTIONS, _PAD_NORMALS[0])]
    for finger in range(1, 5):
        radii = _FINGER_RADII[finger - 1] * thickness
        tubes.append(_tube(chains[finger], radii, _FINGER_RING_FRACTIONS, _PAD_NORMALS[finger]))
    joints = np.concatenate([np.zeros((1, 3))] + chains)
    return _HandPoints(palm, _wrist_cap_points(size), tubes, joints)


def _flatten_points(points: _HandPoints) -> np.ndarray:
    """(778, 3) vertices: palm rings (without the thumb patch's inside), wrist cap, then the five fingers."""
    kept = _palm_vertex_mask()
    parts = [points.palm[kept]] + points.wrist_cap
    for tube in points.tubes:
        parts += [tube.rings.reshape(-1, 3), tube.tip[None]]
    return np.concatenate(parts)


def _palm_vertex_mask() -> np.ndarray:
    """(PALM_NUM_RINGS, PALM_RING_SIZE) True for palm grid points that are vertices (not inside the patch)."""
    (first_ring, last_ring), (first_column, last_column) = THUMB_PATCH_RINGS, THUMB_PATCH_COLUMNS
    mask = np.ones((PALM_NUM_RINGS, PALM_RING_SIZE), dtype=bool)
    mask[first_ring + 1 : last_ring, first_column + 1 : last_column] = False
    return mask


@dataclass
class _VertexIds:
    """Vertex ids of each building block, in the order of `_flatten_points`."""

    palm: np.ndarray  # (PALM_NUM_RINGS, PALM_RING_SIZE), -1 inside the thumb patch
    wrist_cap: list[np.ndarray]
    finger_rings: list[np.ndarray]  # (R, FINGER_RING_SIZE) per finger, thumb to little
    fingertips: np.ndarray  # (5,)


def _vertex_ids(points: _HandPoints) -> _VertexIds:
    kept = _palm_vertex_mask()
    palm = np.full(kept.shape, -1, dtype=np.int64)
    palm[kept] = np.arange(kept.sum())
    next_id = int(kept.sum())
    wrist_cap = []
    for ring in points.wrist_cap:
        wrist_cap.append(np.arange(next_id, next_id + len(ring)))
        next_id += len(ring)
    finger_rings, fingertips = [], []
    for tube in points.tubes:
        count = tube.rings.shape[0] * tube.rings.shape[1]
        finger_rings.append(np.arange(next_id, next_id + count).reshape(tube.rings.shape[:2]))
        fingertips.append(next_id + count)
        next_id += count + 1
    return _VertexIds(palm, wrist_cap, finger_rings, np.array(fingertips))


def _zip_loops(lower: np.ndarray, upper: np.ndarray, lower_param: np.ndarray, upper_param: np.ndarray) -> list:
    """Triangles joining two closed vertex loops into a band, outward facing.

    Both loops run counter-clockwise about the band's axis (from `lower` to `upper`); `*_param` in [0, 1) is
    each vertex's position around the loop, increasing, both loops starting near 0. The band advances along
    whichever loop's next vertex comes first, which gives len(lower) + len(upper) triangles.
    """
    lower_next = np.append(lower_param, 1.0 + lower_param[0])
    upper_next = np.append(upper_param, 1.0 + upper_param[0])
    count_lower, count_upper = len(lower), len(upper)
    triangles = []
    i = j = 0
    while i < count_lower or j < count_upper:
        if j == count_upper or (i < count_lower and lower_next[i + 1] <= upper_next[j + 1]):
            triangles.append((lower[i], lower[(i + 1) % count_lower], upper[j % count_upper]))
            i += 1
        else:
            triangles.append((lower[i % count_lower], upper[(j + 1) % count_upper], upper[j]))
            j += 1
    return triangles


def _zip_rings(lower: np.ndarray, upper: np.ndarray) -> list:
    """Band between two loops whose vertices are evenly spread from the same starting side."""
    return _zip_loops(lower, upper, np.arange(len(lower)) / len(lower), np.arange(len(upper)) / len(upper))


def _palm_faces(ids: _VertexIds) -> list:
    """Palm bands between consecutive rings, skipping the quads inside the thumb patch."""
    (first_ring, last_ring), (first_column, last_column) = THUMB_PATCH_RINGS, THUMB_PATCH_COLUMNS
    faces = []
    for ring in range(PALM_NUM_RINGS - 1):
        for column in range(PALM_RING_SIZE):
            inside_patch = first_ring <= ring < last_ring and first_column <= column < last_column
            if inside_patch:
                continue
            next_column = (column + 1) % PALM_RING_SIZE
            a, b = ids.palm[ring, column], ids.palm[ring, next_column]
            c, d = ids.palm[ring + 1, column], ids.palm[ring + 1, next_column]
            faces += [(a, b, c), (b, d, c)]
    return faces


def _wrist_cap_faces(ids: _VertexIds) -> list:
    """Bands from the innermost cap ring out to the wrist ring, and a zig-zag closing the innermost ring."""
    rings = ids.wrist_cap[::-1] + [ids.palm[0]]
    faces = []
    for lower, upper in zip(rings[:-1], rings[1:], strict=True):
        faces += _zip_rings(lower, upper)
    innermost = rings[0]
    left, right, advance_left = 0, len(innermost) - 1, True
    while right - left > 1:
        # (left, next, right) run counter-clockwise about the palm axis: reversed to face out of the wrist (+y).
        if advance_left:
            faces.append((innermost[left], innermost[right], innermost[left + 1]))
            left += 1
        else:
            faces.append((innermost[left], innermost[right], innermost[right - 1]))
            right -= 1
        advance_left = not advance_left
    return faces


def _knuckle_loop(ids: _VertexIds) -> np.ndarray:
    """The loop formed by the first rings of the index..little fingers, counter-clockwise about -y.

    It starts at the little finger's ulnar side, runs along the palmar halves to the index finger's radial side,
    then back along the dorsal halves; the web vertices between neighbouring fingers appear twice.
    """
    half = FINGER_RING_SIZE // 2
    first_rings = [ids.finger_rings[finger][0] for finger in range(1, 5)]
    palmar = np.concatenate([first_rings[finger][: half + 1] for finger in (3, 2, 1, 0)])
    dorsal = []
    for finger in range(4):
        dorsal += list(first_rings[finger][half + 1 :]) + [first_rings[finger][0]]
        if finger < 3:
            dorsal.append(first_rings[finger + 1][half])
    return np.concatenate([palmar, np.array(dorsal[:-1])])


def _lateral_loop_param(x: np.ndarray, turn_index: int) -> np.ndarray:
    """Position around a loop from its x coordinates: 0 -> 0.5 from the loop's start to `turn_index` (x rising),
    0.5 -> 1 back along the other half (x falling)."""
    x_start, x_turn = x[0], x[turn_index]
    param = 0.5 * (x - x_start) / (x_turn - x_start)
    param[turn_index + 1 :] = 1.0 - param[turn_index + 1 :]
    return param


def _knuckle_faces(ids: _VertexIds, vertices: np.ndarray) -> list:
    """Band from the palm's last ring to the knuckle loop."""
    last_ring = ids.palm[-1]
    loop = _knuckle_loop(ids)
    loop_turn = int(np.flatnonzero(loop == ids.finger_rings[1][0][FINGER_RING_SIZE // 2])[0])
    return _zip_loops(
        last_ring,
        loop,
        _lateral_loop_param(vertices[last_ring, 0], PALM_RING_SIZE // 2),
        _lateral_loop_param(vertices[loop, 0], loop_turn),
    )


def _thumb_base_faces(ids: _VertexIds, vertices: np.ndarray, thumb_axis: np.ndarray) -> list:
    """Band from the thumb patch's border to the thumb's first ring, matched by angle about the thumb axis."""
    border = np.array([ids.palm[ring, column] for ring, column in _thumb_patch_border()])
    first_ring = ids.finger_rings[0][0]
    centre = vertices[border].mean(axis=0)
    lateral, dorsal = _ring_frame(thumb_axis, -_PAD_NORMALS[0])

    def angles(vertex_ids: np.ndarray) -> np.ndarray:
        offsets = vertices[vertex_ids] - centre
        return np.arctan2(offsets @ dorsal, offsets @ lateral)

    start = angles(border[:1])[0]
    border_param = np.mod(angles(border) - start, 2 * np.pi) / (2 * np.pi)
    ring_param = np.mod(angles(first_ring) - start, 2 * np.pi) / (2 * np.pi)
    ring_start = int(np.argmin(ring_param))
    first_ring, ring_param = np.roll(first_ring, -ring_start), np.roll(ring_param, -ring_start)
    return _zip_loops(border, first_ring, border_param, ring_param)


def _finger_faces(ids: _VertexIds) -> list:
    """Bands between each finger's consecutive rings and a fan closing the fingertip."""
    faces = []
    for rings, tip in zip(ids.finger_rings, ids.fingertips, strict=True):
        for lower, upper in zip(rings[:-1], rings[1:], strict=True):
            faces += _zip_rings(lower, upper)
        last = rings[-1]
        faces += [(last[i], last[(i + 1) % len(last)], tip) for i in range(len(last))]
    return faces


def _smooth_step(values: np.ndarray) -> np.ndarray:
    clipped = np.clip(values, 0.0, 1.0)
    return clipped * clipped * (3.0 - 2.0 * clipped)


def _skinning_weights(ids: _VertexIds, points: _HandPoints) -> np.ndarray:
    """(778, 16): palm and wrist on bone 0; along each finger, bone weights change smoothly across each joint
    over +-_BLEND_HALF_WIDTH of arc length (a ring exactly at a joint gets half of each bone)."""
    weights = np.zeros((NUM_VERTICES, NUM_BONES))
    weights[:, 0] = 1.0
    for finger, tube in enumerate(points.tubes):
        # Arc length of every vertex of the finger: its ring's, then the tip's.
        arc_lengths = np.append(np.repeat(tube.ring_arc_lengths, FINGER_RING_SIZE), tube.joint_arc_lengths[3])
        # Fraction of each vertex beyond the MCP, PIP and DIP joints.
        beyond = [
            _smooth_step(0.5 + (arc_lengths - joint) / (2 * _BLEND_HALF_WIDTH)) for joint in tube.joint_arc_lengths[:3]
        ]
        beyond.append(np.zeros_like(arc_lengths))
        finger_weights = np.stack([1.0 - beyond[0]] + [beyond[k] - beyond[k + 1] for k in range(3)], axis=1)
        vertex_ids = np.append(ids.finger_rings[finger].ravel(), ids.fingertips[finger])
        weights[vertex_ids] = 0.0
        weights[np.ix_(vertex_ids, [0, 1 + 3 * finger, 2 + 3 * finger, 3 + 3 * finger])] = finger_weights
    border = np.array([ids.palm[ring, column] for ring, column in _thumb_patch_border()])
    weights[border, 0] = weights[border, 1] = 0.5  # the thumb's first ring, centred on thumb joint 1
    return weights


def _joint_regressor(ids: _VertexIds) -> np.ndarray:
    """(21, 778): each joint is the centroid of the ring around it (wrist: the palm's first ring; thumb joint 1:
    the thumb patch's border), each fingertip its tip vertex."""
    border = np.array([ids.palm[ring, column] for ring, column in _thumb_patch_border()])
    thumb_rings = ids.finger_rings[0]
    groups = [ids.palm[0], border, thumb_rings[1], thumb_rings[3], ids.fingertips[:1]]
    for finger in range(1, 5):
        rings = ids.finger_rings[finger]
        groups += [rings[0], rings[3], rings[5], ids.fingertips[finger : finger + 1]]
    regressor = np.zeros((NUM_JOINTS, NUM_VERTICES))
    for joint, group in enumerate(groups):
        regressor[joint, group] = 1.0 / len(group)
    return regressor


def _vertex_parts(ids: _VertexIds) -> np.ndarray:
    parts = np.zeros(NUM_VERTICES, dtype=np.int64)
    for finger, rings in enumerate(ids.finger_rings):
        parts[rings.ravel()] = finger + 1
        parts[ids.fingertips[finger]] = finger + 1
    return parts


def _faces(ids: _VertexIds, points: _HandPoints, vertices: np.ndarray) -> np.ndarray:
    thumb_axis = _normalize(points.joints[2] - points.joints[1])
    faces = _palm_faces(ids) + _wrist_cap_faces(ids) + _knuckle_faces(ids, vertices)
    faces += _thumb_base_faces(ids, vertices, thumb_axis) + _finger_faces(ids)
    return np.array(faces, dtype=np.int64)


def _shape_variants() -> list[tuple[_HandSize, _HandSize]]:
    """(size at parameter +1, size at parameter -1) for shape parameters 1..9."""
    variants = [
        (_HandSize(palm_width=1 + LENGTH_STD), _HandSize(palm_width=1 - LENGTH_STD)),
        (_HandSize(palm_length=1 + LENGTH_STD), _HandSize(palm_length=1 - LENGTH_STD)),
    ]
    for finger in range(5):
        longer, shorter = [1.0] * 5, [1.0] * 5
        longer[finger], shorter[finger] = 1 + LENGTH_STD, 1 - LENGTH_STD
        variants.append((_HandSize(finger_lengths=tuple(longer)), _HandSize(finger_lengths=tuple(shorter))))
    variants.append((_HandSize(finger_thickness=1 + THICKNESS_STD), _HandSize(finger_thickness=1 - THICKNESS_STD)))
    variants.append((_HandSize(palm_thickness=1 + THICKNESS_STD), _HandSize(palm_thickness=1 - THICKNESS_STD)))
    return variants


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=1)
def build_hand_template() -> HandTemplate:
    """Generate the built-in hand (deterministic, about 0.05 s, cached; the arrays are read-only)."""
    points = _hand_points(_HandSize())
    ids = _vertex_ids(points)
    vertices = _flatten_points(points)
    vertex_directions, joint_directions = [], []
    for larger, smaller in _shape_variants():
        points_larger, points_smaller = _hand_points(larger), _hand_points(smaller)
        vertex_directions.append((_flatten_points(points_larger) - _flatten_points(points_smaller)) / 2)
        joint_directions.append((points_larger.joints - points_smaller.joints) / 2)
    return HandTemplate(
        vertices=_read_only(vertices),
        faces=_read_only(_faces(ids, points, vertices)),
        joints=_read_only(points.joints),
        skinning_weights=_read_only(_skinning_weights(ids, points)),
        joint_regressor=_read_only(_joint_regressor(ids)),
        vertex_shape_directions=_read_only(np.stack(vertex_directions)),
        joint_shape_directions=_read_only(np.stack(joint_directions)),
        vertex_parts=_read_only(_vertex_parts(ids)),
        fingertip_vertex_ids=_read_only(ids.fingertips),
        pad_normals=_read_only(_normalize(_PAD_NORMALS)),
    )
