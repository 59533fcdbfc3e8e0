"""The synthetic set's entry points refuse bad arguments with messages naming them."""

import pytest

from clip_hand3d.data.synthetic.dataset import iter_synthetic, load_synthetic
from clip_hand3d.data.synthetic.freihand_export import write_synthetic_freihand
from clip_hand3d.data.synthetic.render import render_sample
from tests.data.synthetic.helpers import SIZE


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: render_sample(0, split="validation", image_size=SIZE), "split must be one of"),
        (lambda: render_sample(-1, image_size=SIZE), "index must be a non-negative integer"),
        (lambda: render_sample(0, seed=-2, image_size=SIZE), "seed must be a non-negative integer"),
        (lambda: render_sample(0, image_size=8), "image_size must be"),
        (lambda: render_sample(0, image_size=SIZE, p_left=1.5), "p_left must be a probability"),
        (lambda: load_synthetic(num_samples=0), "num_samples must be a positive integer"),
        (lambda: load_synthetic(num_samples=2, seed=-1), "seed must be a non-negative integer"),
        (lambda: iter_synthetic(split="val"), "split must be one of"),
        (lambda: write_synthetic_freihand("unused", 1, split="train"), "split must be one of"),
    ],
)
def test_bad_arguments_raise_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()
