import json
from types import SimpleNamespace

import numpy as np
import PIL.Image
import pytest
import torch
from transformers import AutoImageProcessor

from clip_hand3d.geometry import apply_affine, camera_after_affine, project, square_box_affine
from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.image_utils import image_to_rgb

K = np.array([[600.0, 0.0, 320.0], [0.0, 610.0, 240.0], [0.0, 0.0, 1.0]])
IMAGE_HEIGHT, IMAGE_WIDTH = 480, 640


@pytest.fixture(scope="module")
def processor() -> CLIPHand3DImageProcessor:
    return CLIPHand3DImageProcessor()


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def unnormalize(processor: CLIPHand3DImageProcessor, pixel_values: np.ndarray) -> np.ndarray:
    """(3, S, S) normalised -> (S, S, 3) values in [0, 255]."""
    values = pixel_values.transpose(1, 2, 0) * np.asarray(processor.image_std) + np.asarray(processor.image_mean)
    return values * 255


def bright_centroid(crop: np.ndarray) -> np.ndarray:
    """(x, y) centre of mass of the brightness of an (S, S, 3) crop, pixels."""
    brightness = crop.sum(axis=2)
    rows, columns = np.indices(brightness.shape)
    return np.array([(columns * brightness).sum(), (rows * brightness).sum()]) / brightness.sum()


def test_defaults_save_and_load(processor, tmp_path):
    assert processor.image_size == 224 and processor.crop_margin == 1.3
    assert processor.image_mean == (0.485, 0.456, 0.406) and processor.image_std == (0.229, 0.224, 0.225)
    assert (processor.heatmap_size, processor.depth_size, processor.depth_range) == (56, 56, 0.3)
    assert (processor.default_bone_length, processor.default_focal_length) == (0.0283, 1000.0)
    processor.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "preprocessor_config.json").read_text())
    assert saved == {
        "image_processor_type": "CLIPHand3DImageProcessor",
        "image_size": 224,
        "crop_margin": 1.3,
        "image_mean": [0.485, 0.456, 0.406],
        "image_std": [0.229, 0.224, 0.225],
        "heatmap_size": 56,
        "depth_size": 56,
        "depth_range": 0.3,
        "default_bone_length": 0.0283,
        "default_focal_length": 1000.0,
    }
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert type(loaded) is CLIPHand3DImageProcessor
    assert loaded.to_dict() == processor.to_dict()
    assert CLIPHand3DImageProcessor.from_pretrained(tmp_path, image_size=128).image_size == 128


def test_outputs_shapes_and_types(processor):
    images = [random_image(100, 80), PIL.Image.fromarray(random_image(50, 70)).convert("L")]
    features = processor(images, boxes=[None, (10, 5, 40, 30)], is_left=[False, True])
    assert features["pixel_values"].shape == (2, 3, 224, 224) and features["pixel_values"].dtype == torch.float32
    assert features["crop_transforms"].shape == (2, 2, 3) and features["crop_transforms"].dtype == torch.float32
    assert features["is_left"].tolist() == [False, True]
    assert features["original_sizes"].tolist() == [[100, 80], [50, 70]]
    numpy_features = processor(images[0], return_tensors="np")
    assert isinstance(numpy_features["pixel_values"], np.ndarray) and numpy_features["pixel_values"].shape[0] == 1


def test_box_and_handedness_forms_are_equivalent(processor):
    image = random_image(100, 80)
    reference = processor([image], boxes=[(10, 20, 50, 40)], is_left=[True], return_tensors="np")
    for boxes in (np.array([10, 20, 50, 40]), (10, 20, 50, 40), torch.tensor([[10, 20, 50, 40]])):
        features = processor(image, boxes=boxes, is_left=True, return_tensors="np")
        np.testing.assert_array_equal(features["crop_transforms"], reference["crop_transforms"])
        np.testing.assert_array_equal(features["pixel_values"], reference["pixel_values"])


def test_crop_transforms(processor):
    features = processor(
        [random_image(100, 80)] * 3,
        boxes=[None, (10, 20, 50, 40), (10, 20, 50, 40)],
        is_left=[False, False, True],
        return_tensors="np",
    )
    transforms = features["crop_transforms"].astype(np.float64)
    whole_image = square_box_affine((-0.5, -0.5, 79.5, 99.5), 224, margin=1.0)
    np.testing.assert_allclose(transforms[0], whole_image, rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(transforms[0, 0, 0], 224 / 100, rtol=1e-6)  # side max(h, w) = 100 pixels
    np.testing.assert_allclose(transforms[1], square_box_affine((10, 20, 50, 40), 224, 1.3), rtol=1e-6, atol=1e-5)
    np.testing.assert_allclose(
        transforms[2], square_box_affine((10, 20, 50, 40), 224, 1.3, mirror=True), rtol=1e-6, atol=1e-5
    )
    assert np.linalg.det(transforms[2, :, :2]) < 0


@pytest.mark.parametrize("is_left", [False, True])
@pytest.mark.parametrize("box", [None, (40.0, 90.0, 120.0, 150.0)])
def test_pixels_land_where_the_crop_transform_says(processor, box, is_left):
    image = np.zeros((200, 300, 3), dtype=np.uint8)
    image[119:122, 79:82] = 255  # a 3 x 3 white square centred on pixel (x=80, y=120)
    features = processor(image, boxes=box, is_left=is_left, return_tensors="np")
    crop = unnormalize(processor, features["pixel_values"][0])
    expected = apply_affine(np.array([[80.0, 120.0]]), features["crop_transforms"][0])[0]
    assert np.abs(bright_centroid(crop) - expected).max() < 0.05


def test_normalisation_and_black_outside_the_image(processor):
    image = np.zeros((50, 100, 3), dtype=np.uint8)
    image[:] = (255, 0, 128)
    pixel_values = processor(image, return_tensors="np")["pixel_values"][0]
    mean, std = np.asarray(processor.image_mean), np.asarray(processor.image_std)
    colour = (np.array([255, 0, 128]) / 255 - mean) / std
    black = -mean / std
    # The square crop of side 100 pixels shows the 50 rows of the image in its middle half.
    np.testing.assert_allclose(pixel_values[:, 112, 112], colour, atol=1e-5)
    np.testing.assert_allclose(pixel_values[:, 20, 112], black, atol=1e-5)
    np.testing.assert_allclose(pixel_values[:, 200, 5], black, atol=1e-5)


def test_image_formats_give_the_same_pixels(processor):
    rgb = random_image(60, 90, seed=1)
    alpha = np.full((60, 90, 1), 255, dtype=np.uint8)
    same_images = [
        PIL.Image.fromarray(rgb),
        PIL.Image.fromarray(np.concatenate([rgb, alpha], axis=2)),  # RGBA, opaque
        np.concatenate([rgb, alpha], axis=2),
        rgb.astype(np.uint16) * 257,
        rgb / 255.0,
        (rgb / 255.0).astype(np.float32),
    ]
    expected = processor(rgb, return_tensors="np")["pixel_values"][0]
    for index, image in enumerate(same_images):
        pixel_values = processor(image, return_tensors="np")["pixel_values"][0]
        np.testing.assert_allclose(pixel_values, expected, atol=1e-6, err_msg=f"format {index}")


def test_grey_images_become_equal_rgb_channels():
    grey = np.random.default_rng(2).integers(0, 256, (40, 30), dtype=np.uint8)
    expected = np.repeat(grey[..., None], 3, axis=2)
    for image in (
        grey,
        grey[..., None],
        PIL.Image.fromarray(grey),  # mode L
        PIL.Image.fromarray(grey.astype(np.uint16) * 257),  # mode I;16
        PIL.Image.fromarray(grey.astype(np.int32) * 257),  # mode I
        PIL.Image.fromarray(grey.astype(np.float32) / 255),  # mode F
        PIL.Image.fromarray(grey).convert("P"),
    ):
        np.testing.assert_array_equal(image_to_rgb(image), expected)


def test_alpha_composites_on_black():
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., :3] = (200, 100, 50)
    rgba[..., 3] = [[0, 255], [51, 102]]
    expected = np.array([[[0, 0, 0], [200, 100, 50]], [[40, 20, 10], [80, 40, 20]]], dtype=np.uint8)
    np.testing.assert_array_equal(image_to_rgb(rgba), expected)
    np.testing.assert_array_equal(image_to_rgb(PIL.Image.fromarray(rgba)), expected)
    grey_alpha = PIL.Image.fromarray(rgba[..., [0, 3]], mode="LA")
    np.testing.assert_array_equal(image_to_rgb(grey_alpha)[..., 0], [[0, 200], [40, 80]])


def test_shrinking_a_fine_pattern_averages_it_without_aliasing(processor):
    checkerboard = ((np.indices((1000, 1000)).sum(axis=0) % 2) * 255).astype(np.uint8)
    crop = unnormalize(processor, processor(checkerboard, return_tensors="np")["pixel_values"][0])
    inner = crop[10:-10, 10:-10, 0]
    assert abs(inner.mean() - 127.5) < 2 and inner.std() < 2


@pytest.mark.parametrize(
    ("images", "kwargs", "message"),
    [
        ([np.zeros((8, 8, 3), np.uint8), np.zeros((0, 10, 3), np.uint8)], {}, "image 1 is empty"),
        ([PIL.Image.new("RGB", (0, 5))], {}, "image 0 is empty"),
        ([np.zeros((10,), np.uint8)], {}, r"image 0 must have shape .* got \(10,\)"),
        ([np.zeros((2, 8, 8, 3), np.uint8)], {}, "image 0 must have shape"),
        ([np.zeros((8, 8, 2), np.uint8)], {}, r"got \(8, 8, 2\)"),
        ([np.zeros((3, 64, 64), np.uint8)], {}, "channels last"),
        ([np.zeros((8, 8, 3)), "image.png"], {}, "image 1 must be a PIL image or a numpy array"),
        ([torch.zeros(8, 8, 3)], {}, "got torch.Tensor"),
        ([np.full((8, 8, 3), np.nan)], {}, "image 0 holds NaN"),
        ([np.full((8, 8, 3), 2.0)], {}, r"image 0: float images must be in \[0, 1\]"),
        ([np.zeros((8, 8, 3), np.int64)], {}, "image 0: pixel type must be uint8, uint16 or float"),
        ([], {}, "empty list"),
        ([np.zeros((8, 8, 3), np.uint8)] * 2, {"boxes": [(0, 0, 4, 4)]}, "got 1 boxes for 2 images"),
        ([np.zeros((8, 8, 3), np.uint8)] * 2, {"boxes": [None, (5, 0, 4, 4)]}, "box 1 must be finite"),
        ([np.zeros((8, 8, 3), np.uint8)], {"boxes": [(0, 0, np.nan, 4)]}, "box 0 must be finite"),
        ([np.zeros((8, 8, 3), np.uint8)], {"boxes": [(0, 0, 4)]}, "box 0 must be finite"),
        ([np.zeros((8, 8, 3), np.uint8)], {"boxes": 5}, "boxes must be None, one box"),
        ([np.zeros((8, 8, 3), np.uint8)] * 2, {"is_left": [True]}, r"one flag per image \(2\)"),
    ],
)
def test_preprocess_errors(processor, images, kwargs, message):
    with pytest.raises(ValueError, match=message):
        processor(images, **kwargs)


def test_invalid_settings_are_rejected():
    with pytest.raises(ValueError, match="image_size must be a positive int"):
        CLIPHand3DImageProcessor(image_size=0)
    with pytest.raises(ValueError, match="depth_range must be a positive number"):
        CLIPHand3DImageProcessor(depth_range=-0.3)
    with pytest.raises(ValueError, match="image_std needs one value per RGB channel"):
        CLIPHand3DImageProcessor(image_std=(0.2, 0.2))


def make_hand(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Camera-frame joints (21, 3) and vertices (778, 3), metres, about 0.6 m in front of the camera.

    Random points, except the reference bone (9 -> 10), which is 3 cm long and mostly parallel to the image.
    """
    rng = np.random.default_rng(seed)
    centre = np.array([0.04, -0.03, 0.6])
    joints = centre + rng.normal(scale=0.03, size=(21, 3))
    joints[10] = joints[9] + (0.02, -0.022, 0.004)
    return joints, centre + rng.normal(scale=0.03, size=(778, 3))


def hand_box(joints: np.ndarray) -> tuple[float, float, float, float]:
    uv = project(joints, K)
    return (*uv.min(axis=0), *uv.max(axis=0))


def fake_outputs(processor, features, joints_list, vertices_list, K_list) -> SimpleNamespace:
    """Model outputs that are exactly the uvd of the given camera-frame hands in each crop."""
    joints_uvd, vertices_uvd = [], []
    space = processor.uvd_space
    for index, (joints, vertices, camera) in enumerate(zip(joints_list, vertices_list, K_list, strict=True)):
        K_crop, R = camera_after_affine(features["crop_transforms"][index].numpy().astype(np.float64), camera)
        root_depth = (R @ joints[0])[2]
        joints_uvd.append(space.xyz_to_uvd(joints @ R.T, K_crop, root_depth))
        vertices_uvd.append(space.xyz_to_uvd(vertices @ R.T, K_crop, root_depth))
    return SimpleNamespace(
        joints_uvd=torch.tensor(np.stack(joints_uvd), dtype=torch.float64),
        vertices_uvd=torch.tensor(np.stack(vertices_uvd), dtype=torch.float64),
        faces=torch.arange(30).reshape(10, 3),
    )


def test_post_process_round_trip_with_camera_and_root_depth(processor):
    hands = [make_hand(0), make_hand(1)]
    joints_list, vertices_list = [hand[0] for hand in hands], [hand[1] for hand in hands]
    image = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), dtype=np.uint8)
    boxes = [hand_box(joints) for joints in joints_list]
    features = processor([image, image], boxes=boxes, is_left=[False, True])
    outputs = fake_outputs(processor, features, joints_list, vertices_list, [K, K])
    root_depths = [joints[0, 2] for joints in joints_list]
    results = processor.post_process(outputs, features, K=K, root_depth=root_depths)
    assert len(results) == 2
    for result, joints, vertices in zip(results, joints_list, vertices_list, strict=True):
        np.testing.assert_allclose(result["joints_cam"], joints, atol=1e-6)
        np.testing.assert_allclose(result["vertices_cam"], vertices, atol=1e-6)
        np.testing.assert_allclose(result["joints_3d"], joints - joints[0], atol=1e-6)
        np.testing.assert_allclose(result["vertices_3d"], vertices - joints[0], atol=1e-6)
        np.testing.assert_allclose(result["keypoints_2d"], project(joints, K), atol=1e-6)
        np.testing.assert_array_equal(result["faces"], np.arange(30).reshape(10, 3))
        assert result["joints_3d"].shape == (21, 3) and result["vertices_3d"].shape == (778, 3)


def test_post_process_solves_the_root_depth_from_the_bone_length(processor):
    joints, vertices = make_hand(2)
    features = processor(np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8), boxes=hand_box(joints), is_left=True)
    outputs = fake_outputs(processor, features, [joints], [vertices], [K])
    true_bone_length = np.linalg.norm(joints[9] - joints[10])
    result = processor.post_process(outputs, features, K=K[None], bone_length=true_bone_length)[0]
    np.testing.assert_allclose(result["joints_cam"], joints, atol=1e-6)
    np.testing.assert_allclose(result["vertices_cam"], vertices, atol=1e-6)
    without_scale = processor.post_process(outputs, features, K=K)[0]
    assert "joints_cam" not in without_scale and "vertices_cam" not in without_scale
    bone = np.linalg.norm(without_scale["joints_3d"][9] - without_scale["joints_3d"][10])
    np.testing.assert_allclose(bone, processor.default_bone_length, rtol=1e-9)


def test_post_process_without_camera_uses_the_virtual_one():
    joints, vertices = make_hand(3)
    # A box centred on the principal point: the crop camera is then [[f s, 0, S/2], [0, f s, S/2], [0, 0, 1]].
    half_side = 60.0
    box = (K[0, 2] - half_side, K[1, 2] - half_side, K[0, 2] + half_side, K[1, 2] + half_side)
    camera = K.copy()
    camera[1, 1] = camera[0, 0]
    scale = 224 / (1.3 * 2 * half_side)
    processor = CLIPHand3DImageProcessor(default_focal_length=camera[0, 0] * scale)
    image = np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8)
    for is_left in (False, True):
        features = processor(image, boxes=box, is_left=is_left)
        outputs = fake_outputs(processor, features, [joints], [vertices], [camera])
        true_bone_length = np.linalg.norm(joints[9] - joints[10])
        result = processor.post_process(outputs, features, bone_length=true_bone_length)[0]
        assert "joints_cam" not in result
        np.testing.assert_allclose(result["joints_3d"], joints - joints[0], atol=1e-6)
        np.testing.assert_allclose(result["vertices_3d"], vertices - joints[0], atol=1e-6)
        np.testing.assert_allclose(result["keypoints_2d"], project(joints, camera), atol=1e-6)


def test_post_process_without_camera_gives_the_reference_bone_its_length(processor):
    joints, vertices = make_hand(4)
    features = processor(np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8), boxes=hand_box(joints), is_left=True)
    outputs = fake_outputs(processor, features, [joints], [vertices], [K])
    true_bone_length = np.linalg.norm(joints[9] - joints[10])
    for bone_length in (None, 0.035, true_bone_length):
        result = processor.post_process(outputs, features, bone_length=bone_length)[0]
        expected = processor.default_bone_length if bone_length is None else bone_length
        bone = np.linalg.norm(result["joints_3d"][9] - result["joints_3d"][10])
        np.testing.assert_allclose(bone, expected, rtol=1e-9)
        np.testing.assert_allclose(result["joints_3d"][0], 0.0, atol=1e-12)
    # With the true bone length the shape is right up to the virtual camera's perspective (it puts this hand, 5 cm
    # off the optical axis, on the axis): 1.2 cm at most here, where a missed mirror would be off by up to 10 cm.
    assert np.abs(result["joints_3d"] - (joints - joints[0])).max() < 0.02


def test_post_process_warns_when_no_root_depth_gives_the_bone_length(processor):
    joints, vertices = make_hand(6)
    joints[10] = joints[9] + (0.005, 0.0, 0.04)  # 4 cm deeper: no root depth makes this bone 2.83 cm long
    features = processor(np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8), boxes=hand_box(joints))
    outputs = fake_outputs(processor, features, [joints], [vertices], [K])
    with pytest.warns(UserWarning, match=r"sample 0: the reference bone cannot be 0.0283 m long"):
        processor.post_process(outputs, features, K=K)


def test_post_process_errors(processor):
    joints, vertices = make_hand(5)
    features = processor(np.zeros((IMAGE_HEIGHT, IMAGE_WIDTH, 3), np.uint8), boxes=hand_box(joints))
    outputs = fake_outputs(processor, features, [joints], [vertices], [K])
    with pytest.raises(ValueError, match=r"joints_uvd must have shape \(1, 21, 3\)"):
        processor.post_process(SimpleNamespace(**{**vars(outputs), "joints_uvd": torch.zeros(2, 21, 3)}), features)
    with pytest.raises(ValueError, match="outputs.faces is missing"):
        processor.post_process(
            SimpleNamespace(joints_uvd=outputs.joints_uvd, vertices_uvd=outputs.vertices_uvd), features
        )
    with pytest.raises(ValueError, match="inputs must hold 'crop_transforms'"):
        processor.post_process(outputs, {"pixel_values": features["pixel_values"]})
    with pytest.raises(ValueError, match=r"K must have shape \(3, 3\) or \(1, 3, 3\)"):
        processor.post_process(outputs, features, K=np.eye(2))
    with pytest.raises(ValueError, match="root_depth must be positive"):
        processor.post_process(outputs, features, K=K, root_depth=-1.0)
