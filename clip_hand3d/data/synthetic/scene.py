"""Everything random about one synthetic sample, drawn from its own generator: a function of
`(seed, split, index)` alone, with disjoint streams for the "train" and "test" splits.
"""

import numpy as np

from clip_hand3d.data.rendering import compute_vertex_normals
from clip_hand3d.data.synthetic.appearance import (
    add_hand_details,
    ambient_occlusion,
    random_color,
    sample_background,
    sample_skin_colors,
)
from clip_hand3d.data.synthetic.camera import sample_camera
from clip_hand3d.data.synthetic.camera_effects import sample_camera_effects
from clip_hand3d.data.synthetic.forearm import sample_forearm
from clip_hand3d.data.synthetic.hand import hand_detail_weights, hand_faces, hand_model, rest_hand_normals, sample_hand
from clip_hand3d.geometry import project
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
        the forearm's), `mesh_faces`, their `mesh_normals`, `mask_faces` (True for the hand's faces), `vertex_colors` in [0, 1];
        `light_direction` (2, 3) (a key and a fill light, towards the lights, camera frame) with their `diffuse`
        intensities (2,), an RGB `ambient` tinted by the background (the environment's tone), the skin's `specular`
        sheen and its `shininess`; the colours hold nails, joint creases and `ambient_occlusion` (darker between
        fingers and where they curl over the palm); `background` (S, S, 3) uint8; `camera_effects`
        (`camera_effects.sample_camera_effects`: occluders, white balance, blur, grain, JPEG); `is_left` bool.
    """
    vertices, joints, rotation = sample_hand(rng)
    K, translation = sample_camera(rng, np.concatenate([vertices, joints]), image_size)
    return compose_scene(rng, vertices, joints, rotation, K, translation, image_size, p_left)


def compose_scene(
    rng: np.random.Generator,
    vertices: np.ndarray,
    joints: np.ndarray,
    rotation: np.ndarray,
    K: np.ndarray,
    translation: np.ndarray,
    image_size: int,
    p_left: float = 0.0,
) -> dict:
    """The scene of `sample_scene` around a given posed hand and camera: the forearm, colours, lights, background
    and camera effects drawn from `rng`.

    Args:
        vertices, joints: the posed right hand (778, 3) and (21, 3), metres, wrist at the origin.
        rotation: (3, 3) its global rotation (`hand.sample_hand`).
        K, translation: the camera (3, 3) pixels and the hand's translation (3,) metres (`camera.sample_camera`).
    """
    arm_vertices, arm_faces, arm_rest, sleeve = sample_forearm(rng, vertices, rotation, translation, K, image_size)

    hand_rest = hand_model().template_vertices.double().numpy()
    rest_vertices = np.concatenate([hand_rest, arm_rest])
    rest_normals = np.concatenate([rest_hand_normals(), compute_vertex_normals(arm_rest, arm_faces)])
    vertex_colors = sample_skin_colors(rng, rest_vertices, rest_normals)
    vertex_colors[: len(hand_rest)] = add_hand_details(rng, vertex_colors[: len(hand_rest)], *hand_detail_weights())
    vertex_colors[len(hand_rest) :][sleeve] = random_color(rng)
    vertex_colors *= rng.uniform(0.93, 1.07, size=3)  # the light's tint
    faces = hand_faces()
    mesh_vertices = np.concatenate([vertices + translation, arm_vertices])
    mesh_faces = np.concatenate([faces, arm_faces + len(vertices)])
    mesh_normals = compute_vertex_normals(mesh_vertices, mesh_faces)
    vertex_colors *= ambient_occlusion(mesh_vertices, mesh_normals)[:, None]
    key_light = rng.normal(size=3) + np.array([0.0, -0.3, -1.2])
    fill_light = rng.normal(size=3)
    background = sample_background(rng, image_size)
    environment_tone = background.reshape(-1, 3).mean(axis=0) / 255.0
    ambient = rng.uniform(0.25, 0.5) * (1.0 + rng.uniform(0.0, 0.4) * (environment_tone / environment_tone.mean() - 1))
    uv = project(joints + translation, K)
    return {
        "vertices_xyz": vertices + translation,
        "joints_xyz": joints + translation,
        "K": K,
        "mesh_vertices": mesh_vertices,
        "mesh_faces": mesh_faces,
        "mesh_normals": mesh_normals,
        "mask_faces": np.arange(len(faces) + len(arm_faces)) < len(faces),
        "vertex_colors": vertex_colors,
        "light_direction": np.stack([key_light / np.linalg.norm(key_light), fill_light / np.linalg.norm(fill_light)]),
        "ambient": np.clip(ambient, 0.0, 1.0),
        "diffuse": np.array([rng.uniform(0.4, 0.85), rng.uniform(0.0, 0.3)]),
        "specular": rng.uniform(0.0, 0.25),
        "shininess": rng.uniform(8.0, 30.0),
        "background": background,
        "camera_effects": sample_camera_effects(rng, image_size, np.concatenate([uv.min(axis=0), uv.max(axis=0)])),
        "is_left": bool(rng.random() < p_left),
    }
