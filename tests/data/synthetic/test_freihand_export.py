"""Tests of the FreiHAND layout of synthetic hands: a round trip through `load_freihand`."""

import json

import numpy as np
import pytest

from clip_hand3d.data.freihand import load_freihand
from clip_hand3d.data.synthetic.freihand_export import write_synthetic_freihand
from clip_hand3d.data.synthetic.render import render_sample
from tests.data.synthetic.helpers import SIZE, jpeg_round_trip, pixels


@pytest.mark.parametrize(("split", "stream"), [("training", "train"), ("evaluation", "test")])
def test_freihand_layout_round_trip_through_load_freihand(tmp_path, split, stream):
    out_dir = write_synthetic_freihand(tmp_path / "synthetic", num_samples=3, seed=4, split=split, image_size=SIZE)
    for role in ("K", "xyz", "verts", "scale"):
        with open(out_dir / f"{split}_{role}.json", encoding="utf-8") as file:
            assert len(json.load(file)) == 3
    assert sorted(path.name for path in (out_dir / split / "rgb").iterdir()) == [f"{i:08d}.jpg" for i in range(3)]

    dataset = load_freihand(out_dir, split, num_colour_versions=1, cache_dir=tmp_path / "cache")
    assert len(dataset) == 3
    for index in range(3):
        row, expected = dataset[index], render_sample(index, seed=4, image_size=SIZE, split=stream)
        for name in ("joints_xyz", "vertices_xyz", "K", "scale"):
            np.testing.assert_array_equal(np.asarray(row[name]), np.asarray(expected[name]), err_msg=name)
        np.testing.assert_allclose(row["box"], expected["box"], atol=1e-3)
        np.testing.assert_array_equal(pixels(row["image"]), pixels(jpeg_round_trip(expected["image"])))
        assert np.abs(pixels(row["image"]).astype(float) - pixels(expected["image"])).mean() < 6
        assert ((pixels(row["mask"]) > 127) == (pixels(expected["mask"]) > 127)).mean() > 0.99
