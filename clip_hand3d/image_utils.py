"""Image helpers shared by the image processor and the training transform: any image in as RGB, and the crop warp.

Pixel coordinates follow `clip_hand3d.geometry`: continuous, pixel centres at integers.
"""

import numpy as np
import PIL.Image

from clip_hand3d.geometry import to_homogeneous_affine

SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")
TRANSPARENT_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


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


def image_to_rgb(image: PIL.Image.Image | np.ndarray, name: str = "image") -> np.ndarray:
    """Any supported image -> (H, W, 3) uint8 RGB array.

    PIL images of any mode (alpha composited on black, greyscale repeated, 16-bit scaled to 8-bit) or numpy
    arrays (H, W), (H, W, 1), (H, W, 3), (H, W, 4) of uint8, uint16 or float in [0, 1]. `name` names the
    image in error messages.
    """
    if isinstance(image, PIL.Image.Image):
        if image.width == 0 or image.height == 0:
            raise ValueError(f"{name} is empty (size {image.size})")
        return _array_to_rgb(_pil_to_array(image), name)
    if isinstance(image, np.ndarray):
        return _array_to_rgb(image, name)
    raise ValueError(
        f"{name} must be a PIL image or a numpy array (H, W[, C]), got {type(image).__module__}."
        f"{type(image).__name__}"
    )


def rgb_image(image: PIL.Image.Image | np.ndarray, name: str = "image") -> PIL.Image.Image:
    """Any supported image (see `image_to_rgb`) -> an RGB PIL image (an RGB PIL image is returned as it is)."""
    if isinstance(image, PIL.Image.Image) and image.mode == "RGB" and image.width > 0 and image.height > 0:
        return image
    return PIL.Image.fromarray(image_to_rgb(image, name))


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
