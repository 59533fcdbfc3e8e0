"""FreiHAND loader on a fake release written in the official layout; also the shared row checks of features.py."""

import json
import logging
import shutil

import numpy as np
import PIL.Image
import pytest
from datasets import Image

from clip_hand3d.data.features import (
    HAND_FEATURES,
    HAND_FEATURES_WITH_MESH,
    REJECT_BEHIND_CAMERA,
    REJECT_MISSING_FILE,
    REJECT_NON_FINITE,
    REJECT_SINGULAR_K,
    HandDatasetError,
    MissingDatasetFilesError,
    make_hand_row,
    validate_hand_row,
)
from clip_hand3d.data.fixtures import fraction_on_drawn_hand, write_freihand
from clip_hand3d.data.freihand import load_freihand

NUM_LABELS = 3
NUM_VERSIONS = 4
NUM_EVALUATION = 2
LABEL_COLUMNS = ["joints_xyz", "vertices_xyz", "joints_uv", "K", "scale", "box", "is_left"]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_freihand(tmp_path_factory.mktemp("freihand"), NUM_LABELS, NUM_VERSIONS, NUM_EVALUATION)


@pytest.fixture
def release_copy(release, tmp_path):
    """A copy of the release that a test may damage."""
    return shutil.copytree(release, tmp_path / "FreiHAND_pub_v2")


def read_json(path):
    with open(path, encoding="utf-8") as file:
        return json.load(file)


def labels(dataset):
    return dataset.select_columns([name for name in LABEL_COLUMNS if name in dataset.column_names]).with_format(
        "numpy"
    )


def file_names(dataset, column):
    return [
        None if value is None else value["path"].rsplit("/", 1)[-1]
        for value in dataset.cast_column(column, Image(decode=False))[column]
    ]


def test_training_images_cycle_through_the_labels(release, tmp_path):
    dataset = load_freihand(release, cache_dir=tmp_path)
    assert len(dataset) == NUM_LABELS * NUM_VERSIONS
    assert dataset.features == HAND_FEATURES_WITH_MESH
    xyz, verts = read_json(release / "training_xyz.json"), read_json(release / "training_verts.json")
    K, scale = read_json(release / "training_K.json"), read_json(release / "training_scale.json")
    rows = labels(dataset)
    for index in range(len(dataset)):
        label = index % NUM_LABELS
        np.testing.assert_allclose(rows[index]["joints_xyz"], xyz[label], rtol=1e-6)
        np.testing.assert_allclose(rows[index]["vertices_xyz"], verts[label], rtol=1e-6)
        np.testing.assert_allclose(rows[index]["K"], K[label], rtol=1e-6)
        assert rows[index]["scale"] == pytest.approx(scale[label], rel=1e-6)
    assert file_names(dataset, "image") == [f"{index:08d}.jpg" for index in range(NUM_LABELS * NUM_VERSIONS)]
    assert file_names(dataset, "mask") == [
        f"{index % NUM_LABELS:08d}.jpg" for index in range(NUM_LABELS * NUM_VERSIONS)
    ]
    assert not np.asarray(rows["is_left"]).any()


def test_labels_project_onto_the_drawn_hand(release, tmp_path):
    dataset = load_freihand(release, cache_dir=tmp_path)
    for row in dataset:
        assert fraction_on_drawn_hand(row["image"], row["joints_uv"]) == 1.0
        assert np.asarray(row["mask"]).shape[:2] == (row["image"].height, row["image"].width)


def test_joints_uv_and_box_follow_the_projection(release, tmp_path):
    rows = labels(load_freihand(release, "evaluation", cache_dir=tmp_path))
    for row in rows:
        homogeneous = row["joints_xyz"].astype(np.float64) @ row["K"].T.astype(np.float64)
        np.testing.assert_allclose(row["joints_uv"], homogeneous[:, :2] / homogeneous[:, 2:], rtol=1e-5)
        vertices = row["vertices_xyz"].astype(np.float64) @ row["K"].T.astype(np.float64)
        points = np.concatenate([row["joints_uv"], vertices[:, :2] / vertices[:, 2:]])
        np.testing.assert_allclose(row["box"], [*points.min(axis=0), *points.max(axis=0)], rtol=1e-5)
        assert row["box"][0] < row["box"][2] and row["box"][1] < row["box"][3]


def test_evaluation_split_has_one_version_and_no_masks(release, tmp_path):
    dataset = load_freihand(release, "evaluation", cache_dir=tmp_path)
    assert len(dataset) == NUM_EVALUATION
    assert dataset["mask"] == [None] * NUM_EVALUATION
    np.testing.assert_allclose(labels(dataset)["joints_xyz"], read_json(release / "evaluation_xyz.json"), rtol=1e-6)
    with pytest.raises(ValueError, match="evaluation has 1 colour version"):
        load_freihand(release, "evaluation", num_colour_versions=4, cache_dir=tmp_path)


def test_root_may_be_the_parent_folder(release, tmp_path):
    from_parent = load_freihand(release.parent, cache_dir=tmp_path)
    np.testing.assert_array_equal(
        labels(from_parent)["joints_xyz"], labels(load_freihand(release, cache_dir=tmp_path))["joints_xyz"]
    )


def test_fewer_colour_versions_and_no_vertices(release, tmp_path):
    dataset = load_freihand(release, num_colour_versions=1, with_vertices=False, cache_dir=tmp_path)
    assert len(dataset) == NUM_LABELS
    assert dataset.features == HAND_FEATURES
    with pytest.raises(ValueError, match="num_colour_versions=5"):
        load_freihand(release, num_colour_versions=5, cache_dir=tmp_path)
    with pytest.raises(ValueError, match="split must be one of"):
        load_freihand(release, "test", cache_dir=tmp_path)


def test_default_colour_versions_follow_the_image_count(tmp_path):
    release = write_freihand(tmp_path / "one_version", num_labels=2, num_colour_versions=1, num_evaluation=1)
    assert len(load_freihand(release, cache_dir=tmp_path / "cache")) == 2


def test_missing_files_are_listed_together(release_copy, tmp_path):
    (release_copy / "training_K.json").unlink()
    (release_copy / "training_verts.json").unlink()
    with pytest.raises(MissingDatasetFilesError) as error:
        load_freihand(release_copy, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert "2 required file(s) missing" in message
    assert str(release_copy / "training_K.json") in message and str(release_copy / "training_verts.json") in message
    assert str(release_copy / "FreiHAND_pub_v2") in message  # where else it looked


def test_more_images_than_labels_is_an_error(release_copy, tmp_path):
    for role in ("K", "xyz", "verts", "scale"):
        path = release_copy / f"training_{role}.json"
        path.write_text(json.dumps(read_json(path)[:2]))
    with pytest.raises(HandDatasetError, match="holds 12 images but training_xyz.json has only 2 labels"):
        load_freihand(release_copy, cache_dir=tmp_path / "cache")


def test_annotation_files_must_agree(release_copy, tmp_path):
    path = release_copy / "training_K.json"
    path.write_text(json.dumps(read_json(path)[:2]))
    with pytest.raises(HandDatasetError, match="training_K.json: 2, training_xyz.json: 3"):
        load_freihand(release_copy, cache_dir=tmp_path / "cache")
    path.write_text(json.dumps([[1.0, 2.0]] * 3))
    with pytest.raises(HandDatasetError, match=r"training_K.json: expected a list of entries of shape \(3, 3\)"):
        load_freihand(release_copy, cache_dir=tmp_path / "cache")


def test_unusable_rows_are_counted_and_logged(release_copy, tmp_path, caplog):
    xyz = read_json(release_copy / "training_xyz.json")
    xyz[1][5][0] = float("nan")
    xyz[2][7][2] = -0.1
    (release_copy / "training_xyz.json").write_text(json.dumps(xyz))
    (release_copy / "training" / "rgb" / f"{NUM_LABELS:08d}.jpg").unlink()  # label 0, second version
    with caplog.at_level(logging.WARNING, logger="clip_hand3d.data.freihand"):
        dataset = load_freihand(release_copy, cache_dir=tmp_path / "cache")
    assert len(dataset) == NUM_VERSIONS - 1  # label 0 in the three versions with images
    assert file_names(dataset, "image") == [f"{index:08d}.jpg" for index in (0, 6, 9)]
    (message,) = [record.getMessage() for record in caplog.records if record.name == "clip_hand3d.data.freihand"]
    assert "skipped 9 of 12 rows" in message
    assert (
        f"4 {REJECT_NON_FINITE}" in message
        and f"4 {REJECT_BEHIND_CAMERA}" in message
        and f"1 {REJECT_MISSING_FILE}" in message
    )


def test_cache_follows_changes_of_the_files(release_copy, tmp_path):
    cache = tmp_path / "cache"
    assert len(load_freihand(release_copy, cache_dir=cache)) == NUM_LABELS * NUM_VERSIONS
    xyz = read_json(release_copy / "training_xyz.json")
    xyz[0][0][2] = 0.0
    (release_copy / "training_xyz.json").write_text(json.dumps(xyz))
    assert len(load_freihand(release_copy, cache_dir=cache)) == (NUM_LABELS - 1) * NUM_VERSIONS


def test_no_usable_row_is_an_error(release_copy, tmp_path):
    xyz = np.array(read_json(release_copy / "training_xyz.json"))
    xyz[..., 2] = -xyz[..., 2]
    (release_copy / "training_xyz.json").write_text(json.dumps(xyz.tolist()))
    with pytest.raises(HandDatasetError, match="no usable rows"):
        load_freihand(release_copy, cache_dir=tmp_path / "cache")


# The shared row checks of clip_hand3d.data.features.

JOINTS = np.column_stack([np.linspace(-0.05, 0.05, 21), np.linspace(0.0, 0.1, 21), np.full(21, 0.5)])
K = np.array([[500.0, 0.0, 100.0], [0.0, 400.0, 50.0], [0.0, 0.0, 1.0]])


@pytest.fixture
def image_file(tmp_path):
    path = tmp_path / "image.png"
    PIL.Image.new("RGB", (8, 8)).save(path)
    return str(path)


def test_validate_hand_row_accepts_a_good_row(image_file):
    assert validate_hand_row({"image": image_file, "joints_xyz": JOINTS, "K": K, "mask": None, "scale": 0.04}) is None


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"image": "/nonexistent/image.png"}, REJECT_MISSING_FILE),
        ({"mask": "/nonexistent/mask.png"}, REJECT_MISSING_FILE),
        ({"joints_xyz": np.where(np.arange(21)[:, None] == 3, np.nan, JOINTS)}, REJECT_NON_FINITE),
        ({"K": np.where(np.eye(3) == 1, np.inf, K)}, REJECT_NON_FINITE),
        ({"scale": float("nan")}, REJECT_NON_FINITE),
        ({"vertices_xyz": np.full((778, 3), np.inf)}, REJECT_NON_FINITE),
        ({"joints_xyz": JOINTS * [1.0, 1.0, 0.0]}, REJECT_BEHIND_CAMERA),
        ({"vertices_xyz": np.tile([0.0, 0.0, -0.1], (778, 1))}, REJECT_BEHIND_CAMERA),
        ({"K": np.diag([500.0, 400.0, 0.0])}, REJECT_SINGULAR_K),
    ],
)
def test_validate_hand_row_names_the_problem(image_file, change, reason):
    assert validate_hand_row({"image": image_file, "joints_xyz": JOINTS, "K": K, **change}) == reason


def test_make_hand_row_projects_and_measures():
    row = make_hand_row("image.png", JOINTS, K, is_left=True)
    expected_uv = np.column_stack([500.0 * JOINTS[:, 0] / 0.5 + 100.0, 400.0 * JOINTS[:, 1] / 0.5 + 50.0])
    np.testing.assert_allclose(row["joints_uv"], expected_uv, rtol=1e-6)
    assert row["box"] == pytest.approx([50.0, 50.0, 150.0, 130.0])
    step = np.linalg.norm(JOINTS[1] - JOINTS[0])  # consecutive joints are evenly spaced: bone 9-10 is one step
    assert row["scale"] == pytest.approx(step)
    assert row["is_left"] is True and "vertices_xyz" not in row
    assert row["joints_xyz"].dtype == np.float32
    with_mesh = make_hand_row(
        "image.png", JOINTS, K, is_left=False, vertices_xyz=np.tile([0.1, -0.1, 0.5], (778, 1)), scale=0.03
    )
    assert with_mesh["box"] == pytest.approx([50.0, -30.0, 200.0, 130.0])
    assert with_mesh["scale"] == float(np.float32(0.03))
