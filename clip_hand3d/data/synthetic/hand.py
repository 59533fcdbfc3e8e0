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


def random_rotation(rng: np.random.Generator) -> Rotation:
    """A rotation drawn uniformly from SO(3): a normalised Gaussian quaternion."""
    return Rotation.from_quat(rng.normal(size=4))


def sample_hand(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A random right hand: pose, shape and a uniformly random orientation about the wrist; metres.

    Returns:
        vertices (778, 3), joints (21, 3) and the global rotation (3, 3) of the hand's rest frame; the wrist
        is at the origin.
    """
    hand = hand_model()
    generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
    rotation = random_rotation(rng)
    with torch.no_grad(), single_threaded_torch():
        finger_pose = hand.sample_pose(1, generator)
        shape = hand.sample_shape(1, generator)
        global_orient = torch.as_tensor(rotation.as_rotvec(), dtype=finger_pose.dtype)[None]
        vertices, joints = hand(global_orient, finger_pose, shape)
    return vertices[0].double().numpy(), joints[0].double().numpy(), rotation.as_matrix()
