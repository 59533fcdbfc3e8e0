"""Image helpers shared by the image processor, the pipeline and the training transform: any image in as RGB (EXIF
orientation applied, its size checked), image files opened with clear errors, and the crop warp.

Pixel coordinates follow `clip_hand3d.geometry`: continuous, pixel centres at integers.
"""

import os
import warnings

import numpy as np
import PIL.Image
import PIL.ImageOps

from clip_hand3d.geometry import to_homogeneous_affine

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
# The largest image (width x height, pixels) accepted by `image_to_rgb` and `rgb_image` when they are given no
# `max_pixels`; read at each call, so assigning `clip_hand3d.image_utils.MAX_IMAGE_PIXELS` changes it everywhere.
# 100 megapixels holds any phone photo (an RGB copy is 300 MB); 20000 x 20000 is refused.
MAX_IMAGE_PIXELS = 100_000_000
# The smallest side (pixels) of an accepted image: a 1-pixel-wide image holds no hand.
MIN_IMAGE_SIDE = 2
_EXIF_ORIENTATION = 0x0112


def check_image_size(width: int, height: int, name: str = "image", max_pixels: int | None = None) -> None:
    """Raise a ValueError naming `name` unless the image is not empty, at least `MIN_IMAGE_SIDE` pixels on each
    side and at most `max_pixels` pixels (None: `MAX_IMAGE_PIXELS`)."""
    max_pixels = MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if width == 0 or height == 0:
        raise ValueError(f"{name} is empty (size {width}x{height})")
    if min(width, height) < MIN_IMAGE_SIDE:
        raise ValueError(
            f"{name} is too small ({width}x{height} pixels): each side must be at least {MIN_IMAGE_SIDE} pixels"
        )
    if width * height > max_pixels:
        raise ValueError(
            f"{name} is too large ({width}x{height} = {width * height:,} pixels, the limit is {max_pixels:,}): "
            f"downscale it, or raise the limit (max_pixels / max_image_pixels, or "
            f"clip_hand3d.image_utils.MAX_IMAGE_PIXELS)"
        )


def exif_transpose(image: PIL.Image.Image) -> PIL.Image.Image:
    """`image` turned upright by its EXIF orientation tag (`PIL.ImageOps.exif_transpose`); the image itself when
    it has no tag or the tag says it is upright already."""
    if image.getexif().get(_EXIF_ORIENTATION, 1) == 1:
        return image
    return PIL.ImageOps.exif_transpose(image)


def open_image(path: str | os.PathLike, name: str | None = None, max_pixels: int | None = None) -> PIL.Image.Image:
    """Open and decode an image file; a file that is no image, is truncated or is too large raises a ValueError
    naming it. The size is checked (see `check_image_size`) before the pixels are decoded."""
    name = f"image file {os.fspath(path)!r}" if name is None else name
    try:
        with warnings.catch_warnings():
            # The size check below replaces PIL's decompression-bomb warning.
            warnings.simplefilter("ignore", PIL.Image.DecompressionBombWarning)
            image = PIL.Image.open(path)
            check_image_size(image.width, image.height, name, max_pixels)
            image.load()
    except PIL.Image.DecompressionBombError as error:
        raise ValueError(f"{name} is too large: {error}") from error
    except PIL.UnidentifiedImageError as error:
        raise ValueError(f"{name} is not an image PIL can read") from error
    except FileNotFoundError as error:
        raise ValueError(f"{name} does not exist") from error
    except OSError as error:
        raise ValueError(f"{name} cannot be decoded (truncated or damaged?): {error}") from error
    return image


def _pil_to_array(image: PIL.Image.Image) -> np.ndarray:
    """A PIL image -> an (H, W, C) or (H, W) numpy array that `_array_to_rgb` understands."""
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode in SIXTEEN_BIT_MODES:
        # 16-bit greyscale (PNG); mode "I" holds it as int32.
        return np.clip(np.asarray(image), 0, 65535).astype(np.uint16)
    if image.mode == "F":
        return np.asarray(image)
    if image.mode in TRANSPARENT_MODES or image.has_transparency_data:
        return np.asarray(image.convert("RGBA"))
    return np.asarray(image.convert("RGB"))


def _array_to_unit_float(array: np.ndarray, name: str) -> np.ndarray:
    """uint8, uint16 or float [0, 1] values -> float32 in [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / 255
    if array.dtype == np.uint16:
        return array.astype(np.float32) / 65535
    if np.issubdtype(array.dtype, np.floating):
        if not np.isfinite(array).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        if array.min() < 0 or array.max() > 1:
            raise ValueError(
                f"{name}: float images must be in [0, 1], got values in [{array.min()}, {array.max()}]"
            )
        return array.astype(np.float32)
    raise ValueError(f"{name}: pixel type must be uint8, uint16 or float in [0, 1], got {array.dtype}")


def _array_to_rgb(array: np.ndarray, name: str) -> np.ndarray:
    """(H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array -> (H, W, 3) uint8 RGB; alpha composites on black."""
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (1, 3, 4)):
        raise ValueError(
            f"{name} must have shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) (channels last), "
            f"got {array.shape}"
        )
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape})")
    if array.dtype == np.uint8 and array.ndim == 3 and array.shape[2] == 3:
        return array
    values = _array_to_unit_float(array, name)
    if values.ndim == 2:
        values = values[..., None]
    if values.shape[2] == 4:
        values = values[..., :3] * values[..., 3:]
    if values.shape[2] == 1:
        values = np.repeat(values, 3, axis=2)
    return np.round(values * 255).astype(np.uint8)


def _checked_pil(image: PIL.Image.Image, name: str, max_pixels: int | None) -> PIL.Image.Image:
    """A PIL image with its size checked and its EXIF orientation applied."""
    check_image_size(image.width, image.height, name, max_pixels)
    return exif_transpose(image)


def image_to_rgb(image: PIL.Image.Image | np.ndarray, name: str = "image", max_pixels: int | None = None) -> np.ndarray:
    """Any supported image -> (H, W, 3) uint8 RGB array.

    PIL images of any mode (alpha composited on black, greyscale repeated, 16-bit scaled to 8-bit; turned upright
    by their EXIF orientation) or numpy arrays (H, W), (H, W, 1), (H, W, 3), (H, W, 4) of uint8, uint16 or float
    in [0, 1]. `name` names the image in error messages. An empty image, one under `MIN_IMAGE_SIDE` pixels on a
    side or over `max_pixels` pixels (None: `MAX_IMAGE_PIXELS`) raises a ValueError.
    """
    if isinstance(image, PIL.Image.Image):
        return _array_to_rgb(_pil_to_array(_checked_pil(image, name, max_pixels)), name)
    if isinstance(image, np.ndarray):
        if image.ndim in (2, 3):
            check_image_size(image.shape[1], image.shape[0], name, max_pixels)
        return _array_to_rgb(image, name)
    raise ValueError(
        f"{name} must be a PIL image or a numpy array (H, W[, C]), got {type(image).__module__}."
        f"{type(image).__name__}"
    )


def rgb_image(image: PIL.Image.Image | np.ndarray, name: str = "image", max_pixels: int | None = None) -> PIL.Image.Image:
    """Any supported image (see `image_to_rgb`) -> an RGB PIL image (an upright RGB PIL image is returned as it
    is)."""
    if isinstance(image, PIL.Image.Image) and image.mode == "RGB":
        return _checked_pil(image, name, max_pixels)
    return PIL.Image.fromarray(image_to_rgb(image, name, max_pixels))


def crop_image(image: PIL.Image.Image, affine: np.ndarray, output_size: int) -> PIL.Image.Image:
    """Warp `image` by the (2, 3) `affine` (original pixels -> output pixels) into an `output_size` square.

    Bilinear; outside the image is black. When the warp shrinks the image by 2 or more, the image is first
    box-filtered by the largest integer factor `f` it still shrinks by (`PIL.Image.reduce`), against aliasing:
    reduced pixel i averages original pixels f*i .. f*i + f - 1, whose centre is f*i + (f - 1) / 2.

    Our pixel centres sit at integer coordinates and PIL's at half integers, so the affine PIL receives is
    `p -> affine(p - 1/2) + 1/2`, inverted (PIL maps output to input).
    """
    affine = to_homogeneous_affine(affine)
    factor = int(np.floor(1 / np.sqrt(abs(np.linalg.det(affine[:2, :2])))))
    if factor >= 2:
        image = image.reduce(factor)
        offset = (factor - 1) / 2
        affine = affine @ np.array([[factor, 0.0, offset], [0.0, factor, offset], [0.0, 0.0, 1.0]])
    half_pixel = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    pil_affine = half_pixel @ affine @ np.linalg.inv(half_pixel)
    output_to_input = np.linalg.inv(pil_affine)[:2].reshape(-1)
    return image.transform(
        (output_size, output_size),
        PIL.Image.Transform.AFFINE,
        tuple(output_to_input),
        resample=PIL.Image.Resampling.BILINEAR,
    )
