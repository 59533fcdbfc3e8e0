"""Tests of the synthetic sample's colours: skin-like albedos, deterministic and varied backgrounds."""

import numpy as np

from clip_hand3d.data.synthetic.appearance import SKIN_TONES, sample_background, sample_skin_colors


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
