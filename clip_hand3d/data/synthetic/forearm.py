"""The synthetic sample's forearm: a tube attached at the hand's wrist, bent a little, bare or in a sleeve, long
enough that its cut end is out of the image (metres).
"""

import numpy as np
from scipy.spatial.transform import Rotation

from clip_hand3d.data.synthetic.hand import wrist_ring_ids
from clip_hand3d.geometry import project

# Forearm cross-sections relative to the wrist's: distance from the wrist (m), width and thickness factors.
FOREARM_PROFILE = np.array([[0.0, 1.0, 1.0], [0.06, 1.18, 1.4], [0.3, 1.3, 1.6]])
FOREARM_LENGTH_RANGE = (0.25, 0.45)  # metres
FOREARM_EXTENSIONS = (0.6, 0.9, 1.2)  # metres: longer arms, tried in turn when the arm's end would show
FOREARM_END_RADIUS = 0.05  # metres: bounds the arm's (and sleeve's) radius at its end
# Arms pointing at the camera more steeply than this (z component of the arm's direction) are left out: they
# would come out of the camera and hide the hand behind their cut end.
MAX_ARM_TOWARDS_CAMERA = 0.5
FOREARM_BEND_DEGREES = (25.0, 15.0)  # largest wrist flexion and deviation between hand and forearm
SLEEVE_PROBABILITY = 0.5
SLEEVE_THICKNESS = 1.12  # sleeve cross-section over the arm's
MIN_DEPTH = 0.05  # metres: the forearm stays this far in front of the camera


def forearm_mesh(
    wrist_ring: np.ndarray, length: float, sleeve_start: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A forearm attached to the hand's wrist, in the hand's rest frame (metres, the arm along +y).

    Rings follow the wrist's cross-section (`wrist_ring`, (n, 3) at y = 0, in order around the ring), widened
    by `FOREARM_PROFILE`, from just inside the palm to `length`, closed by a fan at the far end. From
    `sleeve_start` (metres along the arm; inf for a bare arm) on, the rings are a sleeve, a little wider.

    Returns:
        vertices (M, 3), faces (K, 3) counter-clockwise seen from outside, sleeve (M,) bool.
    """
    stations = [-0.004] + list(length * np.array([0.1, 0.3, 0.55, 0.8, 1.0]))
    if sleeve_start < length:
        stations += [sleeve_start - 0.002, sleeve_start]
    stations = np.sort(stations)
    sleeve = stations >= sleeve_start
    thickness_factor = np.where(sleeve, SLEEVE_THICKNESS, 1.0)
    width = np.interp(stations, FOREARM_PROFILE[:, 0], FOREARM_PROFILE[:, 1]) * thickness_factor
    thickness = np.interp(stations, FOREARM_PROFILE[:, 0], FOREARM_PROFILE[:, 2]) * thickness_factor
    centre = wrist_ring.mean(axis=0)
    offsets = wrist_ring - centre
    rings = centre + offsets * np.stack([width, np.ones_like(width), thickness], axis=1)[:, None]
    rings[..., 1] = stations[:, None]
    num_rings, ring_size = rings.shape[:2]
    vertices = np.concatenate([rings.reshape(-1, 3), [[centre[0], length, centre[2]]]])

    ring_ids = np.arange(num_rings * ring_size).reshape(num_rings, ring_size)
    near, near_next = ring_ids[:-1], np.roll(ring_ids[:-1], -1, axis=1)
    far, far_next = ring_ids[1:], np.roll(ring_ids[1:], -1, axis=1)
    bands = np.concatenate([np.stack([near, far, near_next], -1), np.stack([near_next, far, far_next], -1)])
    cap = np.stack([ring_ids[-1], np.full(ring_size, len(vertices) - 1), np.roll(ring_ids[-1], -1)], axis=-1)
    faces = np.concatenate([bands.reshape(-1, 3), cap])
    # Orient outwards: the first band face's normal must point away from the arm's axis.
    a, b, c = vertices[faces[0]]
    if np.cross(b - a, c - a) @ (a - np.array([centre[0], a[1], centre[2]])) < 0:
        faces = faces[:, ::-1]
    return vertices, np.ascontiguousarray(faces), np.append(np.repeat(sleeve, ring_size), sleeve[-1])


def sample_forearm(
    rng: np.random.Generator,
    hand_vertices: np.ndarray,
    rotation: np.ndarray,
    translation: np.ndarray,
    K: np.ndarray,
    image_size: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A random forearm for a posed hand: bent at the wrist, with a sleeve half of the time, long enough that
    its cut end lies outside the image.

    The length is drawn from `FOREARM_LENGTH_RANGE` and, if the arm's end would show in the image, extended
    to the first of `FOREARM_EXTENSIONS` that takes it out (an arm and upper arm under a sleeve). Arms that
    point at the camera, that would come closer to it than `MIN_DEPTH`, or whose end stays in view (arms going
    away towards a vanishing point in the image) are left out.

    Args:
        rng: the sample's generator.
        hand_vertices: (778, 3) the posed hand before `translation` (wrist at the origin), metres.
        rotation: (3, 3) the hand's global rotation (`sample_hand`).
        translation: (3,) metres, the hand's placement in the camera frame (the wrist's position).
        K: (3, 3) intrinsics, pixels.
        image_size: side of the square image, pixels.

    Returns:
        vertices (M, 3) in the camera frame, faces (K, 3), rest-frame vertices (M, 3) and sleeve (M,) bool;
        all empty when the forearm is left out.
    """
    wrist_ring = hand_vertices[wrist_ring_ids()] @ rotation  # back to the rest frame (wrist bone is rigid)
    bend = Rotation.from_euler("xz", rng.uniform(-1, 1, size=2) * FOREARM_BEND_DEGREES, degrees=True).as_matrix()
    arm_to_camera = rotation @ bend
    axis = arm_to_camera[:, 1]  # unit direction of the arm in the camera frame
    sampled_length = rng.uniform(*FOREARM_LENGTH_RANGE)
    sleeve_start = rng.uniform(0.03, 0.15) if rng.random() < SLEEVE_PROBABILITY else np.inf
    if axis[2] >= -MAX_ARM_TOWARDS_CAMERA:
        for length in (sampled_length, *FOREARM_EXTENSIONS):
            end = translation + length * axis
            if end[2] - FOREARM_END_RADIUS < MIN_DEPTH:
                break
            end_uv = project(end[None], K)[0]
            end_radius = K[0, 0] * FOREARM_END_RADIUS / end[2]  # pixels
            if (end_uv < -end_radius).any() or (end_uv > image_size - 1 + end_radius).any():
                rest_vertices, faces, sleeve = forearm_mesh(wrist_ring, length, sleeve_start)
                return rest_vertices @ arm_to_camera.T + translation, faces, rest_vertices, sleeve
    return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64), np.zeros((0, 3)), np.zeros(0, dtype=bool)
