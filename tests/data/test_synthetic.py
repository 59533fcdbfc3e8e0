"""Tests of the synthetic hand set: determinism, label consistency, schema, left hands and the FreiHAND layout."""

import io
import itertools
import json

import numpy as np
import PIL.Image
import pytest

from clip_hand3d.data.features import HAND_FEATURES_WITH_MESH
from clip_hand3d.data.freihand import load_freihand
from clip_hand3d.data.rendering import compute_vertex_normals, render_mesh
from clip_hand3d.data.synthetic import (
    BOX_FRACTION_RANGE,
    BOX_OUTSIDE_FRACTION,
    DEPTH_RANGE,
    FOCAL_RANGE,
    JPEG_OPTIONS,
    SKIN_TONES,
    forearm_mesh,
    hand_faces,
    hand_model,
    iter_synthetic,
    load_synthetic,
    random_rotation,
    render_sample,
    sample_background,
    sample_camera,
    sample_generator,
    sample_hand,
    sample_scene,
    sample_skin_colors,
    wrist_ring_ids,
    write_synthetic_freihand,
)
from clip_hand3d.geometry import project
from clip_hand3d.modeling.hand_joints import REFERENCE_BONE

SIZE = 64
LABELS = ("joints_xyz", "vertices_xyz", "K", "joints_uv", "box", "scale", "is_left")


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def jpeg_round_trip(image: PIL.Image.Image) -> PIL.Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **JPEG_OPTIONS)
    return PIL.Image.open(buffer)


def assert_same_rows(row: dict, expected: dict) -> None:
    np.testing.assert_array_equal(pixels(row["image"]), pixels(expected["image"]))
    np.testing.assert_array_equal(pixels(row["mask"]), pixels(expected["mask"]))
    for name in LABELS:
        np.testing.assert_allclose(
            np.asarray(row[name], dtype=np.float64), np.asarray(expected[name], dtype=np.float64), rtol=0, atol=1e-6
        )


def test_render_sample_is_a_function_of_seed_split_and_index():
    first = render_sample(5, seed=3, image_size=SIZE)
    assert_same_rows(render_sample(5, seed=3, image_size=SIZE), first)
    for other in (render_sample(6, seed=3, image_size=SIZE), render_sample(5, seed=4, image_size=SIZE)):
        assert not np.array_equal(pixels(other["image"]), pixels(first["image"]))
        assert not np.allclose(other["joints_xyz"], first["joints_xyz"])


def test_train_and_test_splits_draw_from_disjoint_streams():
    train = render_sample(0, seed=0, image_size=SIZE, split="train")
    test = render_sample(0, seed=0, image_size=SIZE, split="test")
    assert not np.array_equal(pixels(train["image"]), pixels(test["image"]))
    assert not np.allclose(train["joints_xyz"], test["joints_xyz"])
    train_numbers = [sample_generator(0, index, "train").random() for index in range(200)]
    test_numbers = [sample_generator(0, index, "test").random() for index in range(200)]
    assert not set(train_numbers) & set(test_numbers)


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


def test_camera_focal_depth_and_box_stay_in_their_ranges():
    for index in range(20):
        rng = sample_generator(7, index)
        vertices, joints, _ = sample_hand(rng)
        points = np.concatenate([vertices, joints])
        K, translation = sample_camera(rng, points, 224)
        uv = project(points + translation, K)
        box_side = np.ptp(uv, axis=0).max()
        centre_depth = ((points.min(axis=0) + points.max(axis=0)) / 2 + translation)[2]
        assert FOCAL_RANGE[0] * 224 - 1e-9 <= K[0, 0] == K[1, 1] <= FOCAL_RANGE[1] * 224 + 1e-9
        assert np.abs(K[:2, 2] - 111.5).max() <= 0.05 * 224 + 1e-9
        assert DEPTH_RANGE[0] - 1e-9 <= centre_depth <= DEPTH_RANGE[1] + 1e-9
        assert BOX_FRACTION_RANGE[0] - 0.01 <= box_side / 224 <= BOX_FRACTION_RANGE[1] + 0.01
        allowed = BOX_OUTSIDE_FRACTION * box_side + 0.5
        assert uv.min() >= -allowed and uv.max() <= 223 + allowed


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
    row = render_sample(index, seed=seed, image_size=SIZE)
    scene = sample_scene(sample_generator(seed, index), SIZE)
    _, covered, _ = render_mesh(scene["mesh_vertices"], scene["mesh_faces"], scene["K"], (SIZE, SIZE), supersample=2)
    near_mesh = covered.copy()
    for shift in (-1, 1):  # pixels partly covered by the mesh blend with it
        for axis in (0, 1):
            near_mesh |= np.roll(covered, shift, axis=axis)
    expected = np.clip(np.round(scene["background"] + scene["grain"]), 0, 255)
    assert (~near_mesh).sum() > SIZE * SIZE // 4
    np.testing.assert_array_equal(pixels(row["image"])[~near_mesh], expected[~near_mesh])
    # This scene has a forearm: it is drawn, but it is not part of the hand's mask.
    hand_mask = pixels(row["mask"]) > 127
    assert (~scene["mask_faces"]).any()
    assert (covered & ~hand_mask).sum() > 20
    assert not (pixels(row["image"])[covered & ~hand_mask] == expected[covered & ~hand_mask]).all()


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


def test_p_left_sets_the_share_of_left_hands():
    flags = [sample_scene(sample_generator(0, index), 16, p_left=0.5)["is_left"] for index in range(40)]
    assert 10 <= sum(flags) <= 30
    assert not any(sample_scene(sample_generator(0, index), 16)["is_left"] for index in range(10))


def test_load_synthetic_rows_follow_the_schema_and_equal_render_sample(tmp_path):
    dataset = load_synthetic(num_samples=3, seed=2, image_size=SIZE, cache_dir=tmp_path)
    assert dataset.features == HAND_FEATURES_WITH_MESH
    assert len(dataset) == 3
    assert_same_rows(dataset[2], render_sample(2, seed=2, image_size=SIZE))
    row = dataset.with_format("numpy")[0]
    shapes = {"joints_xyz": (21, 3), "vertices_xyz": (778, 3), "K": (3, 3), "joints_uv": (21, 2), "box": (4,)}
    for name, shape in shapes.items():
        assert row[name].shape == shape and row[name].dtype == np.float32, name
    assert dataset[0]["image"].mode == "RGB" and dataset[0]["image"].size == (SIZE, SIZE)
    assert dataset[0]["mask"].mode == "L" and dataset[0]["mask"].size == (SIZE, SIZE)
    test_split = load_synthetic(num_samples=1, seed=2, image_size=SIZE, split="test", cache_dir=tmp_path)
    assert not np.array_equal(pixels(test_split[0]["image"]), pixels(dataset[0]["image"]))


def test_iter_synthetic_streams_the_same_rows():
    rows = list(iter_synthetic(num_samples=2, seed=2, image_size=32))
    assert len(rows) == 2
    assert_same_rows(rows[1], render_sample(1, seed=2, image_size=32))
    endless = list(itertools.islice(iter_synthetic(seed=2, image_size=32), 3))
    assert_same_rows(endless[2], render_sample(2, seed=2, image_size=32))


@pytest.mark.parametrize(("split", "stream"), [("training", "train"), ("evaluation", "test")])
def test_freihand_layout_round_trip_through_load_freihand(tmp_path, split, stream):
    out_dir = write_synthetic_freihand(tmp_path / "synthetic", num_samples=3, seed=4, split=split, image_size=SIZE)
    for role in ("K", "xyz", "verts", "scale"):
        with open(out_dir / f"{split}_{role}.json", encoding="utf-8") as file:
            assert len(json.load(file)) == 3
    assert sorted(path.name for path in (out_dir / split / "rgb").iterdir()) == [f"{i:08d}.jpg" for i in range(3)]

    dataset = load_freihand(out_dir, split, num_colour_versions=1, cache_dir=tmp_path / "cache")
    assert len(dataset) == 3
    for index in range(3):
        row, expected = dataset[index], render_sample(index, seed=4, image_size=SIZE, split=stream)
        for name in ("joints_xyz", "vertices_xyz", "K", "scale"):
            np.testing.assert_array_equal(np.asarray(row[name]), np.asarray(expected[name]), err_msg=name)
        np.testing.assert_allclose(row["box"], expected["box"], atol=1e-3)
        np.testing.assert_array_equal(pixels(row["image"]), pixels(jpeg_round_trip(expected["image"])))
        assert np.abs(pixels(row["image"]).astype(float) - pixels(expected["image"])).mean() < 6
        assert ((pixels(row["mask"]) > 127) == (pixels(expected["mask"]) > 127)).mean() > 0.99


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: render_sample(0, split="validation", image_size=SIZE), "split must be one of"),
        (lambda: render_sample(-1, image_size=SIZE), "index must be a non-negative integer"),
        (lambda: render_sample(0, seed=-2, image_size=SIZE), "seed must be a non-negative integer"),
        (lambda: render_sample(0, image_size=8), "image_size must be"),
        (lambda: render_sample(0, image_size=SIZE, p_left=1.5), "p_left must be a probability"),
        (lambda: load_synthetic(num_samples=0), "num_samples must be a positive integer"),
        (lambda: load_synthetic(num_samples=2, seed=-1), "seed must be a non-negative integer"),
        (lambda: iter_synthetic(split="val"), "split must be one of"),
        (lambda: write_synthetic_freihand("unused", 1, split="train"), "split must be one of"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_random_rotations_are_uniform():
    rng = np.random.default_rng(0)
    matrices = np.stack([random_rotation(rng).as_matrix() for _ in range(4000)])
    np.testing.assert_allclose(
        matrices @ matrices.transpose(0, 2, 1), np.broadcast_to(np.eye(3), matrices.shape), atol=1e-9
    )
    # The Haar measure on SO(3) has zero mean: every entry averages out.
    assert np.abs(matrices.mean(axis=0)).max() < 0.04


def test_forearm_mesh_is_an_outward_tube_with_a_sleeve():
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    wrist_ring = np.stack([0.03 * np.cos(angles), np.zeros(12), 0.02 * np.sin(angles)], axis=1)
    vertices, faces, sleeve = forearm_mesh(wrist_ring, length=0.3, sleeve_start=0.1)
    assert vertices[:, 1].min() < 0 and vertices[:, 1].max() == pytest.approx(0.3)
    np.testing.assert_array_equal(sleeve, vertices[:, 1] >= 0.1)
    normals = compute_vertex_normals(vertices, faces)
    radial = vertices[:-1] * [1, 0, 1]  # every vertex but the cap's centre is on a ring around the y axis
    assert (np.einsum("nc,nc->n", normals[:-1], radial) > 0).all()
    assert normals[-1, 1] > 0.99  # the centre of the cap at the far end faces along the arm


def test_hand_mesh_is_closed_and_oriented_outwards_as_back_face_culling_needs():
    faces = hand_faces()
    vertices = hand_model().template_vertices.double().numpy()
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    directed = set(map(tuple, edges))
    assert len(directed) == len(edges)  # no edge is used twice in the same direction
    assert all((end, start) in directed for start, end in directed)  # every edge is shared, in opposite directions
    signed_volume = (
        np.einsum("fc,fc->f", vertices[faces[:, 0]], np.cross(vertices[faces[:, 1]], vertices[faces[:, 2]])).sum() / 6
    )
    assert 1e-4 < signed_volume < 1e-3  # cubic metres: positive, so the faces turn counter-clockwise outside


def test_wrist_ring_surrounds_the_wrist_joint():
    hand = hand_model()
    ring = hand.template_vertices.numpy()[wrist_ring_ids()]
    np.testing.assert_allclose(ring.mean(axis=0), hand.template_joints.numpy()[0], atol=1e-6)
    assert len(ring) >= 8
    np.testing.assert_allclose(ring[:, 1], 0.0, atol=1e-9)  # in the plane y = 0 of the rest frame
    # In order around the ring: the angle about the y axis turns monotonically, once around.
    turns = np.diff(np.unwrap(np.arctan2(ring[:, 2], ring[:, 0]), period=2 * np.pi))
    assert (np.sign(turns) == np.sign(turns[0])).all()
    assert abs(turns.sum()) == pytest.approx(2 * np.pi * (len(ring) - 1) / len(ring), rel=0.2)


def test_skin_colours_are_skin_like():
    rng = np.random.default_rng(3)
    vertices = rng.normal(size=(500, 3)) * 0.05
    normals = vertices / np.linalg.norm(vertices, axis=1, keepdims=True)
    for _ in range(20):
        colors = sample_skin_colors(rng, vertices, normals)
        assert colors.min() >= 0 and colors.max() <= 1
        red, green, blue = colors.mean(axis=0)
        assert red > green > blue
        assert colors.std(axis=0).max() > 0.005  # smooth variation over the skin
        assert (SKIN_TONES[-1] * 0.8 <= colors.mean(axis=0)).all() and (colors.mean(axis=0) <= 1).all()


def test_backgrounds_are_deterministic_and_varied():
    backgrounds = [sample_background(np.random.default_rng(seed), 48) for seed in range(12)]
    assert all(background.shape == (48, 48, 3) and background.dtype == np.uint8 for background in backgrounds)
    np.testing.assert_array_equal(backgrounds[0], sample_background(np.random.default_rng(0), 48))
    spreads = [background.reshape(-1, 3).std(axis=0).max() for background in backgrounds]
    assert sum(spread > 5 for spread in spreads) >= 6  # most are not flat
    means = np.array([background.mean(axis=(0, 1)) for background in backgrounds])
    assert means.std(axis=0).min() > 10  # colours vary between images
