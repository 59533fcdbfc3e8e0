"""Streaming loaders yield the rows of the map-style loaders; the image-folder stream for pre-training."""

import datasets
import numpy as np
import PIL.Image
import pytest
from datasets import IterableDataset

from clip_hand3d.data import fixtures
from clip_hand3d.data.features import MissingDatasetFilesError
from clip_hand3d.data.freihand import load_freihand
from clip_hand3d.data.real_world import load_real_world
from clip_hand3d.data.rhd import load_rhd
from clip_hand3d.data.stb import load_stb
from clip_hand3d.data.streaming import (
    iter_hand_rows,
    load_freihand_streaming,
    load_image_folder_stream,
    load_real_world_streaming,
    load_rhd_streaming,
    load_stb_streaming,
)


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path, monkeypatch):
    """Creating an `IterableDataset` from a generator leaves a lock file in the cache: keep it out of ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf_datasets_cache")


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("releases")
    fixtures.write_freihand(root, num_labels=2, num_colour_versions=4, num_evaluation=2)
    fixtures.write_rhd(root)
    fixtures.write_stb(root, frames_per_sequence=1)
    fixtures.write_real_world(root, num_images=2)
    return root


def as_comparable(value):
    if isinstance(value, PIL.Image.Image):
        return np.asarray(value)
    if value is None or isinstance(value, bool | str):
        return value
    return np.asarray(value, dtype=np.float64)


def assert_same_rows(streamed_rows, map_rows):
    streamed_rows, map_rows = list(streamed_rows), list(map_rows)
    assert len(streamed_rows) == len(map_rows) > 0
    for streamed, expected in zip(streamed_rows, map_rows, strict=True):
        assert streamed.keys() == expected.keys()
        for key in expected:
            np.testing.assert_array_equal(as_comparable(streamed[key]), as_comparable(expected[key]), err_msg=key)


@pytest.mark.parametrize(
    ("load_stream", "load_map", "folder", "options"),
    [
        (load_freihand_streaming, load_freihand, "FreiHAND_pub_v2", {"split": "training"}),
        (load_freihand_streaming, load_freihand, "FreiHAND_pub_v2", {"split": "evaluation", "with_vertices": False}),
        (load_rhd_streaming, load_rhd, "RHD_published_v2", {"split": "training"}),
        (load_rhd_streaming, load_rhd, "RHD_published_v2", {"split": "evaluation", "hand_selection": "dominant"}),
        (load_stb_streaming, load_stb, "STB", {"split": "evaluation"}),
        (load_real_world_streaming, load_real_world, "real_world_testset", {}),
    ],
)
def test_streaming_yields_the_map_style_rows(data_root, tmp_path, load_stream, load_map, folder, options):
    streamed = load_stream(data_root / folder, **options)
    dataset = load_map(data_root / folder, cache_dir=tmp_path, **options)
    assert isinstance(streamed, IterableDataset)
    assert streamed.features == dataset.features
    assert_same_rows(streamed, dataset)


def test_iter_hand_rows_by_name(data_root, tmp_path):
    rows = list(iter_hand_rows("stb", data_root / "STB", split="evaluation"))
    assert len(rows) == 2
    np.testing.assert_allclose(
        np.stack([row["joints_xyz"] for row in rows]),
        load_stb(data_root / "STB", "evaluation", cache_dir=tmp_path).with_format("numpy")["joints_xyz"],
    )
    with pytest.raises(
        ValueError, match=r"unknown hand dataset 'ho3d'; known: \['freihand', 'real_world', 'rhd', 'stb'\]"
    ):
        iter_hand_rows("ho3d", data_root)


def test_missing_files_raise_when_the_stream_is_created(tmp_path):
    with pytest.raises(MissingDatasetFilesError, match="training_xyz.json"):
        load_freihand_streaming(tmp_path)
    with pytest.raises(MissingDatasetFilesError, match="anno_evaluation.pickle"):
        load_rhd_streaming(tmp_path, "evaluation")
    with pytest.raises(MissingDatasetFilesError, match="B1Counting_SK.mat"):
        load_stb_streaming(tmp_path, "evaluation")
    with pytest.raises(MissingDatasetFilesError, match="params.mat"):
        load_real_world_streaming(tmp_path)


def test_image_folder_stream_walks_the_tree_in_order(tmp_path):
    root = tmp_path / "images"
    for name, size in (("b/two.PNG", (5, 4)), ("a/deep/one.jpg", (3, 2)), ("c.jpeg", (7, 6)), ("top.png", (9, 8))):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        PIL.Image.new("RGB", size, (10, 20, 30)).save(root / name, format="PNG" if "png" in name.lower() else "JPEG")
    (root / "notes.txt").write_text("not an image")
    (root / "b" / "labels.json").write_text("{}")
    rows = list(load_image_folder_stream(root))
    assert [set(row) for row in rows] == [{"image"}] * 4
    # Files of a folder before its subfolders, subfolders in name order.
    assert [row["image"].size for row in rows] == [(7, 6), (9, 8), (3, 2), (5, 4)]


def test_image_folder_stream_errors(tmp_path):
    with pytest.raises(NotADirectoryError, match="does not exist or is not a folder"):
        load_image_folder_stream(tmp_path / "missing")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"no .jpg/.jpeg/.png images under"):
        load_image_folder_stream(tmp_path / "empty")
