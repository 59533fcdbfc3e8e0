"""The realism probe: bone ratios against hand-computed skeletons and the published table, and the probe's report
with a fake detector (exact answers) and with MediaPipe for real."""

import numpy as np
import pytest

from clip_hand3d.data.synthetic.realism import (
    BONE_NAMES,
    BONES,
    bone_lengths,
    bone_ratios,
    contact_sheet,
    probe_realism,
)
from clip_hand3d.data.synthetic.render import render_sample
from clip_hand3d.detection import MediaPipeHand
from clip_hand3d.modeling.hand_anthropometry import (
    HAND_BREADTH,
    HAND_LENGTH,
    REFERENCE_BONE_RATIOS,
    SEGMENT_LENGTH_COEFFICIENTS,
)
from clip_hand3d.modeling.hand_template import build_hand_template


def straight_skeleton() -> np.ndarray:
    """21 joints: finger f's base at (f + 1, 0, 0) (the little finger's at z = 1, so that the palm is a plane) and
    its joints 1, 2, 3 more along +y."""
    joints = np.zeros((21, 3))
    for finger in range(5):
        for k in range(4):
            joints[1 + 4 * finger + k] = [finger + 1.0, float(k * (k + 1) // 2), float(finger == 4)]
    return joints


def test_bone_lengths_and_ratios_of_a_hand_computed_skeleton():
    lengths = dict(zip(BONE_NAMES, bone_lengths(straight_skeleton()), strict=True))
    # Along a finger the steps are 1, 2, 3 (joint y = 0, 1, 3, 6); the middle finger's base is at x = 3.
    assert lengths["index proximal"] == 1.0 and lengths["index middle"] == 2.0 and lengths["index distal"] == 3.0
    assert lengths["wrist-middle MCP"] == 3.0 and lengths["index-middle MCP"] == 1.0
    ratios = dict(zip(BONE_NAMES, bone_ratios(straight_skeleton()), strict=True))
    assert ratios["wrist-middle MCP"] == 1.0 and np.isclose(ratios["little distal"], 1.0)
    batch = np.stack([straight_skeleton(), 2 * straight_skeleton()])
    np.testing.assert_allclose(bone_ratios(batch)[1], bone_ratios(batch)[0])  # ratios ignore the hand's size
    with pytest.raises(ValueError, match=r"joints must have shape \(\.\.\., 21, 3\), got \(20, 3\)"):
        bone_lengths(np.zeros((20, 3)))


def test_reference_ratios_follow_the_published_coefficients():
    assert set(REFERENCE_BONE_RATIOS) == set(BONE_NAMES) and len(BONES) == 23
    # Buchholz et al. 1992: the middle MCP lies 0.373 hand lengths from the wrist crease, on the third
    # metacarpal's axis; its proximal segment is 0.266 hand lengths.
    assert np.isclose(REFERENCE_BONE_RATIOS["middle proximal"], 0.266 / 0.373)
    assert np.isclose(REFERENCE_BONE_RATIOS["index distal"], SEGMENT_LENGTH_COEFFICIENTS[1][2] / 0.373)
    index_mcp = np.hypot(0.374 * HAND_LENGTH, 0.251 * HAND_BREADTH)
    assert np.isclose(REFERENCE_BONE_RATIOS["wrist-index MCP"], index_mcp / (0.373 * HAND_LENGTH))


def test_the_built_in_hand_is_built_from_the_table():
    ratios = dict(zip(BONE_NAMES, bone_ratios(build_hand_template().joints), strict=True))
    for name in BONE_NAMES:
        if name != "wrist-thumb CMC":
            assert np.isclose(ratios[name], REFERENCE_BONE_RATIOS[name], rtol=1e-9), name
    # The thumb's CMC is the centre of the thumb's root on the palm surface (not set from the table): in the
    # palm's plane it lies within 5 % of the published location.
    assert abs(ratios["wrist-thumb CMC"] / REFERENCE_BONE_RATIOS["wrist-thumb CMC"] - 1) < 0.05


def test_the_thumb_cmc_is_measured_in_the_palm_plane():
    joints = straight_skeleton()
    joints[5], joints[17] = [1.0, -1.0, 0.0], [-1.0, -1.0, 0.0]  # palm plane z = 0
    joints[1] = [3.0, 4.0, 12.0]  # 12 in front of the palm
    assert np.isclose(bone_lengths(joints)[BONE_NAMES.index("wrist-thumb CMC")], 5.0)


class ExactDetector:
    """A stand-in for MediaPipe that 'reads' each image's hand exactly (its true joints, rotated, scaled and moved:
    PA-MPJPE 0), except on the images listed in `misses`."""

    def __init__(self, seed: int, misses: set[int]):
        self.seed, self.misses, self.calls = seed, misses, 0

    def detect_landmarks(self, image: np.ndarray) -> list[MediaPipeHand]:
        index, self.calls = self.calls, self.calls + 1
        if index in self.misses:
            return []
        joints = np.asarray(render_sample(index, seed=self.seed, image_size=64)["joints_xyz"], dtype=np.float64)
        rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
        world = 0.8 * joints @ rotation.T + 0.05
        return [MediaPipeHand(np.zeros((21, 2)), world, "Left", 0.9)]


def test_probe_reports_exact_answers_of_an_exact_detector():
    report, samples = probe_realism(num_images=4, seed=3, image_size=64, detector=ExactDetector(3, misses={2}))
    assert report.detection_rate == 0.75 and report.detected.tolist() == [True, True, False, True]
    assert report.pa_mpjpe_mm < 1e-3 and report.pa_mpjpe_per_joint_mm.shape == (21,)
    assert report.bone_ratios.shape == (23,) and report.render_images_per_second > 0
    assert np.abs(report.bone_ratio_errors[1:]).max() < 0.1  # the sampled hands scatter about the table
    summary = report.as_dict()
    assert summary["bone_ratios"]["middle proximal"]["reference"] == REFERENCE_BONE_RATIOS["middle proximal"]
    assert summary["pa_mpjpe_per_joint_mm"].keys() >= {"wrist", "little fingertip"}
    assert summary["detected"] == [True, True, False, True]
    sheet = np.asarray(contact_sheet(samples, columns=2, tile=32))
    assert sheet.shape == (64, 64, 3)
    assert (sheet[32, 0] == (220, 30, 30)).all()  # the missed third image has a red frame


def test_probe_with_mediapipe_reads_most_found_hands_within_a_few_centimetres():
    report, _ = probe_realism(num_images=12, seed=777)
    assert 0.2 <= report.detection_rate <= 1.0
    assert 5.0 < report.pa_mpjpe_mm < 40.0
