"""Everything random about one synthetic sample, drawn from its own generator: a function of
`(seed, split, index)` alone, with disjoint streams for the "train" and "test" splits.
"""

import numpy as np

from clip_hand3d.data.rendering import compute_vertex_normals
from clip_hand3d.data.synthetic.appearance import random_color, sample_background, sample_skin_colors
from clip_hand3d.data.synthetic.camera import sample_camera
from clip_hand3d.data.synthetic.forearm import sample_forearm
from clip_hand3d.data.synthetic.hand import hand_faces, hand_model, rest_hand_normals, sample_hand
from clip_hand3d.validation import check_choice, check_non_negative_int

# Disjoint random streams per split (`freihand_export.FREIHAND_SPLIT_STREAMS` maps FreiHAND's split names to them).
SPLIT_STREAMS = {"train": 0, "test": 1}


def check_split(split: str) -> None:
    """Raise unless `split` names one of `SPLIT_STREAMS`."""
    check_choice("split", split, sorted(SPLIT_STREAMS))


def sample_generator(seed: int, index: int, split: str = "train") -> np.random.Generator:
    """The random generator of sample `index` of `split`: a function of `(seed, split, index)` only."""
    check_split(split)
    check_non_negative_int("seed", seed)
    check_non_negative_int("index", index)
    return np.random.default_rng(np.random.SeedSequence([int(seed), SPLIT_STREAMS[split], int(index)]))


def sample_scene(rng: np.random.Generator, image_size: int = 224, p_left: float = 0.0) -> dict:
    """Everything random about one sample.

    Args:
        rng: the sample's generator (see `sample_generator`).
        image_size: side of the square image in pixels.
        p_left: probability that the sample is shown as a left hand (the rendered right hand, mirrored).

    Returns:
        A dict with `vertices_xyz` (778, 3) and `joints_xyz` (21, 3): the right hand in the camera frame,
        metres; `K` (3, 3) pixels; the mesh to render: `mesh_vertices` (the hand's 778 vertices first, then
        the forearm's), `mesh_faces`, `mask_faces` (True for the hand's faces), `vertex_colors` in [0, 1];
        `light_direction` (3,) (towards the light, camera frame), `ambient` and `diffuse` light intensities;
        `background` (S, S, 3) uint8; `grain` (S, S, 3) float32 sensor noise in 0-255 units; `is_left` bool.
    """
    vertices, joints, rotation = sample_hand(rng)
    K, translation = sample_camera(rng, np.concatenate([vertices, joints]), image_size)
    arm_vertices, arm_faces, arm_rest, sleeve = sample_forearm(rng, vertices, rotation, translation, K, image_size)

    hand_rest = hand_model().template_vertices.double().numpy()
    rest_vertices = np.concatenate([hand_rest, arm_rest])
    rest_normals = np.concatenate([rest_hand_normals(), compute_vertex_normals(arm_rest, arm_faces)])
    vertex_colors = sample_skin_colors(rng, rest_vertices, rest_normals)
    vertex_colors[len(hand_rest) :][sleeve] = random_color(rng)
    vertex_colors *= rng.uniform(0.93, 1.07, size=3)  # the light's tint
    light_direction = rng.normal(size=3) + np.array([0.0, -0.3, -1.2])
    faces = hand_faces()
    return {
        "vertices_xyz": vertices + translation,
        "joints_xyz": joints + translation,
        "K": K,
        "mesh_vertices": np.concatenate([vertices + translation, arm_vertices]),
        "mesh_faces": np.concatenate([faces, arm_faces + len(vertices)]),
        "mask_faces": np.arange(len(faces) + len(arm_faces)) < len(faces),
        "vertex_colors": vertex_colors,
        "light_direction": light_direction / np.linalg.norm(light_direction),
        "ambient": rng.uniform(0.25, 0.5),
        "diffuse": rng.uniform(0.4, 0.85),
        "background": sample_background(rng, image_size),
        "grain": (rng.normal(size=(image_size, image_size, 3)) * rng.uniform(0, 4)).astype(np.float32),
        "is_left": bool(rng.random() < p_left),
    }
