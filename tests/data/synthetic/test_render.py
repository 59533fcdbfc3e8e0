"""Tests of rendered synthetic rows: determinism, labels consistent with the camera and the hand, the mask, the
untouched background, left hands as mirrored right hands."""

import numpy as np
import pytest

from clip_hand3d.data.rendering import render_mesh
from clip_hand3d.data.synthetic.camera_effects import apply_camera_effects
from clip_hand3d.data.synthetic.hand import hand_model
from clip_hand3d.data.synthetic.render import render_sample, render_scene
from clip_hand3d.data.synthetic.scene import sample_generator, sample_scene
from clip_hand3d.geometry import project
from clip_hand3d.modeling.hand_joints import REFERENCE_BONE
from tests.data.synthetic.helpers import SIZE, assert_same_rows, pixels


def test_render_sample_is_a_function_of_seed_split_and_index():
    first = render_sample(5, seed=3, image_size=SIZE)
    assert_same_rows(render_sample(5, seed=3, image_size=SIZE), first)
    for other in (render_sample(6, seed=3, image_size=SIZE), render_sample(5, seed=4, image_size=SIZE)):
        assert not np.array_equal(pixels(other["image"]), pixels(first["image"]))
        assert not np.allclose(other["joints_xyz"], first["joints_xyz"])


@pytest.mark.parametrize("index", range(4))
def test_labels_are_consistent_with_the_camera_and_the_hand_model(index):
    row = render_sample(index, seed=1, image_size=SIZE)
    joints = row["joints_xyz"].astype(np.float64)
    vertices = row["vertices_xyz"].astype(np.float64)
    K = row["K"].astype(np.float64)
    np.testing.assert_allclose(row["joints_uv"], project(joints, K), atol=1e-3)
    projected = np.concatenate([project(joints, K), project(vertices, K)])
    np.testing.assert_allclose(row["box"], [*projected.min(axis=0), *projected.max(axis=0)], atol=1e-3)
    assert row["scale"] == pytest.approx(
        np.linalg.norm(joints[REFERENCE_BONE[0]] - joints[REFERENCE_BONE[1]]), rel=1e-5
    )
    # The rows hold exactly the mesh that was posed: the model's joint regressor gives back its joints.
    regressor = hand_model().joint_regressor.double().numpy()
    np.testing.assert_allclose(regressor @ vertices, joints, atol=1e-6)
    assert not row["is_left"]
    assert pixels(row["image"]).shape == (SIZE, SIZE, 3)


def occluded(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(N,) bool: whether a triangle crosses the segment from the camera centre to each point (ray casting,
    Moller-Trumbore), ignoring hits within 0.1 % of the point's distance (its own faces)."""
    corners = vertices[faces]
    edge_1, edge_2 = corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]
    result = np.zeros(len(points), dtype=bool)
    to_corner = -corners[:, 0]  # from the first corner to the camera centre
    q = np.cross(to_corner, edge_1)
    for start in range(0, len(points), 64):
        rays = points[start : start + 64]  # the segment is t * point, t in (0, 1)
        p = np.cross(rays[:, None], edge_2[None])
        determinant = np.einsum("rfc,fc->rf", p, edge_1)
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.einsum("rfc,fc->rf", p, to_corner) / determinant
            v = np.einsum("rc,fc->rf", rays, q) / determinant
            t = np.einsum("fc,fc->f", edge_2, q)[None] / determinant
        hit = (np.abs(determinant) > 1e-15) & (u >= 0) & (v >= 0) & (u + v <= 1) & (t > 0) & (t < 0.999)
        result[start : start + 64] = hit.any(axis=1)
    return result


def test_mask_covers_the_visible_vertices_and_stays_in_the_box():
    index, seed = 2, 5
    row = render_sample(index, seed=seed, image_size=SIZE)
    mask = pixels(row["mask"]) > 127
    scene = sample_scene(sample_generator(seed, index), SIZE)
    vertices = scene["vertices_xyz"]
    uv = np.rint(project(vertices, scene["K"])).astype(int)
    in_image = ((uv >= 0) & (uv < SIZE)).all(axis=1)
    visible = in_image & ~occluded(vertices, scene["mesh_vertices"], scene["mesh_faces"])
    assert 100 < visible.sum() < in_image.sum()  # some vertices are hidden, many are seen
    columns, rows = uv[visible].T
    grown_mask = mask.copy()
    for shift in (-1, 1):
        for axis in (0, 1):
            grown_mask |= np.roll(mask, shift, axis=axis)
    assert grown_mask[rows, columns].all()  # a visible vertex's pixel, or its neighbour on the silhouette
    assert mask[rows, columns].mean() > 0.8  # at 64 pixels many visible vertices lie on the silhouette

    x1, y1, x2, y2 = row["box"]
    mask_rows, mask_columns = np.nonzero(mask)
    assert mask_columns.min() >= x1 - 1 and mask_columns.max() <= x2 + 1
    assert mask_rows.min() >= y1 - 1 and mask_rows.max() <= y2 + 1
    assert set(np.unique(pixels(row["mask"]))) == {0, 255}


def test_background_is_untouched_away_from_the_hand_and_arm():
    index, seed = 1, 2
    scene = sample_scene(sample_generator(seed, index), SIZE)
    # Without the effects that spread pixels (blur, JPEG) or cover them (occluders), every pixel away from the
    # mesh is the background as the camera records it.
    effects = {**scene["camera_effects"], "defocus_sigma": 0.0, "motion_length": 0.0, "jpeg_quality": None}
    scene["camera_effects"] = {**effects, "occluders": []}
    image, hand_mask = render_scene(scene, SIZE)
    _, covered, _ = render_mesh(scene["mesh_vertices"], scene["mesh_faces"], scene["K"], (SIZE, SIZE), supersample=2)
    near_mesh = covered.copy()
    for shift in (-1, 1):  # pixels partly covered by the mesh blend with it
        for axis in (0, 1):
            near_mesh |= np.roll(covered, shift, axis=axis)
    expected = apply_camera_effects(scene["background"], scene["camera_effects"])
    assert (~near_mesh).sum() > SIZE * SIZE // 4
    np.testing.assert_array_equal(image[~near_mesh], expected[~near_mesh])
    # This scene has a forearm: it is drawn, but it is not part of the hand's mask.
    assert (~scene["mask_faces"]).any()
    assert (covered & ~hand_mask).sum() > 20
    assert not (image[covered & ~hand_mask] == expected[covered & ~hand_mask]).all()


def test_left_hand_is_the_consistently_mirrored_right_hand():
    right = render_sample(3, seed=0, image_size=SIZE, p_left=0.0)
    left = render_sample(3, seed=0, image_size=SIZE, p_left=1.0)
    assert left["is_left"] and not right["is_left"]
    np.testing.assert_array_equal(pixels(left["image"]), pixels(right["image"])[:, ::-1])
    np.testing.assert_array_equal(pixels(left["mask"]), pixels(right["mask"])[:, ::-1])
    np.testing.assert_allclose(left["joints_xyz"], right["joints_xyz"] * [-1, 1, 1])
    np.testing.assert_allclose(left["vertices_xyz"], right["vertices_xyz"] * [-1, 1, 1])
    np.testing.assert_allclose(left["joints_uv"][:, 0], SIZE - 1 - right["joints_uv"][:, 0], atol=1e-4)
    np.testing.assert_allclose(left["joints_uv"][:, 1], right["joints_uv"][:, 1], atol=1e-4)
    np.testing.assert_allclose(left["K"][0, 2], SIZE - 1 - right["K"][0, 2], atol=1e-4)
    np.testing.assert_allclose(
        left["joints_uv"], project(left["joints_xyz"].astype(float), left["K"].astype(float)), atol=1e-3
    )
