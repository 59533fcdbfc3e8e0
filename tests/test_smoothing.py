"""The One Euro filter against hand-computed responses, and the hand tracks of `HandSmoother`."""

import math

import numpy as np
import pytest

from clip_hand3d.smoothing import HandSmoother, OneEuroFilter, box_iou, smoothing_factor

FPS = 30.0


def run_filter(filter_: OneEuroFilter, samples) -> np.ndarray:
    return np.array([filter_(x, index / FPS) for index, x in enumerate(samples)])


def test_smoothing_factor_by_hand():
    # fc = 1 Hz at 30 frames/s: r = 2 pi / 30 = 0.20944, alpha = r / (1 + r) = 0.173171.
    assert smoothing_factor(1.0, 1 / FPS) == pytest.approx(0.173171, abs=1e-6)
    assert smoothing_factor(1e9, 1 / FPS) == pytest.approx(1.0)


def test_a_constant_signal_passes_unchanged():
    constant = np.full((21, 2), 123.25)
    output = run_filter(OneEuroFilter(min_cutoff=0.5, beta=0.1), [constant] * 50)
    np.testing.assert_allclose(output, np.broadcast_to(constant, output.shape), rtol=1e-12)


def test_step_response_is_exponential_smoothing_without_beta():
    # beta = 0: a plain low-pass filter, xs_n = 1 - (1 - alpha)^n after a step from 0 to 1 at frame 0.
    samples = [0.0] + [1.0] * 30
    output = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.0), samples)
    alpha = 2 * math.pi / FPS / (1 + 2 * math.pi / FPS)
    expected = [0.0] + [1 - (1 - alpha) ** n for n in range(1, 31)]
    np.testing.assert_allclose(output, expected, rtol=1e-12)
    assert output[1] == pytest.approx(0.173171, abs=1e-6)


def test_beta_follows_a_fast_step_sooner():
    samples = [0.0] + [100.0] * 10
    slow = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.0), samples)
    fast = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.05), samples)
    # First step: speed filtered with d_cutoff 1 Hz -> alpha_d * 100 * 30 = 519.5 px/s, cutoff 1 + 0.05 * 519.5.
    alpha = smoothing_factor(1.0 + 0.05 * smoothing_factor(1.0, 1 / FPS) * 100 * FPS, 1 / FPS)
    assert fast[1] == pytest.approx(100 * alpha)
    assert np.all(fast[1:] > slow[1:])


def test_noise_variance_is_reduced_as_exponential_smoothing_predicts():
    # White noise through exponential smoothing: the variance is multiplied by alpha / (2 - alpha) (0.0947 here).
    noise = np.random.default_rng(0).normal(0.0, 2.0, (4000, 21, 2))
    output = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.0), noise + 50.0)[100:]
    alpha = smoothing_factor(1.0, 1 / FPS)
    ratio = output.var() / noise[100:].var()
    assert ratio == pytest.approx(alpha / (2 - alpha), rel=0.1)


def test_the_filter_checks_its_inputs():
    with pytest.raises(ValueError, match="min_cutoff"):
        OneEuroFilter(min_cutoff=0.0)
    with pytest.raises(ValueError, match="beta"):
        OneEuroFilter(beta=-1.0)
    with pytest.raises(ValueError, match="d_cutoff must be a positive finite number"):
        OneEuroFilter(d_cutoff=float("inf"))
    with pytest.raises(ValueError, match="beta must be a non-negative"):
        HandSmoother(beta=True)
    filter_ = OneEuroFilter()
    filter_(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="time stamps must increase"):
        filter_(np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="shape"):
        filter_(np.zeros(4), 2.0)


def test_box_iou_by_hand():
    iou = box_iou(np.array([[0, 0, 10, 10]]), np.array([[5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 10, 10]]))
    np.testing.assert_allclose(iou, [[50 / 150, 0.0, 1.0]])


def hand(x: float, is_left: bool, value: float = 0.0) -> dict:
    """A hand whose box starts at x (100 px wide) and whose keypoints and joints all equal `value`."""
    return {
        "box": (x, 0.0, x + 100.0, 100.0),
        "is_left": is_left,
        "keypoints_2d": np.full((21, 2), value, np.float32),
        "joints_3d": np.full((21, 3), value / 1000, np.float32),
        "vertices_3d": np.full((778, 3), value / 1000, np.float32),
        "faces": np.zeros((2, 3), np.int64),
    }


def test_two_hands_swapping_order_stay_on_their_tracks():
    smoother = HandSmoother(min_cutoff=1.0, beta=0.0)
    first = smoother([hand(0, False, 0.0), hand(300, True, 10.0)], 0.0)
    assert [h["track_id"] for h in first] == [0, 1]
    # Next frame: the list order is swapped and each hand moved a little.
    moved = [hand(305, True, 20.0), hand(4, False, 30.0)]
    second = smoother(moved, 1 / FPS)
    assert [h["track_id"] for h in second] == [1, 0]
    alpha = smoothing_factor(1.0, 1 / FPS)
    np.testing.assert_allclose(second[0]["keypoints_2d"], 10 + alpha * 10, rtol=1e-6)
    np.testing.assert_allclose(second[1]["keypoints_2d"], alpha * 30, rtol=1e-6)
    np.testing.assert_allclose(second[1]["joints_3d"], alpha * 0.03, rtol=1e-5)
    assert second[1]["box"] == pytest.approx((4 * alpha, 0.0, 100 + 4 * alpha, 100.0))
    assert second[0]["faces"] is moved[0]["faces"]  # what is not smoothed passes as it is


def test_handedness_must_match_to_join_a_track():
    smoother = HandSmoother()
    smoother([hand(0, False)], 0.0)
    (other,) = smoother([hand(0, True, 50.0)], 0.1)
    assert other["track_id"] == 1
    np.testing.assert_array_equal(other["keypoints_2d"], 50.0)  # a new track's first frame is unchanged


def test_tracks_expire_after_max_missed_frames():
    smoother = HandSmoother(max_missed=2)
    smoother([hand(0, False)], 0.0)
    for frame in (1, 2):
        assert smoother([], frame / FPS) == []
    assert smoother([hand(0, False)], 3 / FPS)[0]["track_id"] == 0  # missed 2 frames: still the same track
    for frame in (4, 5, 6):
        smoother([], frame / FPS)
    assert smoother([hand(0, False)], 7 / FPS)[0]["track_id"] == 1  # missed 3: a new track
    assert len(smoother.tracks) == 1


def test_far_boxes_start_new_tracks_and_the_input_is_not_changed():
    smoother = HandSmoother(iou_threshold=0.3)
    smoother([hand(0, False)], 0.0)
    moved = hand(80, False, 5.0)  # IoU 20 / 180 < 0.3
    (result,) = smoother([moved], 0.1)
    assert result["track_id"] == 1 and moved["box"] == (80, 0.0, 180.0, 100.0) and "track_id" not in moved


def test_the_smoother_checks_its_inputs():
    with pytest.raises(ValueError, match="iou_threshold"):
        HandSmoother(iou_threshold=1.5)
    with pytest.raises(ValueError, match="max_missed"):
        HandSmoother(max_missed=-1)
    with pytest.raises(ValueError, match="hand 0: 'box'"):
        HandSmoother()([{"box": (1, 2), "is_left": False}], 0.0)
    with pytest.raises(ValueError, match="hand 0: has no 'is_left'"):
        HandSmoother()([{"box": (1, 2, 3, 4)}], 0.0)
