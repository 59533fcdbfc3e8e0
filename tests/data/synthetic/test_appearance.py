"""Tests of the synthetic sample's colours: skin-like albedos, nails and creases, ambient occlusion, deterministic
and varied backgrounds."""

import numpy as np

from clip_hand3d.data.synthetic.appearance import (
    OCCLUSION_STRENGTH,
    SKIN_TONES,
    add_hand_details,
    ambient_occlusion,
    sample_background,
    sample_skin_colors,
)
from clip_hand3d.data.synthetic.hand import hand_detail_weights, hand_model, rest_hand_normals


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


def test_ambient_occlusion_darkens_surfaces_that_face_other_surfaces():
    # Two parallel plates 1 cm apart facing each other, and a lone plate far away facing the open.
    grid = np.stack(np.meshgrid(np.linspace(0, 0.03, 7), np.linspace(0, 0.03, 7)), axis=-1).reshape(-1, 2)
    lower = np.column_stack([grid, np.zeros(len(grid))])
    upper = lower + [0.0, 0.0, 0.01]
    lone = lower + [1.0, 0.0, 0.0]
    vertices = np.concatenate([lower, upper, lone])
    normals = np.concatenate(
        [np.tile([0.0, 0.0, 1.0], (49, 1)), np.tile([0.0, 0.0, -1.0], (49, 1)), np.tile([0.0, 0.0, 1.0], (49, 1))]
    )
    factor = ambient_occlusion(vertices, normals)
    np.testing.assert_allclose(factor[98:], 1.0)  # neighbours in its own plane do not shade it
    assert factor[:98].max() < 0.9 and factor[:98].min() >= 1.0 - OCCLUSION_STRENGTH
    np.testing.assert_allclose(factor[:49], factor[49:98])  # the plates shade each other alike


def test_hand_details_put_nails_on_the_backs_of_the_fingertips_and_creases_at_joints():
    nail, crease = hand_detail_weights()
    hand = hand_model()
    tips = hand.template_vertices[hand.joint_regressor[[4, 8, 12, 16, 20]].argmax(dim=1)].double().numpy()
    vertices = hand.template_vertices.double().numpy()
    on_nail = nail > 0.5
    assert 10 <= on_nail.sum() <= 60
    assert np.linalg.norm(vertices[on_nail][:, None] - tips[None], axis=-1).min(axis=1).max() < 0.012
    finger_of_nail = np.linalg.norm(vertices[on_nail][:, None] - tips[None], axis=-1).argmin(axis=1)
    pads = hand.pad_normals.double().numpy()[finger_of_nail]
    assert (np.einsum("vc,vc->v", rest_hand_normals()[on_nail], pads) < 0).all()  # nails face away from the pads
    pip_ring = np.flatnonzero(hand.joint_regressor[6].numpy() > 0)  # index PIP
    assert (crease[pip_ring] == 1.0).all() and crease[hand.joint_regressor[0].numpy() > 0].max() == 0.0
    colors = np.full((778, 3), 0.6)
    detailed = add_hand_details(np.random.default_rng(0), colors, nail, crease)
    assert (detailed[on_nail].mean(axis=0) > colors[0]).all()  # nails are lighter
    assert (detailed[pip_ring] < colors[0]).all()  # creases darker
