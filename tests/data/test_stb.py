"""STB loader: the frame, joint order and palm-to-wrist conversions by hand, then a fake release end to end."""

import shutil

import numpy as np
import pytest
import scipy.io

from clip_hand3d.data.features import HAND_FEATURES, HandDatasetError, MissingDatasetFilesError
from clip_hand3d.data.fixtures import fraction_on_drawn_hand, stb_hand_para, write_stb
from clip_hand3d.data.stb import (
    STB_COLOUR_K,
    STB_SK_ROTATION_VECTOR,
    STB_SK_TRANSLATION_MM,
    STB_TO_FREIHAND,
    load_stb,
    palm_centre_to_wrist,
    stb_joints,
    stb_label_to_colour_camera,
)
from clip_hand3d.modeling.hand_joints import JOINT_NAMES

FRAMES_PER_SEQUENCE = 2


def rodrigues(rotation_vector):
    """Rotation matrix of a rotation vector, written out: I + sin(a) [k]x + (1 - cos(a)) [k]x^2."""
    angle = np.linalg.norm(rotation_vector)
    kx, ky, kz = np.asarray(rotation_vector) / angle
    cross = np.array([[0.0, -kz, ky], [kz, 0.0, -kx], [-ky, kx, 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1.0 - np.cos(angle)) * cross @ cross


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_stb(tmp_path_factory.mktemp("stb"), frames_per_sequence=FRAMES_PER_SEQUENCE)


def test_label_frame_to_colour_camera_by_hand():
    # STB's readme: the extrinsics map colour-camera coordinates to depth-camera (label) coordinates,
    # X_label = R X_colour + t. So the label point t is the colour camera's centre ...
    np.testing.assert_allclose(stb_label_to_colour_camera(STB_SK_TRANSLATION_MM), [0.0, 0.0, 0.0], atol=1e-12)
    # ... and a point 0.5 m in front of the colour camera, expressed in the label frame, comes back.
    point_mm = np.array([10.0, -20.0, 500.0])
    label_mm = rodrigues(STB_SK_ROTATION_VECTOR) @ point_mm + STB_SK_TRANSLATION_MM
    np.testing.assert_allclose(stb_label_to_colour_camera(label_mm), point_mm / 1000.0, atol=1e-12)
    # Second order in the small rotation r (0.8 degrees), with v = X_label - t = (24.0381, 0.4563, 501.2326) mm:
    # X = v - r x v + (r x (r x v)) / 2, r x v = (-5.9962, -2.5894, 0.2899), r x (r x v) = (0.0043, -0.0196, -0.0854).
    np.testing.assert_allclose(
        stb_label_to_colour_camera([0.0, 0.0, 500.0]), [0.030036, 0.003036, 0.500900], atol=1e-6
    )


def test_palm_centre_moves_to_the_wrist():
    joints = np.zeros((21, 3))
    joints[0] = [0.01, 0.02, 0.5]  # palm centre
    joints[9] = [0.01, -0.02, 0.52]  # middle MCP
    wrist = palm_centre_to_wrist(joints)[0]
    np.testing.assert_allclose(wrist, [0.01, 0.06, 0.48])
    np.testing.assert_allclose((wrist + joints[9]) / 2, joints[0])


def test_stb_joint_order():
    # Assumed STB order: 0 palm, 1-4 little MCP..tip, 5-8 ring, 9-12 middle, 13-16 index, 17-20 thumb.
    expected = {
        "wrist": 0,
        "thumb MCP": 17,
        "thumb fingertip": 20,
        "index PIP": 14,
        "middle MCP": 9,
        "ring DIP": 7,
        "little MCP": 1,
    }
    for name, stb_index in expected.items():
        assert STB_TO_FREIHAND[JOINT_NAMES.index(name)] == stb_index
    assert sorted(STB_TO_FREIHAND) == list(range(21))


def test_fixture_writer_inverts_the_loader_conversion():
    rng = np.random.default_rng(1)
    joints = rng.uniform(-0.1, 0.1, size=(21, 3)) + [0.0, 0.0, 0.5]
    np.testing.assert_allclose(stb_joints(stb_hand_para(joints)), joints, atol=1e-12)


def test_splits_rows_and_values(release, tmp_path):
    training = load_stb(release, cache_dir=tmp_path)
    evaluation = load_stb(release, "evaluation", cache_dir=tmp_path)
    assert len(training) == 10 * FRAMES_PER_SEQUENCE and len(evaluation) == 2 * FRAMES_PER_SEQUENCE
    assert training.features == HAND_FEATURES
    hand_para = scipy.io.loadmat(release / "labels" / "B1Random_SK.mat")["handPara"]
    rows = evaluation.with_format("numpy")
    for frame in range(FRAMES_PER_SEQUENCE):
        row = rows[FRAMES_PER_SEQUENCE + frame]  # B1Counting comes first, then B1Random
        np.testing.assert_allclose(row["joints_xyz"], stb_joints(hand_para[:, :, frame]), rtol=1e-6)
        np.testing.assert_allclose(row["K"], STB_COLOUR_K, rtol=1e-7)
    assert all(evaluation["is_left"]) and evaluation["mask"] == [None] * len(evaluation)


def test_labels_project_onto_the_drawn_hand(release, tmp_path):
    for row in load_stb(release, "evaluation", cache_dir=tmp_path):
        assert row["image"].size == (640, 480)
        assert fraction_on_drawn_hand(row["image"], row["joints_uv"]) == 1.0


def test_missing_files_are_listed_together(release, tmp_path):
    damaged = shutil.copytree(release, tmp_path / "STB")
    (damaged / "labels" / "B3Random_SK.mat").unlink()
    shutil.rmtree(damaged / "B5Counting")
    with pytest.raises(MissingDatasetFilesError) as error:
        load_stb(damaged, cache_dir=tmp_path / "cache")
    assert "B3Random_SK.mat" in str(error.value) and "B5Counting" in str(error.value)
    assert "evaluation" not in str(error.value)
    assert len(load_stb(damaged, "evaluation", cache_dir=tmp_path / "cache")) == 2 * FRAMES_PER_SEQUENCE


def test_label_file_without_hand_para(release, tmp_path):
    damaged = shutil.copytree(release, tmp_path / "STB")
    scipy.io.savemat(damaged / "labels" / "B1Counting_SK.mat", {"hand_para": np.zeros((3, 21, 2))})
    with pytest.raises(HandDatasetError, match=r"B1Counting_SK.mat has no key 'handPara' \(keys: \['hand_para'\]\)"):
        load_stb(damaged, "evaluation", cache_dir=tmp_path / "cache")
    scipy.io.savemat(damaged / "labels" / "B1Counting_SK.mat", {"handPara": np.zeros((21, 3, 2))})
    with pytest.raises(HandDatasetError, match=r"'handPara' has shape \(21, 3, 2\), expected \(3, 21, frames\)"):
        load_stb(damaged, "evaluation", cache_dir=tmp_path / "cache")
    with pytest.raises(ValueError, match="STB split must be one of"):
        load_stb(damaged, "validation")
