"""Training data: the training transform crops as the processor does, and transformed rows read in numpy format
give the samples the transform gives on plain rows."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from clip_hand3d.processing import CLIPHand3DProcessor
from clip_hand3d.training.augmentation import HandAugmentationConfig
from clip_hand3d.training.data import INDEX_COLUMN, training_transform, with_sample_transform
from tests.training.test_transforms import make_dataset, make_processor, make_transform


def test_training_transform_crops_exactly_as_the_processor_and_its_targets_project_back_to_the_labels():
    # A processor unlike the defaults: training must crop and normalise with its margin, mean and std.
    processor = CLIPHand3DProcessor(
        make_processor(crop_margin=1.6, image_mean=(0.5, 0.4, 0.3), image_std=(0.2, 0.3, 0.25))
    )
    transform = training_transform(processor, augment=False)
    dataset = make_dataset()
    for position in range(len(dataset)):
        row = dataset[position]
        sample = transform(row)
        inputs = processor(images=[row["image"]], boxes=[row["box"]], is_left=[row["is_left"]])
        torch.testing.assert_close(sample["pixel_values"], inputs["pixel_values"][0], atol=1e-6, rtol=0)

        outputs = SimpleNamespace(
            joints_uvd=sample["joints_uvd"][None].double(),
            vertices_uvd=sample["vertices_uvd"][None].double(),
            faces=torch.zeros(1, 3, dtype=torch.long),
        )
        joints = np.asarray(row["joints_xyz"], dtype=np.float64)
        hand = processor.post_process(outputs, inputs, K=np.asarray(row["K"]), root_depth=joints[0, 2])[0]
        np.testing.assert_allclose(hand["joints_cam"], joints, atol=1e-5, rtol=0)
        if row["vertices_xyz"] is not None:
            np.testing.assert_allclose(hand["vertices_cam"], np.asarray(row["vertices_xyz"]), atol=1e-5, rtol=0)
    assert [row["is_left"] for row in dataset] == [False, True, False]


def test_training_transform_follows_a_changed_crop_margin():
    # The skew this contract prevents: a processor saved with another margin trains on the crops it serves.
    row = make_dataset()[0]
    wide, tight = (training_transform(make_processor(crop_margin=margin))(row) for margin in (2.0, 1.2))
    # The crop's focal length: the image's (200 px) times crop pixels per image pixel, S / (margin x box side).
    box_side = row["box"][2] - row["box"][0]
    image_size = make_processor().image_size
    assert float(wide["K_crop"][0, 0]) == pytest.approx(200.0 * image_size / (2.0 * box_side), rel=1e-6)
    assert float(tight["K_crop"][0, 0]) == pytest.approx(200.0 * image_size / (1.2 * box_side), rel=1e-6)


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
