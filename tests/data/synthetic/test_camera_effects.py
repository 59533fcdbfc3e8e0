"""Camera effects and occluders: neutral settings change nothing; each effect does what it says."""

import numpy as np

from clip_hand3d.data.synthetic.camera_effects import (
    MAX_OCCLUDED_FRACTION,
    apply_camera_effects,
    apply_occluders,
    sample_camera_effects,
)

SIZE = 48


def neutral(**changes) -> dict:
    effects = {
        "white_balance": np.ones(3),
        "exposure": 1.0,
        "vignetting": 0.0,
        "defocus_sigma": 0.0,
        "motion_length": 0.0,
        "motion_angle": 0.0,
        "grain": np.zeros((SIZE, SIZE, 3), dtype=np.float32),
        "jpeg_quality": None,
    }
    return {**effects, **changes}


def test_neutral_effects_leave_the_image_as_it_is():
    image = np.random.default_rng(0).integers(0, 256, size=(SIZE, SIZE, 3), dtype=np.uint8)
    np.testing.assert_array_equal(apply_camera_effects(image, neutral()), image)


def test_white_balance_exposure_and_vignetting():
    grey = np.full((SIZE, SIZE, 3), 100, dtype=np.uint8)
    balanced = apply_camera_effects(grey, neutral(white_balance=np.array([0.9, 1.0, 1.1]), exposure=1.2))
    assert (balanced == [108, 120, 132]).all()
    vignetted = apply_camera_effects(grey, neutral(vignetting=0.3)).astype(int)[..., 0]
    # The corner pixel's centre is 23.5 px from the centre along x and y: radius (23.5 / 48) / 0.5 = 23.5 / 24.
    assert vignetted[SIZE // 2, SIZE // 2] >= 99 and vignetted[0, 0] == round(100 * (1 - 0.3 * (23.5 / 24) ** 2))


def test_motion_blur_spreads_a_point_along_its_direction_and_keeps_flat_areas():
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    image[24, 24] = 255
    blurred = apply_camera_effects(image, neutral(motion_length=7.0, motion_angle=0.0))[..., 0]
    rows, columns = np.nonzero(blurred)
    assert set(rows) == {24} and columns.min() <= 22 and columns.max() >= 26  # horizontal streak
    flat = np.full((SIZE, SIZE, 3), 77, dtype=np.uint8)
    assert (apply_camera_effects(flat, neutral(motion_length=5.0, motion_angle=1.0)) == 77).all()
    assert (apply_camera_effects(flat, neutral(defocus_sigma=1.5)) == 77).all()


def test_jpeg_compression_changes_pixels_a_little():
    y, x = np.mgrid[0:SIZE, 0:SIZE]
    image = np.stack([x * 5, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    compressed = apply_camera_effects(image, neutral(jpeg_quality=40))
    difference = np.abs(compressed.astype(int) - image)
    assert difference.max() > 0 and difference.mean() < 4


def test_occluders_hide_the_hand_up_to_a_limit():
    image = np.zeros((SIZE, SIZE, 3), dtype=np.uint8)
    mask = np.zeros((SIZE, SIZE), dtype=bool)
    mask[10:38, 10:38] = True
    ball = {
        "kind": "ball",
        "centre": np.array([24.0, 24.0]),
        "size": 6.0,
        "angle": 0.0,
        "color": np.array([1.0, 0.0, 0.0]),
        "shade": 0.0,
    }
    occluded, visible = apply_occluders(image, mask, [ball])
    hidden = mask & ~visible
    assert 0 < hidden.sum() <= MAX_OCCLUDED_FRACTION * mask.sum() and (occluded[hidden] == [255, 0, 0]).all()
    assert not (visible & ~mask).any()
    wall = {**ball, "kind": "edge", "size": 30.0}  # would hide most of the hand: left out
    unchanged, kept = apply_occluders(image, mask, [wall])
    assert (unchanged == image).all() and (kept == mask).all()


def test_sampling_is_a_function_of_the_generator():
    box = np.array([10.0, 10.0, 40.0, 40.0])
    first = sample_camera_effects(np.random.default_rng(5), SIZE, box)
    second = sample_camera_effects(np.random.default_rng(5), SIZE, box)
    assert first.keys() == second.keys()
    for key in first:
        if key == "occluders":
            assert len(first[key]) == len(second[key])
        else:
            np.testing.assert_array_equal(first[key], second[key])
