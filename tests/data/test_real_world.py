"""Loader of Ge et al.'s real-world test set on a fake copy in the authors' layout (params.mat, pose_gt.mat)."""

import logging
import shutil

import numpy as np
import pytest
import scipy.io

from clip_hand3d.data.features import (
    HAND_FEATURES,
    REJECT_MISSING_FILE,
    HandDatasetError,
    MissingDatasetFilesError,
)
from clip_hand3d.data.fixtures import fraction_on_drawn_hand, write_real_world
from clip_hand3d.data.real_world import REJECT_EMPTY_BOX, crop_intrinsics, load_real_world

NUM_IMAGES = 3


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_real_world(tmp_path_factory.mktemp("real_world"), num_images=NUM_IMAGES)


@pytest.fixture
def release_copy(release, tmp_path):
    return shutil.copytree(release, tmp_path / "real_world_testset")


def test_crop_intrinsics_by_hand():
    # A 128 x 160 box at (300, 200) of a camera (fx 600, fy 610, u0 320, v0 240), resized to 64 x 80 pixels.
    K = crop_intrinsics([600.0, 610.0, 320.0, 240.0], [300.0, 200.0, 128.0, 160.0], (64, 80))
    np.testing.assert_allclose(K, [[300.0, 0.0, 10.0], [0.0, 305.0, 20.0], [0.0, 0.0, 1.0]])


def test_crop_box_must_have_an_area(release_copy, tmp_path, caplog):
    with pytest.raises(ValueError, match="positive width and height"):
        crop_intrinsics([600.0, 600.0, 320.0, 240.0], [10.0, 10.0, 0.0, 20.0], (64, 64))
    params = scipy.io.loadmat(release_copy / "params.mat")
    params["bbox"][1, 3] = 0.0
    scipy.io.savemat(release_copy / "params.mat", {key: params[key] for key in ("image_path", "cam_param", "bbox")})
    with caplog.at_level(logging.WARNING, logger="clip_hand3d.data.real_world"):
        assert len(load_real_world(release_copy, cache_dir=tmp_path)) == NUM_IMAGES - 1
    assert f"1 {REJECT_EMPTY_BOX}" in caplog.text


def test_rows_in_metres_with_crop_intrinsics(release, tmp_path):
    dataset = load_real_world(release, cache_dir=tmp_path)
    assert len(dataset) == NUM_IMAGES
    assert dataset.features == HAND_FEATURES
    params = scipy.io.loadmat(release / "params.mat")
    pose_cm = scipy.io.loadmat(release / "pose_gt.mat")["pose_gt"]
    rows = dataset.with_format("numpy")
    for index, row in enumerate(rows):
        np.testing.assert_allclose(row["joints_xyz"], pose_cm[index] / 100.0, rtol=1e-6)
        expected_K = crop_intrinsics(params["cam_param"][index], params["bbox"][index], (64, 64))
        np.testing.assert_allclose(row["K"], expected_K, rtol=1e-6)
        assert row["scale"] == pytest.approx(params["pose_scale"][index, 0] / 100.0, rel=1e-6)
    assert dataset["is_left"] == [False] * NUM_IMAGES and dataset["mask"] == [None] * NUM_IMAGES


def test_labels_project_onto_the_drawn_hand(release, tmp_path):
    for row in load_real_world(release.parent, cache_dir=tmp_path):  # the parent folder works too
        assert fraction_on_drawn_hand(row["image"], row["joints_uv"]) == 1.0


def test_image_paths_as_a_cell_array(release_copy, tmp_path):
    params = scipy.io.loadmat(release_copy / "params.mat")
    cell = np.empty((NUM_IMAGES, 1), dtype=object)
    for index, name in enumerate(params["image_path"]):
        cell[index, 0] = name.strip()
    scipy.io.savemat(
        release_copy / "params.mat", {**{key: params[key] for key in ("cam_param", "bbox")}, "image_path": cell}
    )
    assert len(load_real_world(release_copy, cache_dir=tmp_path)) == NUM_IMAGES


def test_missing_key_names_the_key_and_the_file(release_copy, tmp_path):
    params = scipy.io.loadmat(release_copy / "params.mat")
    scipy.io.savemat(release_copy / "params.mat", {key: params[key] for key in ("image_path", "cam_param")})
    with pytest.raises(
        HandDatasetError, match=r"params.mat has no key 'bbox' \(keys: \['cam_param', 'image_path'\]\)"
    ):
        load_real_world(release_copy, cache_dir=tmp_path)


def test_wrong_shapes_and_counts(release_copy, tmp_path):
    params = scipy.io.loadmat(release_copy / "params.mat")
    fields = {key: params[key] for key in ("image_path", "cam_param", "bbox")}
    scipy.io.savemat(release_copy / "params.mat", {**fields, "cam_param": params["cam_param"][:, :3]})
    with pytest.raises(HandDatasetError, match=r"'cam_param' has shape \(3, 3\), expected \(N, 4\)"):
        load_real_world(release_copy, cache_dir=tmp_path)
    scipy.io.savemat(release_copy / "params.mat", {**fields, "bbox": params["bbox"][:2]})
    with pytest.raises(HandDatasetError, match="disagree on the number of images"):
        load_real_world(release_copy, cache_dir=tmp_path)


def test_missing_files(release_copy, tmp_path, caplog):
    (release_copy / "images" / "00001.jpg").unlink()
    with caplog.at_level(logging.WARNING, logger="clip_hand3d.data.real_world"):
        assert len(load_real_world(release_copy, cache_dir=tmp_path)) == NUM_IMAGES - 1
    assert f"skipped 1 of {NUM_IMAGES} rows: 1 {REJECT_MISSING_FILE}" in caplog.text
    (release_copy / "pose_gt.mat").unlink()
    with pytest.raises(MissingDatasetFilesError, match="pose_gt.mat"):
        load_real_world(release_copy, cache_dir=tmp_path)
