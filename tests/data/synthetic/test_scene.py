"""Tests of the synthetic sample's generator and scene: disjoint split streams, the share of left hands."""

import numpy as np

from clip_hand3d.data.synthetic.render import render_sample
from clip_hand3d.data.synthetic.scene import sample_generator, sample_scene
from tests.data.synthetic.helpers import SIZE, pixels


def test_train_and_test_splits_draw_from_disjoint_streams():
    train = render_sample(0, seed=0, image_size=SIZE, split="train")
    test = render_sample(0, seed=0, image_size=SIZE, split="test")
    assert not np.array_equal(pixels(train["image"]), pixels(test["image"]))
    assert not np.allclose(train["joints_xyz"], test["joints_xyz"])
    train_numbers = [sample_generator(0, index, "train").random() for index in range(200)]
    test_numbers = [sample_generator(0, index, "test").random() for index in range(200)]
    assert not set(train_numbers) & set(test_numbers)


def test_p_left_sets_the_share_of_left_hands():
    flags = [sample_scene(sample_generator(0, index), 16, p_left=0.5)["is_left"] for index in range(40)]
    assert 10 <= sum(flags) <= 30
    assert not any(sample_scene(sample_generator(0, index), 16)["is_left"] for index in range(10))
