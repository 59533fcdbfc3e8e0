"""Tests of the on-the-fly augmentation, the uvd targets, the two-view mode and the batch collation."""

import dataclasses
import pickle

import datasets
import numpy as np
import PIL.Image
import pytest
import torch
from scipy import ndimage

from clip_hand3d.geometry import apply_affine, project, square_box_affine, to_homogeneous_affine
from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.image_utils import crop_image
from clip_hand3d.training.augmentation import (
    HandAugmentationConfig,
    ViewAugmentation,
    augmentation_affine,
    degrade,
    jitter_colour,
    sample_view_augmentation,
)
from clip_hand3d.training.data import collate_hand_batch
from clip_hand3d.training.transforms import HandBatchTransform, HandSampleTransform

IMAGE_SIZE = 96
HEATMAP_SIZE = 24
DEPTH_SIZE = 24
DEPTH_RANGE = 0.3
SOURCE_SIZE = 160
NUM_VERTICES = 778
K = np.array([[200.0, 0.0, 80.0], [0.0, 200.0, 80.0], [0.0, 0.0, 1.0]])
BOX = (40.0, 40.0, 120.0, 120.0)
GEOMETRY_ONLY = dataclasses.replace(HandAugmentationConfig.train(), brightness=0.0, contrast=0.0, saturation=0.0)


def make_joints() -> np.ndarray:
    """21 joints on a 5 x 5 grid of pixels 20 apart (80 +- 40 px), at depths 0.48 to 0.52 m."""
    joints = []
    for index in range(21):
        column, row = index % 5, index // 5
        depth = 0.5 + 0.01 * ((index * 7) % 5 - 2)
        joints.append([(column - 2) * 20 * depth / 200, (row - 2) * 20 * depth / 200, depth])
    return np.array(joints)


def make_vertices() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal([0.0, 0.0, 0.5], 0.03, size=(NUM_VERTICES, 3))


def make_image(points_uv: np.ndarray | None = None) -> PIL.Image.Image:
    """A textured RGB image; with `points_uv`, black with a bright 3 x 3 dot at each (rounded) point instead."""
    if points_uv is None:
        rng = np.random.default_rng(1)
        return PIL.Image.fromarray(rng.integers(0, 256, size=(SOURCE_SIZE, SOURCE_SIZE, 3), dtype=np.uint8))
    pixels = np.zeros((SOURCE_SIZE, SOURCE_SIZE, 3), dtype=np.uint8)
    for x, y in np.rint(points_uv).astype(int):
        pixels[y - 1 : y + 2, x - 1 : x + 2] = 255
    return PIL.Image.fromarray(pixels)


def make_row(**changes) -> dict:
    row = {
        "image": make_image(),
        "joints_xyz": make_joints(),
        "vertices_xyz": make_vertices(),
        "K": K,
        "scale": 0.03,
        "box": BOX,
        "is_left": False,
    }
    row.update(changes)
    return row


def make_processor(**kwargs) -> CLIPHand3DImageProcessor:
    return CLIPHand3DImageProcessor(
        image_size=IMAGE_SIZE, heatmap_size=HEATMAP_SIZE, depth_size=DEPTH_SIZE, depth_range=DEPTH_RANGE, **kwargs
    )


def make_transform(augmentation: HandAugmentationConfig, **kwargs) -> HandSampleTransform:
    return HandSampleTransform(make_processor(), augmentation=augmentation, **kwargs)


def unnormalise(pixel_values: torch.Tensor) -> np.ndarray:
    """(3, S, S) normalised -> (S, S, 3) in [0, 1]."""
    mean = np.array([0.485, 0.456, 0.406])
    std = np.array([0.229, 0.224, 0.225])
    return pixel_values.numpy().transpose(1, 2, 0) * std + mean


def find_dots(pixels: np.ndarray) -> np.ndarray:
    """Intensity-weighted centres (x, y) of the bright blobs of an (S, S, 3) image in [0, 1]."""
    brightness = pixels.mean(axis=2)
    labels, count = ndimage.label(brightness > 0.2)
    centres_yx = ndimage.center_of_mass(brightness, labels, range(1, count + 1))
    return np.array(centres_yx).reshape(-1, 2)[:, ::-1]


def test_crop_image_puts_pixel_centres_at_integers():
    pixels = np.zeros((20, 20), dtype=np.uint8)
    pixels[7, 10] = 255
    affine = np.array([[2.0, 0.0, -5.0], [0.0, 2.0, -3.0]])
    output = np.asarray(crop_image(PIL.Image.fromarray(pixels).convert("RGB"), affine, 40), dtype=np.float64)
    (centre_y, centre_x) = ndimage.center_of_mass(output[..., 0])
    assert centre_x == pytest.approx(2 * 10 - 5, abs=0.02)
    assert centre_y == pytest.approx(2 * 7 - 3, abs=0.02)


def test_crop_image_box_filters_strong_shrinks():
    # A 1-pixel checkerboard shrunk 4 times: plain bilinear sampling would alias it to black or white.
    checkerboard = (np.indices((200, 200)).sum(axis=0) % 2 * 255).astype(np.uint8)
    image = PIL.Image.fromarray(checkerboard).convert("RGB")
    output = np.asarray(crop_image(image, np.array([[0.25, 0.0, 0.0], [0.0, 0.25, 0.0]]), 40), dtype=np.float64)
    assert np.abs(output[5:35, 5:35] - 127.5).max() < 2
    # A white square still lands where the affine puts it: pixels 80..95 (centre 87.5) -> 0.25 * 87.5 + 3.
    pixels = np.zeros((200, 200), dtype=np.uint8)
    pixels[80:96, 80:96] = 255
    affine = np.array([[0.25, 0.0, 3.0], [0.0, 0.25, 3.0]])
    output = np.asarray(crop_image(PIL.Image.fromarray(pixels).convert("RGB"), affine, 40), dtype=np.float64)
    centre_y, centre_x = ndimage.center_of_mass(output[..., 0])
    assert centre_x == pytest.approx(0.25 * 87.5 + 3, abs=0.05)
    assert centre_y == pytest.approx(0.25 * 87.5 + 3, abs=0.05)


def test_augmentation_affine_hand_computed():
    view = ViewAugmentation(rotation_degrees=90.0, scale=2.0, shift=(0.1, 0.0))
    affine = augmentation_affine(view, image_size=100)
    points = apply_affine(np.array([[50.0, 50.0], [60.0, 50.0], [50.0, 70.0]]), affine)
    np.testing.assert_allclose(points, [[60.0, 50.0], [60.0, 55.0], [50.0, 50.0]], atol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dots_at_projected_joints_land_on_transformed_projection(seed):
    joints = make_joints()
    row = make_row(image=make_image(project(joints, K)))
    sample = make_transform(GEOMETRY_ONLY, seed=seed)(row)
    expected = project(sample["joints_xyz"].numpy().astype(np.float64), sample["K_crop"].numpy())
    inside = ((expected > 4) & (expected < IMAGE_SIZE - 5)).all(axis=1)
    assert inside.sum() >= 10
    dots = find_dots(unnormalise(sample["pixel_values"]))
    distances = np.linalg.norm(expected[inside, None] - dots[None], axis=-1).min(axis=1)
    assert distances.max() < 1.5
    # The augmentation really moved the joints away from the plain crop.
    plain = apply_affine(project(joints, K), square_box_affine(BOX, IMAGE_SIZE, margin=1.3))
    assert np.abs(expected - plain).max() > 2.0


def test_uvd_targets_are_the_crop_projection_in_heatmap_units():
    sample = make_transform(GEOMETRY_ONLY, seed=3)(make_row())
    joints_xyz = sample["joints_xyz"].numpy().astype(np.float64)
    K_crop = sample["K_crop"].numpy().astype(np.float64)
    uv = project(joints_xyz, K_crop) * HEATMAP_SIZE / IMAGE_SIZE
    np.testing.assert_allclose(sample["joints_uvd"][:, :2].numpy(), uv, atol=1e-3)
    # R turns about the optical axis: z, hence d, is the original one.
    depth = make_joints()[:, 2]
    d = (depth - depth[0]) / DEPTH_RANGE * DEPTH_SIZE + DEPTH_SIZE / 2
    np.testing.assert_allclose(sample["joints_uvd"][:, 2].numpy(), d, atol=1e-4)
    np.testing.assert_allclose(joints_xyz[:, 2], depth, atol=1e-6)


def test_vertices_move_with_the_joints():
    sample = make_transform(GEOMETRY_ONLY, seed=4)(make_row())
    # The rotation R of the crop camera, recovered from the joints: joints_xyz = X @ R.T.
    R_transposed = np.linalg.lstsq(make_joints(), sample["joints_xyz"].numpy().astype(np.float64), rcond=None)[0]
    assert not np.allclose(R_transposed, np.eye(3), atol=1e-3)
    vertices_xyz = make_vertices() @ R_transposed
    K_crop = sample["K_crop"].numpy().astype(np.float64)
    uv = project(vertices_xyz, K_crop) * HEATMAP_SIZE / IMAGE_SIZE
    d = (vertices_xyz[:, 2] - sample["joints_xyz"][0, 2].item()) / DEPTH_RANGE * DEPTH_SIZE + DEPTH_SIZE / 2
    assert sample["vertices_uvd"].shape == (NUM_VERTICES, 3)
    np.testing.assert_allclose(sample["vertices_uvd"].numpy(), np.concatenate([uv, d[:, None]], axis=1), atol=1e-3)
    assert sample["vertices_valid"].item() is True


def test_eval_preset_hand_computed_uvd():
    sample = make_transform(HandAugmentationConfig.eval())(make_row())
    # Box (40, 40, 120, 120): side 1.3 * 80 = 104, centre (80, 80) -> crop (48, 48); crop scale 96 / 104.
    crop_scale = IMAGE_SIZE / 104
    joints = make_joints()
    pixel_x = 200 * joints[:, 0] / joints[:, 2] + 80
    pixel_y = 200 * joints[:, 1] / joints[:, 2] + 80
    u = (48 + (pixel_x - 80) * crop_scale) * HEATMAP_SIZE / IMAGE_SIZE
    v = (48 + (pixel_y - 80) * crop_scale) * HEATMAP_SIZE / IMAGE_SIZE
    d = (joints[:, 2] - joints[0, 2]) / DEPTH_RANGE * DEPTH_SIZE + DEPTH_SIZE / 2
    np.testing.assert_allclose(sample["joints_uvd"].numpy(), np.stack([u, v, d], axis=1), atol=1e-4)
    # The wrist projects to pixel (40, 40): crop 48 - 40 * 96 / 104, a quarter of it in the heatmap; d in the middle.
    wrist = (48 - 40 * crop_scale) / 4
    np.testing.assert_allclose(sample["joints_uvd"][0].numpy(), [wrist, wrist, DEPTH_SIZE / 2], atol=1e-5)
    np.testing.assert_allclose(sample["joints_xyz"].numpy(), joints, atol=1e-6)
    assert sample["joints_valid"].all()
    assert sample["is_left"].item() is False
    assert sample["scale"].item() == pytest.approx(0.03)


def test_eval_preset_is_deterministic_and_has_no_jitter():
    transform = make_transform(HandAugmentationConfig.eval())
    first, second = transform(make_row()), transform(make_row())
    for name in first:
        assert torch.equal(first[name], second[name]), name
    affine = square_box_affine(BOX, IMAGE_SIZE, margin=1.3)
    np.testing.assert_allclose(first["K_crop"].numpy(), to_homogeneous_affine(affine) @ K, rtol=1e-6)
    plain_crop = np.asarray(crop_image(make_image(), affine, IMAGE_SIZE), dtype=np.float64) / 255
    np.testing.assert_allclose(unnormalise(first["pixel_values"]), plain_crop, atol=1e-5)


def test_left_hand_is_mirrored():
    transform = make_transform(HandAugmentationConfig.eval())
    right = transform(make_row(is_left=False))
    left = transform(make_row(is_left=True))
    # The crop mirrors x -> S - x (pixel centres at integers): column j of the left crop is column S - j of the right.
    mirrored = torch.flip(right["pixel_values"], dims=[2])
    # Up to one uint8 level apart: PIL's bilinear rounding depends on the order of the neighbours.
    one_level = 1.01 / 255 / 0.224
    torch.testing.assert_close(left["pixel_values"][:, :, 1:], mirrored[:, :, :-1], atol=one_level, rtol=0)
    assert (left["pixel_values"][:, :, 1:] - mirrored[:, :, :-1]).abs().mean() < 0.05 * one_level
    expected_xyz = right["joints_xyz"] * torch.tensor([-1.0, 1.0, 1.0])
    torch.testing.assert_close(left["joints_xyz"], expected_xyz)
    torch.testing.assert_close(left["joints_uvd"][:, 0], HEATMAP_SIZE - right["joints_uvd"][:, 0], atol=1e-4, rtol=0)
    torch.testing.assert_close(left["joints_uvd"][:, 1:], right["joints_uvd"][:, 1:], atol=1e-4, rtol=0)
    assert left["is_left"].item() is True


def test_flip_toggles_handedness():
    flip_always = dataclasses.replace(HandAugmentationConfig.eval(), flip_probability=1.0)
    flipped = make_transform(flip_always, seed=0)(make_row(is_left=False))
    left = make_transform(HandAugmentationConfig.eval())(make_row(is_left=True))
    for name in left:
        torch.testing.assert_close(flipped[name], left[name], msg=name)


def test_two_views_map_into_each_other():
    sample = make_transform(GEOMETRY_ONLY, two_views=True, seed=5)(make_row())
    affine = sample["view2_affine_uv"].numpy().astype(np.float64)
    assert affine.shape == (2, 3) and sample["view2_affine_uv"].dtype == torch.float32
    for name in ("joints_uvd", "vertices_uvd"):
        view1 = sample[name].numpy().astype(np.float64)
        view2 = sample[name + "_view2"].numpy().astype(np.float64)
        assert np.abs(view1[:, :2] - view2[:, :2]).max() > 1.0, "the views should differ"
        np.testing.assert_allclose(apply_affine(view1[:, :2], affine), view2[:, :2], atol=1e-4)
        np.testing.assert_allclose(view1[:, 2], view2[:, 2], atol=1e-4)
    assert not torch.equal(sample["pixel_values"], sample["pixel_values_view2"])
    assert sample["joints_valid_view2"].shape == (21,)


def test_colour_jitter_changes_pixels_not_labels():
    colour_only = dataclasses.replace(
        HandAugmentationConfig.eval(), brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1
    )
    jittered = make_transform(colour_only, seed=6)(make_row())
    plain = make_transform(HandAugmentationConfig.eval())(make_row())
    assert (jittered["pixel_values"] - plain["pixel_values"]).abs().mean() > 0.01
    for name in plain:
        if name != "pixel_values":
            assert torch.equal(jittered[name], plain[name]), name


def test_jitter_colour_hand_computed():
    pixels = np.array([[[0.2, 0.4, 0.6], [0.0, 0.5, 1.0]]], dtype=np.float32)
    grey = pixels @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_allclose(jitter_colour(pixels, ViewAugmentation()), pixels, atol=1e-6)
    np.testing.assert_allclose(
        jitter_colour(pixels, ViewAugmentation(brightness=1.5)), [[[0.3, 0.6, 0.9], [0, 0.75, 1]]], atol=1e-6
    )
    np.testing.assert_allclose(
        jitter_colour(pixels, ViewAugmentation(saturation=0.0)), np.repeat(grey[..., None], 3, -1), atol=1e-6
    )
    np.testing.assert_allclose(
        jitter_colour(pixels, ViewAugmentation(contrast=0.0)), np.full_like(pixels, grey.mean()), atol=1e-6
    )
    # Contrast blends with the mean grey level after brightness.
    brighter_grey = 1.5 * grey.mean()
    expected = np.clip((1.5 * pixels - brighter_grey) * 0.5 + brighter_grey, 0, 1)
    both = jitter_colour(pixels, ViewAugmentation(brightness=1.5, contrast=0.5))
    np.testing.assert_allclose(both, expected, atol=1e-6)
    assert both.dtype == np.float32 and both.shape == pixels.shape
    # A hue rotation keeps the grey level and changes the colour; a full turn is the identity.
    turned = jitter_colour(pixels[:, :1], ViewAugmentation(hue=0.25))
    assert np.abs(turned - pixels[:, :1]).max() > 0.05
    np.testing.assert_allclose(turned @ np.array([0.299, 0.587, 0.114]), grey[:, :1], atol=1e-5)
    np.testing.assert_allclose(jitter_colour(pixels, ViewAugmentation(hue=1.0)), pixels, atol=1e-5)


def test_rows_without_vertices():
    for row in (make_row(vertices_xyz=None), {k: v for k, v in make_row().items() if k != "vertices_xyz"}):
        sample = make_transform(GEOMETRY_ONLY, seed=0)(row)
        assert sample["vertices_valid"].item() is False
        assert torch.equal(sample["vertices_uvd"], torch.zeros(NUM_VERTICES, 3))


def test_missing_box_uses_the_joints_box():
    without_box = make_transform(HandAugmentationConfig.eval())(make_row(box=None))
    with_box = make_transform(HandAugmentationConfig.eval())(make_row())
    torch.testing.assert_close(without_box["joints_uvd"], with_box["joints_uvd"])


def test_seeded_transform_is_reproducible():
    first = make_transform(HandAugmentationConfig.train(), seed=7)
    second = make_transform(HandAugmentationConfig.train(), seed=7)
    for _ in range(2):
        a, b = first(make_row()), second(make_row())
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["joints_uvd"], b["joints_uvd"])
    assert not torch.equal(
        first(make_row())["joints_uvd"],
        make_transform(HandAugmentationConfig.train(), seed=8)(make_row())["joints_uvd"],
    )
    by_index = [first(make_row(), rng=first.generator_for(3))["joints_uvd"] for _ in range(2)]
    assert torch.equal(by_index[0], by_index[1])
    first.set_epoch(1)
    assert not torch.equal(first(make_row(), rng=first.generator_for(3))["joints_uvd"], by_index[0])


def test_sample_view_augmentation_respects_ranges():
    rng = np.random.default_rng(0)
    config = HandAugmentationConfig.train()
    views = [sample_view_augmentation(config, rng) for _ in range(200)]
    assert all(abs(view.rotation_degrees) <= 45 for view in views)
    assert max(abs(view.rotation_degrees) for view in views) > 30
    assert all(0.75 <= view.scale <= 1.25 for view in views)
    assert all(max(abs(s) for s in view.shift) <= 0.1 for view in views)
    assert all(0.8 <= view.brightness <= 1.2 and view.hue == 0 for view in views)
    never = dataclasses.replace(config, rotation_probability=0.0)
    assert all(sample_view_augmentation(never, rng).rotation_degrees == 0 for _ in range(20))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"K": None}, "'K'"),
        ({"joints_xyz": np.zeros((20, 3))}, r"'joints_xyz' must have shape \(21, 3\)"),
        ({"joints_xyz": -make_joints()}, "'joints_xyz' has points at or behind the camera"),
        ({"vertices_xyz": np.ones((10, 3))}, r"'vertices_xyz' must have shape \(778, 3\)"),
        ({"K": np.eye(2)}, r"'K' must have shape \(3, 3\)"),
        ({"K": np.full((3, 3), np.nan)}, "'K' has non-finite values"),
        ({"scale": -1.0}, "'scale' must be one positive number"),
        ({"box": (10, 10, 5, 20)}, "'box' must be"),
        ({"is_left": "yes"}, "'is_left' must be a bool"),
        ({"image": "picture.png"}, "field 'image' must be a PIL image or a numpy array"),
        ({"image": np.full((8, 8, 3), 2.0, dtype=np.float32)}, r"field 'image': float images must be in \[0, 1\]"),
    ],
)
def test_bad_rows_name_the_field(changes, message):
    with pytest.raises(ValueError, match=message):
        make_transform(HandAugmentationConfig.eval())(make_row(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rotation_degrees": -1.0}, "rotation_degrees must be >= 0"),
        ({"flip_probability": 2.0}, r"flip_probability must be a probability in \[0, 1\]"),
        ({"scale_range": (1.2, 0.8)}, "scale_range must be"),
        ({"hue": 0.7}, "hue must be <= 0.5"),
        ({"brightness": 1.5}, "brightness must be <= 1"),
        ({"blur_probability": 1.5}, r"blur_probability must be a probability in \[0, 1\]"),
        ({"noise_std": -0.1}, "noise_std must be >= 0"),
        ({"occlusion_size": (0.5, 1.5)}, "occlusion_size must be"),
    ],
)
def test_bad_augmentation_config(changes, message):
    with pytest.raises(ValueError, match=message):
        HandAugmentationConfig(**changes)


def make_dataset() -> datasets.Dataset:
    features = datasets.Features(
        {
            "image": datasets.Image(),
            "joints_xyz": datasets.Array2D((21, 3), "float32"),
            "vertices_xyz": datasets.Array2D((NUM_VERTICES, 3), "float32"),
            "K": datasets.Array2D((3, 3), "float32"),
            "scale": datasets.Value("float32"),
            "box": datasets.List(datasets.Value("float32"), length=4),
            "is_left": datasets.Value("bool"),
        }
    )
    rows = [make_row(), make_row(is_left=True, vertices_xyz=None), make_row()]
    columns = {name: [row[name] for row in rows] for name in features}
    return datasets.Dataset.from_dict(columns, features=features)


def test_with_transform_and_collate():
    transform = make_transform(HandAugmentationConfig.train(), two_views=True, seed=0)
    dataset = make_dataset().with_transform(HandBatchTransform(transform))
    sample = dataset[1]
    expected_shapes = {
        "pixel_values": (3, IMAGE_SIZE, IMAGE_SIZE),
        "joints_xyz": (21, 3),
        "K_crop": (3, 3),
        "joints_uvd": (21, 3),
        "vertices_uvd": (NUM_VERTICES, 3),
        "vertices_valid": (),
        "joints_valid": (21,),
        "scale": (),
        "is_left": (),
        "pixel_values_view2": (3, IMAGE_SIZE, IMAGE_SIZE),
        "joints_uvd_view2": (21, 3),
        "vertices_uvd_view2": (NUM_VERTICES, 3),
        "joints_valid_view2": (21,),
        "view2_affine_uv": (2, 3),
    }
    assert {name: tuple(value.shape) for name, value in sample.items()} == expected_shapes
    assert sample["vertices_valid"].item() is False and sample["is_left"].item() is True

    loader = torch.utils.data.DataLoader(dataset, batch_size=3, collate_fn=collate_hand_batch)
    batch = next(iter(loader))
    assert {name: tuple(value.shape) for name, value in batch.items()} == {
        name: (3, *shape) for name, shape in expected_shapes.items()
    }
    assert batch["vertices_valid"].tolist() == [True, False, True]
    assert batch["joints_valid"].dtype == torch.bool and batch["pixel_values"].dtype == torch.float32


def test_batch_transform_with_index_column_is_order_independent():
    transform = make_transform(HandAugmentationConfig.train(), seed=0)
    dataset = make_dataset().add_column("index", [0, 1, 2]).with_transform(HandBatchTransform(transform, "index"))
    forward = dataset[[0, 2]]["joints_uvd"]
    backward = dataset[[2, 0]]["joints_uvd"]
    assert torch.equal(forward[0], backward[1]) and torch.equal(forward[1], backward[0])
    transform.set_epoch(1)
    assert not torch.equal(dataset[[0]]["joints_uvd"][0], forward[0])
    transform.set_epoch(0)
    # DataLoader workers started with "spawn" pickle the transform.
    restored = pickle.loads(pickle.dumps(HandBatchTransform(transform, "index")))
    restored_dataset = make_dataset().add_column("index", [0, 1, 2]).with_transform(restored)
    assert torch.equal(restored_dataset[[0, 2]]["joints_uvd"][1], forward[1])
    with pytest.raises(ValueError, match="index_column 'row_id'"):
        make_dataset().with_transform(HandBatchTransform(transform, "row_id"))[0]


def test_collate_stacks_and_checks_shapes():
    samples = [
        {"a": torch.zeros(2, 3), "flag": torch.tensor(True)},
        {"a": torch.ones(2, 3), "flag": torch.tensor(False)},
    ]
    batch = collate_hand_batch(samples)
    assert batch["a"].shape == (2, 2, 3) and batch["a"][1].sum() == 6
    assert batch["flag"].tolist() == [True, False]
    with pytest.raises(ValueError, match="field 'a' has different shapes"):
        collate_hand_batch([{"a": torch.zeros(2)}, {"a": torch.zeros(3)}])
    with pytest.raises(ValueError, match="sample 1 has fields"):
        collate_hand_batch([{"a": torch.zeros(2)}, {"b": torch.zeros(2)}])
    with pytest.raises(ValueError, match="at least one sample"):
        collate_hand_batch([])


def test_degrade_draws_the_occluding_rectangle_in_its_colour_and_leaves_the_rest():
    pixels = np.full((20, 20, 3), 0.5, dtype=np.float32)
    view = ViewAugmentation(occlusion_box=(0.25, 0.5, 0.5, 1.0), occlusion_color=(1.0, 0.0, 0.25))
    degraded = degrade(pixels, view)
    np.testing.assert_array_equal(degraded[10:20, 5:10], np.broadcast_to([1.0, 0.0, 0.25], (10, 5, 3)))
    outside = np.ones((20, 20), bool)
    outside[10:20, 5:10] = False
    np.testing.assert_array_equal(degraded[outside], 0.5)


def test_degrade_blurs_a_point_into_a_gaussian_of_the_given_sigma_keeping_its_mass():
    pixels = np.zeros((41, 41, 3), dtype=np.float32)
    pixels[20, 20] = 1.0
    blurred = degrade(pixels, ViewAugmentation(blur_sigma=2.0 / 41))  # 2 px
    assert blurred[..., 0].sum() == pytest.approx(1.0, abs=1e-4)
    offsets = np.arange(41) - 20
    variance = (blurred[20, :, 0] / blurred[20, :, 0].sum() * offsets**2).sum()
    assert variance == pytest.approx(4.0, rel=0.02)  # sigma^2
    np.testing.assert_array_equal(degrade(pixels, ViewAugmentation()), pixels)  # nothing on: unchanged


def test_degrade_adds_noise_of_the_given_std_reproducibly_from_its_seed():
    pixels = np.full((64, 64, 3), 0.5, dtype=np.float32)
    view = ViewAugmentation(noise_std=0.05, noise_seed=7)
    noisy = degrade(pixels, view)
    assert (noisy - 0.5).std() == pytest.approx(0.05, rel=0.05)
    assert abs((noisy - 0.5).mean()) < 0.005
    np.testing.assert_array_equal(noisy, degrade(pixels, view))
    assert not np.array_equal(noisy, degrade(pixels, dataclasses.replace(view, noise_seed=8)))


def test_degradations_are_drawn_at_their_rates_within_their_ranges_with_a_fixed_number_of_draws():
    config = HandAugmentationConfig.train(degradations=True)
    rng = np.random.default_rng(0)
    views = [sample_view_augmentation(config, rng) for _ in range(1000)]
    for rate in (
        np.mean([view.occlusion_box is not None for view in views]),
        np.mean([view.blur_sigma > 0 for view in views]),
        np.mean([view.noise_std > 0 for view in views]),
    ):
        assert rate == pytest.approx(0.3, abs=0.05)
    boxes = np.array([view.occlusion_box for view in views if view.occlusion_box is not None])
    sides = boxes[:, 2:] - boxes[:, :2]
    assert sides.min() >= 0.15 - 1e-9 and sides.max() <= 0.4 + 1e-9
    centres = (boxes[:, 2:] + boxes[:, :2]) / 2
    assert centres.min() >= 0.2 and centres.max() <= 0.8
    assert max(view.blur_sigma for view in views) <= 0.008
    assert max(view.noise_std for view in views) <= 0.04
    # The geometry and colour draws do not depend on whether the degradations are on.
    plain, degraded = (
        [sample_view_augmentation(preset, np.random.default_rng(1)) for _ in range(3)]
        for preset in (HandAugmentationConfig.train(), config)
    )
    assert [(v.rotation_degrees, v.scale, v.brightness) for v in plain] == [
        (v.rotation_degrees, v.scale, v.brightness) for v in degraded
    ]
    assert all(view.occlusion_box is None and view.blur_sigma == 0 and view.noise_std == 0 for view in plain)


def test_a_transform_with_degradations_changes_the_pixels_but_not_the_targets():
    plain = make_transform(HandAugmentationConfig.train(), seed=0)
    degraded = make_transform(
        dataclasses.replace(
            HandAugmentationConfig.train(), occlusion_probability=1.0, blur_probability=1.0, noise_probability=1.0
        ),
        seed=0,
    )
    first, second = plain(make_row(), rng=plain.generator_for(0)), degraded(make_row(), rng=degraded.generator_for(0))
    torch.testing.assert_close(first["joints_uvd"], second["joints_uvd"])
    assert not torch.equal(first["pixel_values"], second["pixel_values"])
