"""The synthetic sample's right hand: the parametric hand built once per process, and a random pose, shape and
orientation of it (metres, the wrist at the origin).
"""

import contextlib
import functools
from collections.abc import Iterator

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from clip_hand3d.data.parametric_hand import ParametricHand
from clip_hand3d.data.rendering import compute_vertex_normals
from clip_hand3d.data.synthetic.appearance import NAIL_LENGTH


@functools.cache
def hand_model() -> ParametricHand:
    """The parametric hand, built once per process."""
    return ParametricHand().eval()


@functools.cache
def hand_faces() -> np.ndarray:
    """The parametric hand's faces (1552, 3) int64, counter-clockwise seen from outside."""
    return hand_model().faces.numpy()


@functools.cache
def rest_hand_normals() -> np.ndarray:
    """Unit vertex normals (778, 3) of the mean hand in its rest frame (palm towards -z)."""
    hand = hand_model()
    return compute_vertex_normals(hand.template_vertices.double().numpy(), hand_faces())


@functools.cache
def wrist_ring_ids() -> np.ndarray:
    """Vertex ids of the ring around the wrist joint (the vertices the joint regressor averages for joint 0),
    in order around the ring."""
    return np.flatnonzero(hand_model().joint_regressor[0].numpy() > 0)


@contextlib.contextmanager
def single_threaded_torch() -> Iterator[None]:
    """Run torch on one thread inside the block: one small hand per call gains nothing from intra-op threads
    (which cost tens of milliseconds on a busy machine), and data workers run in parallel processes."""
    num_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(num_threads)


@functools.cache
def hand_detail_weights() -> tuple[np.ndarray, np.ndarray]:
    """Per-vertex weights (778,) in [0, 1] of the mean hand's nails and joint creases (for
    `appearance.add_hand_details`): nails on the back of each distal segment within `NAIL_LENGTH` of the tip;
    creases where two finger bones share a vertex (the rings at the PIP, DIP and thumb joints)."""
    hand = hand_model()
    vertices = hand.template_vertices.double().numpy()
    weights = hand.skinning_weights.double().numpy()
    normals = rest_hand_normals()
    nail = np.zeros(len(vertices))
    crease = np.zeros(len(vertices))
    for finger in range(5):
        tip = vertices[hand.joint_regressor[4 + 4 * finger].numpy().argmax()]
        distal = weights[:, 3 + 3 * finger] > 0.99
        dorsal = normals @ -hand.pad_normals[finger].double().numpy()
        near_tip = np.linalg.norm(vertices - tip, axis=1) < NAIL_LENGTH
        nail[distal & near_tip] = np.clip((dorsal[distal & near_tip] - 0.2) / 0.5, 0.0, 1.0)
        finger_bones = weights[:, 1 + 3 * finger : 4 + 3 * finger]
        shared = np.sort(finger_bones, axis=1)[:, -2]  # the second-largest weight: 0.5 on a joint's ring
        crease = np.maximum(crease, np.clip(2.0 * shared, 0.0, 1.0))
    return nail, crease


def random_rotation(rng: np.random.Generator) -> Rotation:
    """A rotation drawn uniformly from SO(3): a normalised Gaussian quaternion."""
    return Rotation.from_quat(rng.normal(size=4))


# How hands face the camera in photos and videos, with their probabilities (`sample_view`): (name, yaw of the
# rest hand about its long axis in degrees, the view's jitter in degrees). At yaw 0 the palm faces the camera, at
# 180 the back; 90 and -90 show the thumb side and the little-finger side.
VIEWS = (
    ("palm", 0.0, 35.0),
    ("back", 180.0, 35.0),
    ("thumb side", 90.0, 30.0),
    ("little-finger side", -90.0, 30.0),
)
VIEW_WEIGHTS = (0.3, 0.35, 0.2, 0.15)
EGOCENTRIC_PROBABILITY = 0.2  # the back of the hand seen from its owner's eyes, fingers pointing away
UNIFORM_ORIENTATION_PROBABILITY = 0.15  # any orientation at all
ROLL_STD_DEG = 50.0  # in-plane angle of the fingers from "up" in third-person views
PITCH_STD_DEG = 25.0  # fingers tilting towards (or away from) the camera


def sample_view(rng: np.random.Generator) -> Rotation:
    """The hand's global orientation (rest frame to camera frame) as hands appear in pictures.

    Third-person views (`VIEWS`): the palm, the back or a side towards the camera, fingers mostly up the image
    (in-plane roll ~ N(0, 50 degrees), sometimes sideways or down) and tilted a little towards or away from the
    camera. Egocentric views (`EGOCENTRIC_PROBABILITY`): the back of the hand, fingers pointing up and away
    into the scene (30-75 degrees), as a head-mounted camera sees its wearer's hands. With
    `UNIFORM_ORIENTATION_PROBABILITY`, any orientation (uniform on SO(3)).
    """
    kind = rng.random()
    if kind < UNIFORM_ORIENTATION_PROBABILITY:
        return random_rotation(rng)
    if kind < UNIFORM_ORIENTATION_PROBABILITY + EGOCENTRIC_PROBABILITY:
        yaw, pitch, roll = 180.0 + rng.normal(0, 20), -rng.uniform(30, 75), rng.normal(0, 25)
    else:
        _, view_yaw, jitter = VIEWS[rng.choice(len(VIEWS), p=VIEW_WEIGHTS)]
        yaw, pitch, roll = view_yaw + rng.normal(0, jitter), rng.normal(0, PITCH_STD_DEG), rng.normal(0, ROLL_STD_DEG)
    # Applied to the rest hand (fingers along -y, palm towards -z): yaw about y, then pitch about x (negative:
    # fingertips away from the camera), then roll about the camera's axis.
    return Rotation.from_euler("ZXY", [roll, pitch, yaw], degrees=True)


def sample_hand(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random right hand: pose, shape and an orientation about the wrist (`sample_view`); metres.

    Returns:
        vertices (778, 3), joints (21, 3) and the global rotation (3, 3) of the hand's rest frame; the wrist
        is at the origin.
    """
    hand = hand_model()
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rotation = sample_view(rng)
    with torch.no_grad(), single_threaded_torch():
        finger_pose = hand.sample_pose(1, generator)
        shape = hand.sample_shape(1, generator)
        global_orient = torch.as_tensor(rotation.as_rotvec(), dtype=finger_pose.dtype)[None]
        vertices, joints = hand(global_orient, finger_pose, shape)
    return vertices[0].double().numpy(), joints[0].double().numpy(), rotation.as_matrix()
