"""Crops computed once: the same samples as the transform gives, uint8 on disk, cached, and only for
transforms without randomness."""

import datasets
import pytest
import torch

from clip_hand3d.training.augmentation import HandAugmentationConfig
from clip_hand3d.training.crop_cache import CropBatch, PrecomputedHandRows, hand_samples, precompute_samples
from clip_hand3d.training.data import INDEX_COLUMN, TransformedHandRows
from tests.training.test_transforms import IMAGE_SIZE, make_dataset, make_transform


def indexed_dataset() -> datasets.Dataset:
    # Reordered by select, so that row positions, indices and the mesh-less row (index 11) no longer coincide.
    return make_dataset().add_column(INDEX_COLUMN, [10, 11, 12]).select([1, 2, 0])


def test_uint8_pixels_are_the_crop_that_normalize_pixels_turns_into_the_network_input():
    row = make_dataset()[0]
    floats = make_transform(HandAugmentationConfig.eval())(row)
    uint8_transform = make_transform(HandAugmentationConfig.eval(), uint8_pixels=True)
    crop = uint8_transform(row)
    assert crop["pixel_values"].dtype == torch.uint8
    assert crop["pixel_values"].shape == (3, IMAGE_SIZE, IMAGE_SIZE)
    assert crop["pixel_values"].max() > 200  # the bright dots of the test image, not values in [0, 1]
    torch.testing.assert_close(uint8_transform.normalize_pixels(crop["pixel_values"]), floats["pixel_values"])
    torch.testing.assert_close(crop["joints_uvd"], floats["joints_uvd"])


def test_precomputed_samples_match_the_transform_and_keep_a_missing_mesh_missing():
    transform = make_transform(HandAugmentationConfig.eval())
    dataset = indexed_dataset()
    samples = PrecomputedHandRows(precompute_samples(dataset, transform), transform)
    assert len(samples) == 3
    read = samples.__getitems__([0, 1, 2])
    assert [int(sample[INDEX_COLUMN]) for sample in read] == [11, 12, 10]
    assert [bool(sample["vertices_valid"]) for sample in read] == [False, True, True]
    for position, sample in enumerate(read):
        expected = transform(dataset[position])
        assert sorted(sample) == sorted([*expected, INDEX_COLUMN])
        for name, value in expected.items():
            assert sample[name].dtype == value.dtype, name
            torch.testing.assert_close(sample[name], value, msg=f"{name} of row {position}")
    assert not read[0]["vertices_uvd"].any()
    torch.testing.assert_close(samples[2]["pixel_values"], read[2]["pixel_values"])


def test_random_transforms_are_transformed_as_read_and_never_precomputed():
    dataset = indexed_dataset()
    for random_transform in (
        make_transform(HandAugmentationConfig.train(), seed=0),
        make_transform(HandAugmentationConfig.eval(), two_views=True),
    ):
        assert random_transform.is_random
        assert isinstance(hand_samples(dataset, random_transform), TransformedHandRows)
        with pytest.raises(ValueError, match="without augmentation or second view"):
            precompute_samples(dataset, random_transform)
    assert isinstance(hand_samples(dataset, make_transform(HandAugmentationConfig.eval())), PrecomputedHandRows)


def test_a_second_run_reads_the_cached_crops(tmp_path, monkeypatch):
    make_dataset().add_column(INDEX_COLUMN, [0, 1, 2]).save_to_disk(tmp_path / "rows")
    dataset = datasets.load_from_disk(tmp_path / "rows")
    transform = make_transform(HandAugmentationConfig.eval())
    first = precompute_samples(dataset, transform)
    assert first.cache_files and first.cache_files[0]["filename"].startswith(str(tmp_path))

    def no_cropping(self, batch):
        raise AssertionError("cropped again instead of reading the cache")

    monkeypatch.setattr(CropBatch, "__call__", no_cropping)
    second = precompute_samples(dataset, transform)
    assert second.cache_files == first.cache_files
    assert second["joints_uvd"] == first["joints_uvd"]
    other_depth_bins = make_transform(HandAugmentationConfig.eval())
    other_depth_bins.depth_range = 0.5
    with pytest.raises(AssertionError, match="cropped again"):
        precompute_samples(dataset, other_depth_bins)
