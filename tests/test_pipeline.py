"""HandMeshPipeline: full images in, hands out; the geometry of boxes, crops and mirroring end to end.

Most tests use a fake network that "sees": it finds bright markers in each crop it is given and answers with
joints at their crop positions, so the 2D keypoints must land on the markers' original pixels whatever the box,
the handedness, the image format or its EXIF orientation.
"""

import io
import json

import numpy as np
import PIL.Image
import PIL.ImageOps
import pytest
import torch
from transformers import pipeline

from clip_hand3d import HandMeshPipeline
from clip_hand3d.detection import HandDetection, HandDetector
from clip_hand3d.pipeline import TIMING_NAMES, HandMeshEstimationPipeline, hands_to_json, register_runtime

HEIGHT, WIDTH = 120, 160
RED, GREEN = (50.0, 40.0), (70.0, 48.0)  # marker centres (x, y), pixels
BOX = (30.0, 20.0, 90.0, 75.0)


@pytest.fixture(scope="module")
def tiny_pipe(tiny_dir):
    return HandMeshPipeline.from_pretrained(tiny_dir, detector=None)


class MarkerModel:
    """A model-like fake: joint 0 at the red marker of each crop, joint 20 at the green one and joint j at the
    fraction j / 20 of the way (a white marker is all of them), depth mid-range; records the crops it was given."""

    def __init__(self, processor):
        self.image_processor = processor.image_processor
        self.calls: list[np.ndarray] = []

    def crops(self, pixel_values: torch.Tensor) -> np.ndarray:
        """(B, S, S, 3) values in [0, 1]."""
        mean = np.asarray(self.image_processor.image_mean)
        std = np.asarray(self.image_processor.image_std)
        return pixel_values.numpy().transpose(0, 2, 3, 1) * std + mean

    def __call__(self, pixel_values):
        crops = self.crops(pixel_values)
        self.calls.append(crops)
        space = self.image_processor.uvd_space
        joints = np.zeros((len(crops), 21, 3))
        for index, crop in enumerate(crops):
            red, green = centroid(crop[..., 0] - crop[..., 1]), centroid(crop[..., 1] - crop[..., 0])
            joints[index, :, :2] = red + FRACTIONS[:, None] * (green - red)
            if crop[..., 2].max() > 0.5:  # white markers: blue is there too
                joints[index, :, :2] = centroid(crop.mean(axis=2) - 0.5)
        joints[..., :2] *= space.heatmap_per_pixel
        joints[..., 2] = self.image_processor.depth_size / 2
        vertices = np.repeat(joints[:, :1], 778, axis=1)
        return {
            "joints_uvd": torch.from_numpy(joints).float(),
            "vertices_uvd": torch.from_numpy(vertices).float(),
            "faces": torch.zeros(1552, 3, dtype=torch.long),
        }


FRACTIONS = np.arange(21) / 20


def expected_keypoints(red=RED, green=GREEN) -> np.ndarray:
    """Where the fake's 21 joints land in the original image (a similarity keeps the fractions)."""
    red, green = np.asarray(red), np.asarray(green)
    return red + FRACTIONS[:, None] * (green - red)


def centroid(weights: np.ndarray) -> np.ndarray:
    """(x, y) centre of the positive part of `weights` (S, S), pixels; the crop's centre where there is none."""
    weights = np.clip(weights, 0, None)
    if weights.max() <= 0:
        return np.array([(weights.shape[1] - 1) / 2, (weights.shape[0] - 1) / 2])
    weights = np.where(weights > 0.25 * weights.max(), weights, 0)
    rows, columns = np.indices(weights.shape)
    return np.array([(columns * weights).sum(), (rows * weights).sum()]) / weights.sum()


def marker_image(markers=((RED, (255, 0, 0)), (GREEN, (0, 255, 0))), size=(HEIGHT, WIDTH)) -> np.ndarray:
    """A black RGB image with 5 x 5 px square markers centred at integer pixels."""
    image = np.zeros((*size, 3), dtype=np.uint8)
    for (x, y), colour in markers:
        image[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = colour
    return image


@pytest.fixture()
def fake(tiny_pipe):
    return MarkerModel(tiny_pipe.processor)


@pytest.fixture()
def fake_pipe(tiny_pipe, fake):
    return HandMeshPipeline(fake, tiny_pipe.processor)


class SpyDetector:
    """A `HandDetector` answering fixed detections, recording its calls."""

    def __init__(self, detections):
        self.detections = detections
        self.calls = []

    def detect(self, image, mirrored=False):
        self.calls.append((image.shape, mirrored))
        return self.detections


def test_shapes_units_and_fields(tiny_pipe):
    image = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    hands = tiny_pipe(image, boxes=[BOX, (100, 30, 150, 100)], is_left=[False, True])
    assert len(hands) == 2
    for hand, is_left in zip(hands, (False, True), strict=True):
        assert hand["is_left"] is is_left and hand["score"] is None and hand["box_source"] == "given"
        assert not hand["whole_image"] and not hand["mirrored"]
        assert hand["keypoints_2d"].shape == (21, 2) and np.isfinite(hand["keypoints_2d"]).all()
        assert hand["joints_3d"].shape == (21, 3) and hand["vertices_3d"].shape == (778, 3)
        np.testing.assert_allclose(hand["joints_3d"][0], 0, atol=1e-9)  # root-relative
        # Metres: a hand is at most ~0.3 m across (the depth range), never hundreds of units.
        assert np.abs(hand["joints_3d"]).max() < 0.5 and np.abs(hand["vertices_3d"]).max() < 0.5
        assert hand["faces"].shape == (1552, 3) and hand["faces"].max() < 778
        assert set(hand["timings_ms"]) == set(TIMING_NAMES)
        assert hand["timings_ms"]["detection"] == 0.0 and hand["timings_ms"]["network"] > 0
    assert hands[0]["box"] == BOX
    json.dumps(hands_to_json(hands))


def test_one_batch_through_the_network_per_image(fake_pipe, fake):
    fake_pipe(marker_image(), boxes=[BOX, BOX, (0, 0, 50, 50)])
    assert [len(crops) for crops in fake.calls] == [3]


@pytest.mark.parametrize("is_left", [False, True])
def test_keypoints_land_on_the_markers_for_right_and_left_hands(fake_pipe, fake, is_left):
    hand = fake_pipe(marker_image(), boxes=BOX, is_left=is_left)[0]
    np.testing.assert_allclose(hand["keypoints_2d"], expected_keypoints(), atol=0.5)
    # The network sees a right hand: the crop of a left hand is mirrored (green, right of red, goes left of it).
    crop = fake.calls[-1][0]
    red_x, green_x = centroid(crop[..., 0] - crop[..., 1])[0], centroid(crop[..., 1] - crop[..., 0])[0]
    assert bool(green_x < red_x) is is_left


def test_a_mirrored_image_gives_the_network_the_hand_as_it_looks(fake_pipe, fake):
    # In a selfie frame a person's left hand looks like a right one: its crop is not mirrored, and vice versa.
    for is_left in (True, False):
        hand = fake_pipe(marker_image(), boxes=BOX, is_left=is_left, mirrored=True)[0]
        assert hand["is_left"] is is_left and hand["mirrored"]
        crop = fake.calls[-1][0]
        green_left_of_red = bool(centroid(crop[..., 1] - crop[..., 0])[0] < centroid(crop[..., 0] - crop[..., 1])[0])
        assert green_left_of_red is (not is_left)
        np.testing.assert_allclose(hand["keypoints_2d"][0], RED, atol=0.5)


def test_the_crop_follows_the_processor_margin(fake_pipe, fake):
    # The box's longer side (60 px) x crop_margin fills the crop: the red marker sits where the geometry says.
    fake_pipe(marker_image(), boxes=BOX)
    processor = fake_pipe.processor.image_processor
    side = processor.crop_margin * 60
    expected_x = (RED[0] - 60) / side * processor.image_size + processor.image_size / 2
    crop = fake.calls[-1][0]
    assert abs(centroid(crop[..., 0] - crop[..., 1])[0] - expected_x) < 0.5


def test_no_boxes_and_no_detector_takes_the_whole_image_as_one_right_hand(fake_pipe):
    output = fake_pipe.predict(marker_image())
    (hand,) = output.hands
    size = fake_pipe.processor.image_processor.image_size
    assert output.pixel_values.shape == (1, 3, size, size)
    assert hand["whole_image"] and hand["box_source"] == "whole_image" and hand["is_left"] is False
    assert hand["box"] == (-0.5, -0.5, WIDTH - 0.5, HEIGHT - 0.5) and hand["score"] is None
    assert output.image_size == (HEIGHT, WIDTH) and not output.detector_ran
    np.testing.assert_allclose(hand["keypoints_2d"][0], RED, atol=0.5)
    assert fake_pipe(marker_image(), is_left=True)[0]["is_left"] is True


def test_boxes_given_run_no_detector(tiny_pipe, fake):
    spy = SpyDetector([HandDetection((30.0, 20.0, 90.0, 75.0), True, 0.9)])
    assert isinstance(spy, HandDetector)
    pipe = HandMeshPipeline(fake, tiny_pipe.processor, detector=spy)
    hands = pipe(marker_image(), boxes=[BOX])
    assert spy.calls == [] and hands[0]["box_source"] == "given" and hands[0]["timings_ms"]["detection"] == 0.0
    assert pipe(marker_image(), boxes=[]) == [] and spy.calls == [] and len(fake.calls) == 1


def test_detected_hands_carry_the_detector_box_handedness_and_score(tiny_pipe, fake):
    spy = SpyDetector([HandDetection(BOX, True, 0.9), HandDetection((100.0, 10.0, 150.0, 60.0), False, 0.6)])
    pipe = HandMeshPipeline(fake, tiny_pipe.processor, detector=spy)
    output = pipe.predict(marker_image(), mirrored=True)
    assert spy.calls == [((HEIGHT, WIDTH, 3), True)] and output.detector_ran
    assert [(hand["box"], hand["is_left"], hand["score"]) for hand in output.hands] == [
        (BOX, True, 0.9),
        ((100.0, 10.0, 150.0, 60.0), False, 0.6),
    ]
    assert all(hand["box_source"] == "detector" and not hand["whole_image"] for hand in output.hands)
    assert [len(crops) for crops in fake.calls] == [2]
    # One bool overrides the detector's handedness for every hand.
    assert [hand["is_left"] for hand in pipe(marker_image(), is_left=False)] == [False, False]
    spy.detections = []
    output = pipe.predict(marker_image())
    assert output.hands == [] and output.timings_ms["detection"] >= 0 and output.pixel_values is None and len(fake.calls) == 2


def exif_png(array: np.ndarray, orientation: int) -> PIL.Image.Image:
    exif = PIL.Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    PIL.Image.fromarray(array).save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    return PIL.Image.open(buffer)


def test_exif_orientation_is_applied(fake_pipe):
    # Orientation 6: shown turned 90 degrees clockwise; stored (x, y) in a W x H image is shown at (H - 1 - y, x).
    output = fake_pipe.predict(exif_png(marker_image(), 6), boxes=None)
    assert output.image_size == (WIDTH, HEIGHT)
    np.testing.assert_allclose(output.hands[0]["keypoints_2d"][0], (HEIGHT - 1 - RED[1], RED[0]), atol=0.5)


WHITE = (60.0, 45.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda grey: PIL.Image.fromarray(grey),  # L
        lambda grey: PIL.Image.fromarray(grey).convert("RGBA"),
        lambda grey: PIL.Image.fromarray(grey.astype(np.uint16) * 257),  # 16-bit
        lambda grey: np.repeat(grey[..., None], 3, axis=2),  # numpy uint8 RGB
        lambda grey: grey.astype(np.uint16) * 257,  # numpy uint16
        lambda grey: grey.astype(np.float32) / 255,  # numpy float
        lambda grey: np.dstack([np.repeat(grey[..., None], 3, axis=2), np.full_like(grey, 255)]),  # numpy RGBA
    ],
    ids=["L", "RGBA", "I;16", "uint8", "uint16", "float", "numpy-RGBA"],
)
def test_image_formats(fake_pipe, make):
    grey = marker_image([(WHITE, (255, 255, 255))])[..., 0]
    hand = fake_pipe(make(grey), boxes=BOX)[0]
    np.testing.assert_allclose(hand["keypoints_2d"][0], WHITE, atol=0.5)


def test_image_files(fake_pipe, tmp_path):
    path = tmp_path / "hand.png"
    PIL.Image.fromarray(marker_image()).save(path)
    for image in (path, str(path)):
        np.testing.assert_allclose(fake_pipe(image, boxes=BOX)[0]["keypoints_2d"][0], RED, atol=0.5)


@pytest.mark.parametrize(
    ("image", "kwargs", "message"),
    [
        (5, {}, "must be a PIL image or a numpy array"),
        (torch.zeros(8, 8, 3), {}, "got torch.Tensor"),
        (np.zeros((0, 10, 3), np.uint8), {}, "empty"),
        (np.zeros((1, 1, 3), np.uint8), {}, r"too small \(1x1"),
        (np.zeros((10,), np.uint8), {}, "must have shape"),
        (np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3)), {}, "too large"),
        (np.zeros((8, 8, 3), np.uint8), {"boxes": [(5, 0, 4, 4)]}, "box 0 must be finite"),
        (np.zeros((8, 8, 3), np.uint8), {"boxes": [(0, 0, 4)]}, "list of boxes"),
        (np.zeros((8, 8, 3), np.uint8), {"boxes": "box"}, "list of boxes"),
        (np.zeros((8, 8, 3), np.uint8), {"boxes": [BOX, BOX], "is_left": [True]}, r"one per hand \(2\)"),
        (np.zeros((8, 8, 3), np.uint8), {"is_left": [True, False]}, r"one per hand \(1\)"),
        (np.zeros((8, 8, 3), np.uint8), {"mirrored": "yes"}, "mirrored must be a bool"),
    ],
)
def test_bad_inputs_raise_clear_errors(fake_pipe, image, kwargs, message):
    with pytest.raises(ValueError, match=message):
        fake_pipe(image, **kwargs)


def test_bad_files_and_the_size_limit(tiny_pipe, fake, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(ValueError, match="is not an image"):
        HandMeshPipeline(fake, tiny_pipe.processor)(text)
    small_limit = HandMeshPipeline(fake, tiny_pipe.processor, max_image_pixels=WIDTH * HEIGHT - 1)
    with pytest.raises(ValueError, match=f"too large .*the limit is {WIDTH * HEIGHT - 1:,}"):
        small_limit(marker_image(), boxes=BOX)
    assert fake.calls == []


def test_transformers_pipeline_gives_the_same_hands(tiny_dir, tiny_pipe):
    estimator = pipeline("hand-mesh-estimation", model=str(tiny_dir), detector=None, model_kwargs={"with_text_model": False})
    assert isinstance(estimator, HandMeshEstimationPipeline)
    image = np.random.default_rng(1).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    expected = tiny_pipe(image, boxes=[BOX], is_left=[True])
    (hand,) = estimator(image, boxes=[BOX], is_left=[True])
    assert hand["box"] == BOX and hand["is_left"] is True
    for name in ("keypoints_2d", "joints_3d", "vertices_3d"):
        np.testing.assert_allclose(hand[name], expected[0][name], atol=1e-5)
    assert estimator(image)[0]["whole_image"]
    assert [len(hands) for hands in estimator([image, image], boxes=[BOX, BOX])] == [2, 2]


def test_model_like_objects_and_runtimes(tiny_dir, tiny_pipe):
    image = marker_image()
    fake = MarkerModel(tiny_pipe.processor)
    pipe = HandMeshPipeline.from_pretrained(tiny_dir, detector=None, model=fake)
    np.testing.assert_allclose(pipe(image, boxes=BOX)[0]["keypoints_2d"][0], RED, atol=0.5)
    loaded = []
    register_runtime("fake-test-runtime", lambda name_or_path, device=None: loaded.append(name_or_path) or fake)
    pipe = HandMeshPipeline.from_pretrained(tiny_dir, detector=None, runtime="fake-test-runtime")
    assert pipe.model is fake and loaded == [str(tiny_dir)]
    with pytest.raises(ValueError, match="unknown runtime 'nope'"):
        HandMeshPipeline.from_pretrained(tiny_dir, detector=None, runtime="nope")
    with pytest.raises(ValueError, match="detector must be 'mediapipe', None or an object"):
        HandMeshPipeline(fake, tiny_pipe.processor, detector="yolo")


def test_a_mirrored_image_mirrors_the_keypoints(fake_pipe):
    # The same hand in a mirrored copy of the image, as a left hand: the keypoints mirror with it.
    image = marker_image()
    mirrored_box = (WIDTH - 1 - BOX[2], BOX[1], WIDTH - 1 - BOX[0], BOX[3])
    right = fake_pipe(image, boxes=BOX)[0]
    left = fake_pipe(np.asarray(PIL.ImageOps.mirror(PIL.Image.fromarray(image))), boxes=mirrored_box, is_left=True)[0]
    np.testing.assert_allclose(left["keypoints_2d"][:, 0], WIDTH - 1 - right["keypoints_2d"][:, 0], atol=0.5)
    np.testing.assert_allclose(left["keypoints_2d"][:, 1], right["keypoints_2d"][:, 1], atol=0.5)


def test_mediapipe_detector_end_to_end(tiny_dir):
    """The default pipeline (MediaPipe) on a synthetic photo of a right hand and on its mirror image (a left hand)."""
    from clip_hand3d.data.synthetic.render import render_sample

    row = render_sample(1, 777, 224, "train")
    image = np.asarray(row["image"].convert("RGB"))
    pipe = HandMeshPipeline.from_pretrained(tiny_dir)
    (hand,) = pipe(image)
    assert hand["box_source"] == "detector" and hand["is_left"] is False and hand["score"] > 0.9
    assert hand["timings_ms"]["detection"] > 0 and hand["vertices_3d"].shape == (778, 3)
    (mirrored,) = pipe(np.ascontiguousarray(image[:, ::-1]))
    assert mirrored["is_left"] is True
    # The label box (the hand's tight box) and the detected box overlap.
    x1, y1, x2, y2 = hand["box"]
    bx1, by1, bx2, by2 = row["box"]
    assert x1 < bx2 and bx1 < x2 and y1 < by2 and by1 < y2


def test_all_hands_share_one_camera_and_project_onto_their_keypoints(tiny_pipe):
    from clip_hand3d.geometry import project
    from clip_hand3d.pipeline import DEFAULT_FOCAL_FRACTION

    image = np.random.default_rng(2).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    hands = tiny_pipe(image, boxes=[BOX, (100, 30, 150, 100)], is_left=[False, True])
    focal = DEFAULT_FOCAL_FRACTION * WIDTH
    expected_K = np.array([[focal, 0, (WIDTH - 1) / 2], [0, focal, (HEIGHT - 1) / 2], [0, 0, 1]])
    for hand in hands:
        np.testing.assert_allclose(hand["K"], expected_K)
        assert hand["K_assumed"] is True and (hand["vertices_cam"][:, 2] > 0).all()
        np.testing.assert_allclose(project(hand["joints_cam"], hand["K"]), hand["keypoints_2d"], atol=1e-6)
        np.testing.assert_allclose(hand["joints_cam"] - hand["joints_cam"][0], hand["joints_3d"], atol=1e-9)
    K = np.array([[300.0, 0, 70], [0, 310.0, 55], [0, 0, 1]])
    (hand,) = tiny_pipe(image, boxes=BOX, K=K)
    assert hand["K_assumed"] is False and np.array_equal(hand["K"], K)
    np.testing.assert_allclose(project(hand["joints_cam"], K), hand["keypoints_2d"], atol=1e-6)
    with pytest.raises(ValueError, match=r"K must be finite \(3, 3\) intrinsics"):
        tiny_pipe(image, boxes=BOX, K=np.eye(2))
