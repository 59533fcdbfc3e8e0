"""image_utils: EXIF orientation, the size limits and opening image files, shared by the processor and the pipeline."""

import io
import struct
import zlib

import numpy as np
import PIL.Image
import pytest

from clip_hand3d import image_utils
from clip_hand3d.image_processing import CLIPHand3DImageProcessor
from clip_hand3d.image_utils import check_image_size, image_to_rgb, open_image, rgb_image

ORIENTATION = 0x0112


def oriented_png(array: np.ndarray, orientation: int) -> PIL.Image.Image:
    """A PNG file (read back) of `array` whose EXIF says `orientation`."""
    image = PIL.Image.fromarray(array)
    exif = PIL.Image.Exif()
    exif[ORIENTATION] = orientation
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    buffer.seek(0)
    return PIL.Image.open(buffer)


def png_header(width: int, height: int) -> bytes:
    """The first bytes of a PNG claiming `width` x `height` (no pixel data): cheap to make at any size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"") + chunk(b"IEND", b"")


def test_exif_orientation_is_applied_by_the_processor_helpers():
    array = np.zeros((60, 80, 3), dtype=np.uint8)
    array[10, 20] = 255  # x = 20, y = 10 as stored
    image = oriented_png(array, 6)  # shown rotated 90 degrees clockwise
    upright = image_to_rgb(image)
    assert upright.shape == (80, 60, 3)
    # Clockwise: stored (x, y) in a W x H image is shown at (H - 1 - y, x).
    assert tuple(np.argwhere(upright[..., 0] == 255)[0]) == (20, 60 - 1 - 10)
    assert rgb_image(image).size == (60, 80)
    pixel_values = CLIPHand3DImageProcessor(image_size=32)(image, return_tensors="np")["original_sizes"]
    np.testing.assert_array_equal(pixel_values, [[80, 60]])


def test_an_upright_rgb_image_is_returned_as_it_is():
    image = PIL.Image.new("RGB", (5, 4))
    assert rgb_image(image) is image
    assert rgb_image(oriented_png(np.zeros((4, 5, 3), np.uint8), 1)).size == (5, 4)


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((0, 10, 3), np.uint8), "image is empty"),
        (np.zeros((1, 1, 3), np.uint8), r"image is too small \(1x1 pixels\)"),
        (PIL.Image.new("RGB", (1, 40)), r"too small \(1x40 pixels\)"),
        # A view of one pixel: the check refuses it before any copy of 400 megapixels is made.
        (np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3)), "too large .*20000x20000"),
        ("hand.png", "must be a PIL image or a numpy array"),
    ],
)
def test_bad_images_raise_clear_errors(image, message):
    with pytest.raises(ValueError, match=message):
        image_to_rgb(image)


def test_the_size_limit_is_configurable(monkeypatch):
    image = np.zeros((100, 100, 3), np.uint8)
    with pytest.raises(ValueError, match="the limit is 9,999"):
        rgb_image(image, max_pixels=9_999)
    assert rgb_image(image, max_pixels=10_000).size == (100, 100)
    monkeypatch.setattr(image_utils, "MAX_IMAGE_PIXELS", 5_000)
    with pytest.raises(ValueError, match="the limit is 5,000"):
        CLIPHand3DImageProcessor(image_size=32)(image)
    assert CLIPHand3DImageProcessor(image_size=32)(image, max_image_pixels=10_000)["pixel_values"].shape == (1, 3, 32, 32)
    check_image_size(2, 2)


def test_open_image_errors(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    buffer = io.BytesIO()
    PIL.Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header(20000, 20000))
    big = tmp_path / "big.png"
    big.write_bytes(png_header(3000, 3000))
    for path, message in (
        (text, "is not an image"),
        (empty, "is not an image"),
        (truncated, "cannot be decoded"),
        (huge, "too large"),
        (big, r"too large \(3000x3000 = 9,000,000 pixels, the limit is 1,000,000\)"),
        (tmp_path / "missing.png", "does not exist"),
    ):
        with pytest.raises(ValueError, match=message):
            open_image(path, max_pixels=1_000_000)
    good = tmp_path / "good.png"
    PIL.Image.new("RGB", (7, 5)).save(good)
    assert open_image(good).size == (7, 5)
