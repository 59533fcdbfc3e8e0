"""RHD loader on a fake release written in the official layout (pickle, colour/mask/depth PNGs)."""

import logging
import pickle
import shutil

import numpy as np
import PIL.Image
import pytest

from clip_hand3d.data.features import (
    HAND_FEATURES,
    REJECT_BEHIND_CAMERA,
    HandDatasetError,
    MissingDatasetFilesError,
)
from clip_hand3d.data.fixtures import RHD_FIXTURE_LAYOUTS, fraction_on_drawn_hand, write_rhd
from clip_hand3d.data.rhd import RHD_TO_FREIHAND, load_rhd, rhd_hand_joints
from clip_hand3d.modeling.hand_joints import JOINT_NAMES

# RHD_FIXTURE_LAYOUTS: training ("both", "right", "left"), evaluation ("right", "both").
TRAINING_IS_LEFT = [True, False, False, True]
TRAINING_SAMPLES = [0, 0, 1, 2]
EVALUATION_IS_LEFT = [False, True, False]


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_rhd(tmp_path_factory.mktemp("rhd"))


@pytest.fixture
def release_copy(release, tmp_path):
    return shutil.copytree(release, tmp_path / "RHD_published_v2")


def read_annotations(release, split="training"):
    with open(release / split / f"anno_{split}.pickle", "rb") as file:
        return pickle.load(file)


def write_annotations(release, annotations, split="training"):
    with open(release / split / f"anno_{split}.pickle", "wb") as file:
        pickle.dump(annotations, file, protocol=2)


def test_fixture_layouts_are_the_documented_ones():
    assert RHD_FIXTURE_LAYOUTS == {"training": ("both", "right", "left"), "evaluation": ("right", "both")}


def test_rhd_order_becomes_freihand_order():
    # RHD keypoint k of the left hand holds the value k; the right hand k + 21.
    xyz = np.repeat(np.arange(42.0)[:, None], 3, axis=1)
    left, right = rhd_hand_joints(xyz, 0)[:, 0], rhd_hand_joints(xyz, 21)[:, 0]
    # RHD per hand: 0 wrist, 1 thumb tip, 2 thumb DIP, 3 thumb PIP, 4 thumb MCP, 5 index tip, ..., 20 little MCP.
    expected = {
        "wrist": 0,
        "thumb MCP": 4,
        "thumb fingertip": 1,
        "index MCP": 8,
        "index PIP": 7,
        "middle DIP": 10,
        "little fingertip": 17,
    }
    for name, rhd_index in expected.items():
        assert left[JOINT_NAMES.index(name)] == rhd_index
        assert right[JOINT_NAMES.index(name)] == rhd_index + 21
    assert sorted(RHD_TO_FREIHAND) == list(range(21))


def test_one_row_per_visible_hand(release, tmp_path):
    dataset = load_rhd(release, cache_dir=tmp_path)
    assert dataset.features == HAND_FEATURES
    assert dataset["is_left"] == TRAINING_IS_LEFT
    evaluation = load_rhd(release.parent, "evaluation", cache_dir=tmp_path)  # the parent folder works too
    assert evaluation["is_left"] == EVALUATION_IS_LEFT


def test_joints_round_trip_in_metres(release, tmp_path):
    annotations = read_annotations(release)
    rows = load_rhd(release, cache_dir=tmp_path).with_format("numpy")
    for row, sample, is_left in zip(rows, TRAINING_SAMPLES, TRAINING_IS_LEFT, strict=True):
        first = 0 if is_left else 21
        np.testing.assert_allclose(row["joints_xyz"], annotations[sample]["xyz"][first + np.array(RHD_TO_FREIHAND)])
        np.testing.assert_allclose(row["K"], annotations[sample]["K"])
        assert 0.4 < row["joints_xyz"][:, 2].mean() < 0.8  # the fixture's hands are 0.6 m away
        # The annotated 2D keypoints are the projections: both lie in the box.
        uv = annotations[sample]["uv_vis"][first + np.array(RHD_TO_FREIHAND), :2]
        np.testing.assert_allclose(row["joints_uv"], uv, atol=1e-3)
        x1, y1, x2, y2 = row["box"]
        assert (uv[:, 0] >= x1 - 1e-3).all() and (uv[:, 0] <= x2 + 1e-3).all()
        assert (uv[:, 1] >= y1 - 1e-3).all() and (uv[:, 1] <= y2 + 1e-3).all()


def test_masks_are_the_hand_s_own_pixels(release, tmp_path):
    dataset = load_rhd(release, cache_dir=tmp_path)
    for row, sample, is_left in zip(dataset, TRAINING_SAMPLES, TRAINING_IS_LEFT, strict=True):
        ids = np.asarray(PIL.Image.open(release / "training" / "mask" / f"{sample:05d}.png"))
        expected = (ids >= 2) & (ids <= 17) if is_left else (ids >= 18) & (ids <= 33)
        np.testing.assert_array_equal(np.asarray(row["mask"]) > 0, expected)
        assert fraction_on_drawn_hand(row["image"], row["joints_uv"]) == 1.0


def test_dominant_hand_gives_one_row_per_image(release, tmp_path):
    dataset = load_rhd(release, hand_selection="dominant", cache_dir=tmp_path)
    expected = []
    for sample in range(len(RHD_FIXTURE_LAYOUTS["training"])):
        ids = np.asarray(PIL.Image.open(release / "training" / "mask" / f"{sample:05d}.png"))
        left_pixels, right_pixels = ((ids >= 2) & (ids <= 17)).sum(), ((ids >= 18) & (ids <= 33)).sum()
        expected.append(bool(left_pixels > right_pixels))
    assert dataset["is_left"] == expected
    with pytest.raises(ValueError, match="hand_selection must be one of"):
        load_rhd(release, hand_selection="largest", cache_dir=tmp_path)


def test_visibility_thresholds(release, tmp_path):
    assert len(load_rhd(release, min_visible_keypoints=21, min_mask_pixels=1, cache_dir=tmp_path)) == 4
    with pytest.raises(HandDatasetError, match="no usable rows"):
        load_rhd(release, min_visible_keypoints=22, cache_dir=tmp_path)
    with pytest.raises(HandDatasetError, match="no usable rows"):
        load_rhd(release, min_mask_pixels=96 * 96 + 1, cache_dir=tmp_path)


def test_hand_behind_the_camera_is_counted(release_copy, tmp_path, caplog):
    annotations = read_annotations(release_copy)
    annotations[0]["xyz"][21 + 5, 2] = -0.2  # the right hand of sample 0
    write_annotations(release_copy, annotations)
    with caplog.at_level(logging.WARNING, logger="clip_hand3d.data.rhd"):
        dataset = load_rhd(release_copy, cache_dir=tmp_path)
    assert dataset["is_left"] == [True, False, True]
    (message,) = [record.getMessage() for record in caplog.records if record.name == "clip_hand3d.data.rhd"]
    assert f"skipped 1 of 4 rows: 1 {REJECT_BEHIND_CAMERA}" in message


def test_missing_files_are_listed_together(release_copy, tmp_path):
    (release_copy / "training" / "anno_training.pickle").unlink()
    shutil.rmtree(release_copy / "training" / "mask")
    with pytest.raises(MissingDatasetFilesError) as error:
        load_rhd(release_copy, cache_dir=tmp_path)
    message = str(error.value)
    assert "2 required file(s) missing" in message
    assert str(release_copy / "training" / "anno_training.pickle") in message
    assert str(release_copy / "training" / "mask") in message


def test_malformed_annotation_names_sample_and_key(release_copy, tmp_path):
    annotations = read_annotations(release_copy)
    del annotations[1]["K"]
    write_annotations(release_copy, annotations)
    with pytest.raises(HandDatasetError, match="sample 1 has no key 'K'"):
        load_rhd(release_copy, cache_dir=tmp_path)
    annotations[1]["K"] = np.eye(3)
    annotations[2]["uv_vis"] = annotations[2]["uv_vis"][:21]
    write_annotations(release_copy, annotations)
    with pytest.raises(HandDatasetError, match=r"sample 2 field 'uv_vis' has shape \(21, 3\), expected \(42, 3\)"):
        load_rhd(release_copy, cache_dir=tmp_path)
