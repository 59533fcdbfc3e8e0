"""Tests of the synthetic set as `datasets` objects: the schema, the same rows as `render_sample`, streaming."""

import itertools

import numpy as np

from clip_hand3d.data.features import HAND_FEATURES_WITH_MESH
from clip_hand3d.data.synthetic.dataset import iter_synthetic, load_synthetic
from clip_hand3d.data.synthetic.render import render_sample
from tests.data.synthetic.helpers import SIZE, assert_same_rows, pixels


def test_load_synthetic_rows_follow_the_schema_and_equal_render_sample(tmp_path):
    dataset = load_synthetic(num_samples=3, seed=2, image_size=SIZE, cache_dir=tmp_path)
    assert dataset.features == HAND_FEATURES_WITH_MESH
    assert len(dataset) == 3
    assert_same_rows(dataset[2], render_sample(2, seed=2, image_size=SIZE))
    row = dataset.with_format("numpy")[0]
    shapes = {"joints_xyz": (21, 3), "vertices_xyz": (778, 3), "K": (3, 3), "joints_uv": (21, 2), "box": (4,)}
    for name, shape in shapes.items():
        assert row[name].shape == shape and row[name].dtype == np.float32, name
    assert dataset[0]["image"].mode == "RGB" and dataset[0]["image"].size == (SIZE, SIZE)
    assert dataset[0]["mask"].mode == "L" and dataset[0]["mask"].size == (SIZE, SIZE)
    test_split = load_synthetic(num_samples=1, seed=2, image_size=SIZE, split="test", cache_dir=tmp_path)
    assert not np.array_equal(pixels(test_split[0]["image"]), pixels(dataset[0]["image"]))


def test_iter_synthetic_streams_the_same_rows():
    rows = list(iter_synthetic(num_samples=2, seed=2, image_size=32))
    assert len(rows) == 2
    assert_same_rows(rows[1], render_sample(1, seed=2, image_size=32))
    endless = list(itertools.islice(iter_synthetic(seed=2, image_size=32), 3))
    assert_same_rows(endless[2], render_sample(2, seed=2, image_size=32))
