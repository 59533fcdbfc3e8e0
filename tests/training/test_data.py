"""Training data: transformed rows read in numpy format give the samples the transform gives on plain rows."""

import pytest
import torch

from clip_hand3d.data.transforms import HandAugmentationConfig
from clip_hand3d.training.data import INDEX_COLUMN, with_sample_transform
from tests.data.test_transforms import make_dataset, make_transform


def test_samples_match_the_transform_on_python_rows_and_keep_a_missing_mesh_missing():
    transform = make_transform(HandAugmentationConfig.train(), seed=0)
    # Reordered by select, so that row positions, indices and the mesh-less row (index 1) no longer coincide.
    dataset = make_dataset().add_column(INDEX_COLUMN, [10, 11, 12]).select([1, 2, 0])
    transformed = with_sample_transform(dataset, transform)
    assert len(transformed) == 3
    samples = transformed.__getitems__([0, 1, 2])
    assert [sample[INDEX_COLUMN] for sample in samples] == [11, 12, 10]
    assert [bool(sample["vertices_valid"]) for sample in samples] == [False, True, True]
    for position, sample in enumerate(samples):
        row = dataset[position]
        expected = transform(row, rng=transform.generator_for(row[INDEX_COLUMN]))
        assert sorted(sample) == sorted([*expected, INDEX_COLUMN])
        for name, value in expected.items():
            torch.testing.assert_close(sample[name], value, msg=f"{name} of row {position}")
    torch.testing.assert_close(transformed[1]["pixel_values"], samples[1]["pixel_values"])


def test_rows_without_an_index_column_are_refused():
    transform = make_transform(HandAugmentationConfig.eval())
    with pytest.raises(ValueError, match="no 'index' column"):
        with_sample_transform(make_dataset(), transform)
