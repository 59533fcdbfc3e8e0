"""Rendering a synthetic scene into a row of `HAND_FEATURES_WITH_MESH`, mirrored into a left hand when drawn so."""

import numpy as np
import PIL.Image

from clip_hand3d.data.features import make_hand_row
from clip_hand3d.data.rendering import render_mesh
from clip_hand3d.data.synthetic.camera_effects import apply_camera_effects, apply_occluders
from clip_hand3d.data.synthetic.scene import sample_generator, sample_scene
from clip_hand3d.geometry import camera_after_affine
from clip_hand3d.validation import check_probability

SUPERSAMPLE = 2
# The smallest image side the synthetic scenes are drawn for, pixels.
MIN_IMAGE_SIZE = 16


def check_synthetic_image_size(image_size: int) -> None:
    """Raise unless `image_size` (pixels) is an integer of at least `MIN_IMAGE_SIZE`."""
    if not (isinstance(image_size, (int, np.integer)) and image_size >= MIN_IMAGE_SIZE):
        raise ValueError(f"image_size must be an integer of at least {MIN_IMAGE_SIZE} pixels, got {image_size!r}")


def render_scene(scene: dict, image_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Render a `sample_scene` (right hand, before any mirroring): rgb (S, S, 3) uint8 as the camera records it
    and the hand's visible mask (S, S) bool (the forearm and the occluders hide it but are not part of it)."""
    rgb, mask, _ = render_mesh(
        scene["mesh_vertices"],
        scene["mesh_faces"],
        scene["K"],
        (image_size, image_size),
        vertex_colors=scene["vertex_colors"],
        light_direction=scene["light_direction"],
        ambient=scene["ambient"],
        diffuse=scene["diffuse"],
        background=scene["background"],
        supersample=SUPERSAMPLE,
        mask_faces=scene["mask_faces"],
        specular=scene["specular"],
        shininess=scene["shininess"],
        vertex_normals=scene["mesh_normals"],
    )
    rgb, mask = apply_occluders(rgb, mask, scene["camera_effects"]["occluders"])
    return apply_camera_effects(rgb, scene["camera_effects"]), mask


def mirror_sample(
    rgb: np.ndarray, mask: np.ndarray, joints_xyz: np.ndarray, vertices_xyz: np.ndarray, K: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mirror an image left-right together with its labels: a right hand becomes a left hand.

    Pixel column `x` moves to `W - 1 - x`; points move to `(-x, y, z)` and the intrinsics to the camera that
    sees them there (`camera_after_affine`), so the projections move with the pixels.

    Returns:
        (rgb, mask, joints_xyz, vertices_xyz, K) mirrored.
    """
    width = rgb.shape[1]
    K_mirrored, rotation = camera_after_affine(np.array([[-1.0, 0.0, width - 1.0], [0.0, 1.0, 0.0]]), K)
    return (
        np.ascontiguousarray(rgb[:, ::-1]),
        np.ascontiguousarray(mask[:, ::-1]),
        joints_xyz @ rotation.T,
        vertices_xyz @ rotation.T,
        K_mirrored,
    )


def render_sample(index: int, seed: int = 0, image_size: int = 224, split: str = "train", p_left: float = 0.0) -> dict:
    """Sample `index` of the synthetic set `(seed, split)` as a row of `HAND_FEATURES_WITH_MESH`.

    The row holds the image and mask (PIL, mask 255 on the hand), the exact `joints_xyz` (21, 3) and
    `vertices_xyz` (778, 3) in metres in the camera frame, `K`, `joints_uv`, the tight `box` of the projected
    joints and vertices, `scale` (length of bone 9-10, metres) and `is_left`.
    """
    check_synthetic_image_size(image_size)
    check_probability("p_left", p_left)
    return scene_row(sample_scene(sample_generator(seed, index, split), image_size, p_left), image_size)


def scene_row(scene: dict, image_size: int) -> dict:
    """A scene (`scene.sample_scene` or `compose_scene`) rendered as a row of `HAND_FEATURES_WITH_MESH`, mirrored
    into a left hand when the scene says `is_left`."""
    rgb, mask = render_scene(scene, image_size)
    joints, vertices, K = scene["joints_xyz"], scene["vertices_xyz"], scene["K"]
    if scene["is_left"]:
        rgb, mask, joints, vertices, K = mirror_sample(rgb, mask, joints, vertices, K)
    return make_hand_row(
        image=PIL.Image.fromarray(rgb),
        joints_xyz=joints,
        K=K,
        is_left=scene["is_left"],
        vertices_xyz=vertices,
        mask=PIL.Image.fromarray(mask.astype(np.uint8) * 255),
    )
