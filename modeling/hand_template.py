"""The built-in open hand template: a right hand generated in code, with skinning weights and shape directions.

This template is the package's own (it is not derived from MANO in any way): a palm solid with five finger tubes
joined into one closed, genus-0 triangle surface of exactly `NUM_VERTICES` = 778 vertices and `NUM_FACES` = 1552
faces, a 21-joint skeleton in FreiHAND's order, skinning weights for 16 bones and directions for 9 of the 10 shape
parameters. `HandTopology.builtin()` simplifies it into the mesh levels; `clip_hand3d.data.parametric_hand`
poses and shapes it for the synthetic data.

Rest frame and surface points: `hand_surface` (sizes, palm, wrist cap and finger tubes, in metres). This file
joins those points into the triangle surface (vertex order of `hand_surface.flatten_points`): the four fingers'
first rings sit at the web, beyond their MCP joints (which lie inside the palm, at the knuckles), and are joined to
the palm's last ring by one strip; neighbouring first rings touch at one edge; the thumb's first ring is the border
of the palm patch.

Skinning: bone 0 is the wrist/palm (global rotation); bone `1 + 3 * finger + k` (finger in FreiHAND order
thumb, index, middle, ring, little; k = 0, 1, 2 for the MCP, PIP and DIP joints) rotates about joint
`1 + 4 * finger + k` and moves everything distal to it. Weights change smoothly along a finger across each
joint (a smoothstep over +-6 mm of arc length: the ring at a joint is shared half and half by the two bones);
the thumb patch's border is shared by the palm and the thumb's first bone. Each joint is the centroid of the
ring around it (or the tip vertex, which follows the distal bone rigidly; the finger MCP joints are extrapolated
from the finger's first two rings, see `_joint_regressor`), so `joint_regressor @ vertices` equals the joints in
every pose and shape.

Shape: the shape directions are central differences of hands generated at +-1 of each shape parameter 1..9
(`hand_surface.shape_variants`); parameter 0, `scale`, multiplies the result (applied by `ParametricHand`).
"""

import functools
from dataclasses import dataclass

import numpy as np

from .hand_joints import NUM_JOINTS
from .hand_surface import (
    FINGER_RING_FRACTIONS,
    FINGER_RING_SIZE,
    PAD_NORMALS,
    PALM_NUM_RINGS,
    PALM_RING_SIZE,
    THUMB_PATCH_COLUMNS,
    THUMB_PATCH_RINGS,
    HandPoints,
    HandSize,
    flatten_points,
    hand_points,
    normalize,
    palm_vertex_mask,
    ring_frame,
    shape_variants,
    thumb_patch_border,
)

NUM_VERTICES = 778
NUM_FACES = 1552
NUM_BONES = 16

_BLEND_HALF_WIDTH = 0.006  # metres along a finger over which the weights of two bones blend


@dataclass(frozen=True)
class HandTemplate:
    """The generated hand as numpy arrays (read-only), all in the rest frame, metres.

    Attributes:
        vertices: (778, 3) mean-hand surface.
        faces: (1552, 3) int64, counter-clockwise seen from outside.
        joints: (21, 3) FreiHAND order.
        skinning_weights: (778, 16), rows sum to 1.
        joint_regressor: (21, 778), rows summing to 1, `joint_regressor @ vertices == joints` in every pose; non-negative
            but for the four finger MCP joints (see `_joint_regressor`).
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


@dataclass
class _VertexIds:
    """Vertex ids of each building block, in the order of `flatten_points`."""

    palm: np.ndarray  # (PALM_NUM_RINGS, PALM_RING_SIZE), -1 inside the thumb patch
    wrist_cap: list[np.ndarray]
    finger_rings: list[np.ndarray]  # (R, FINGER_RING_SIZE) per finger, thumb to little
    fingertips: np.ndarray  # (5,)


def _vertex_ids(points: HandPoints) -> _VertexIds:
    kept = palm_vertex_mask()
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
    border = np.array([ids.palm[ring, column] for ring, column in thumb_patch_border()])
    first_ring = ids.finger_rings[0][0]
    centre = vertices[border].mean(axis=0)
    lateral, dorsal = ring_frame(thumb_axis, -PAD_NORMALS[0])

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


def _skinning_weights(ids: _VertexIds, points: HandPoints) -> np.ndarray:
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
    border = np.array([ids.palm[ring, column] for ring, column in thumb_patch_border()])
    weights[border, 0] = weights[border, 1] = 0.5  # the thumb's first ring, centred on thumb joint 1
    return weights


def _joint_regressor(ids: _VertexIds) -> np.ndarray:
    """(21, 778): each joint is the centroid of the ring around it (wrist: the palm's first ring; thumb joint 1:
    the thumb patch's border), each fingertip its tip vertex. The MCP joints of the index..little fingers lie
    inside the palm, behind the fingers' first rings (see `hand_surface.FINGER_RING_FRACTIONS`): each is the
    line through the centroids of its finger's first two rings, extended back to the joint. Both rings follow the
    proximal phalanx alone, so the extrapolation is exact in every pose (its weights are 1 + a and -a per ring)."""
    border = np.array([ids.palm[ring, column] for ring, column in thumb_patch_border()])
    thumb_rings = ids.finger_rings[0]
    regressor = np.zeros((NUM_JOINTS, NUM_VERTICES))
    for joint, group in enumerate([ids.palm[0], border, thumb_rings[1], thumb_rings[3], ids.fingertips[:1]]):
        regressor[joint, group] = 1.0 / len(group)
    (_, first), (_, second) = FINGER_RING_FRACTIONS[:2]
    behind = first / (second - first)
    for finger in range(1, 5):
        rings, joint = ids.finger_rings[finger], 1 + 4 * finger
        regressor[joint, rings[0]] = (1.0 + behind) / FINGER_RING_SIZE
        regressor[joint, rings[1]] = -behind / FINGER_RING_SIZE
        for offset, group in ((1, rings[3]), (2, rings[5]), (3, ids.fingertips[finger : finger + 1])):
            regressor[joint + offset, group] = 1.0 / len(group)
    return regressor


def _vertex_parts(ids: _VertexIds) -> np.ndarray:
    parts = np.zeros(NUM_VERTICES, dtype=np.int64)
    for finger, rings in enumerate(ids.finger_rings):
        parts[rings.ravel()] = finger + 1
        parts[ids.fingertips[finger]] = finger + 1
    return parts


def _faces(ids: _VertexIds, points: HandPoints, vertices: np.ndarray) -> np.ndarray:
    thumb_axis = normalize(points.joints[2] - points.joints[1])
    faces = _palm_faces(ids) + _wrist_cap_faces(ids) + _knuckle_faces(ids, vertices)
    faces += _thumb_base_faces(ids, vertices, thumb_axis) + _finger_faces(ids)
    return np.array(faces, dtype=np.int64)


def _read_only(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@functools.lru_cache(maxsize=1)
def build_hand_template() -> HandTemplate:
    """Generate the built-in hand (deterministic, about 0.05 s, cached; the arrays are read-only)."""
    points = hand_points(HandSize())
    ids = _vertex_ids(points)
    vertices = flatten_points(points)
    vertex_directions, joint_directions = [], []
    for larger, smaller in shape_variants():
        points_larger, points_smaller = hand_points(larger), hand_points(smaller)
        vertex_directions.append((flatten_points(points_larger) - flatten_points(points_smaller)) / 2)
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
        pad_normals=_read_only(normalize(PAD_NORMALS)),
    )
