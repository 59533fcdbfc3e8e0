"""What a real camera does to the synthetic image after the scene is rendered: objects in front of the hand,
white balance and exposure, vignetting, defocus and motion blur, sensor noise and JPEG compression.

`sample_camera_effects` draws every parameter from the sample's generator (so a sample stays a function of
`(seed, split, index)`); `apply_occluders` and `apply_camera_effects` are deterministic given them.
"""

import io

import numpy as np
import PIL.Image
import PIL.ImageDraw
import PIL.ImageFilter
from scipy.ndimage import convolve

from clip_hand3d.data.synthetic.appearance import random_color

OCCLUDER_PROBABILITY = 0.3  # objects (a stick, a box, a ball, a sheet's edge) partly in front of the hand
DEFOCUS_PROBABILITY = 0.3
MOTION_BLUR_PROBABILITY = 0.15
JPEG_PROBABILITY = 0.6
JPEG_QUALITY_RANGE = (30, 95)
MAX_OCCLUDED_FRACTION = 0.35  # occluders never hide more than this share of the hand's pixels


def sample_camera_effects(rng: np.random.Generator, image_size: int, hand_box: np.ndarray) -> dict:
    """Random camera effects for one image of `image_size` pixels whose hand's box (x1, y1, x2, y2) pixels is
    `hand_box`. Sizes scale with the image (the values are for 224 px)."""
    scale = image_size / 224
    centre = (hand_box[:2] + hand_box[2:]) / 2
    side = max(float(np.max(hand_box[2:] - hand_box[:2])), 1.0)
    occluders = []
    if rng.random() < OCCLUDER_PROBABILITY:
        for _ in range(int(rng.integers(1, 3))):
            occluders.append(
                {
                    "kind": ["stick", "box", "ball", "edge"][int(rng.integers(4))],
                    "centre": centre + rng.uniform(-0.45, 0.45, size=2) * side,
                    "size": rng.uniform(0.12, 0.4) * side,
                    "angle": rng.uniform(0, np.pi),
                    "color": random_color(rng),
                    "shade": rng.uniform(0.0, 0.35),
                }
            )
    return {
        "occluders": occluders,
        "white_balance": rng.uniform(0.9, 1.1, size=3),
        "exposure": float(np.exp(np.clip(rng.normal(0.0, 0.15), -0.3, 0.2))),
        "vignetting": rng.uniform(0.0, 0.35),
        "defocus_sigma": rng.uniform(0.4, 1.6) * scale if rng.random() < DEFOCUS_PROBABILITY else 0.0,
        "motion_length": rng.uniform(3, 9) * scale if rng.random() < MOTION_BLUR_PROBABILITY else 0.0,
        "motion_angle": rng.uniform(0, np.pi),
        "grain": (rng.normal(size=(image_size, image_size, 3)) * rng.uniform(0, 4)).astype(np.float32),
        "jpeg_quality": int(rng.integers(*JPEG_QUALITY_RANGE)) if rng.random() < JPEG_PROBABILITY else None,
    }


def apply_occluders(rgb: np.ndarray, mask: np.ndarray, occluders: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Draw the occluders over the image ((H, W, 3) uint8) and take their pixels out of the hand's mask. An
    occluder that would hide more than `MAX_OCCLUDED_FRACTION` of the hand is left out."""
    if not occluders:
        return rgb, mask
    image = PIL.Image.fromarray(rgb)
    for occluder in occluders:
        layer = PIL.Image.new("L", image.size, 0)
        _draw_occluder(PIL.ImageDraw.Draw(layer), occluder)
        covered = np.asarray(layer) > 127
        if mask.any() and (covered & mask).sum() > MAX_OCCLUDED_FRACTION * mask.sum():
            continue
        shading = _occluder_shading(covered.shape, occluder)
        color = np.clip(occluder["color"][None, None] * shading[..., None] * 255, 0, 255)
        pixels = np.asarray(image).copy()
        pixels[covered] = color[covered].astype(np.uint8)
        image = PIL.Image.fromarray(pixels)
        mask = mask & ~covered
    return np.asarray(image), mask


def _draw_occluder(draw: PIL.ImageDraw.ImageDraw, occluder: dict) -> None:
    """Fill the occluder's shape with 255 on an "L" layer."""
    (x, y), size, angle = occluder["centre"], occluder["size"], occluder["angle"]
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]])
    if occluder["kind"] == "stick":  # a pen, a handle or a cable across the hand
        half_length, half_width = 2.5 * size, 0.12 * size
        corners = [
            (x, y) + sign_a * half_length * direction + sign_b * half_width * normal
            for sign_a, sign_b in ((1, 1), (1, -1), (-1, -1), (-1, 1))
        ]
        draw.polygon([tuple(corner) for corner in corners], fill=255)
    elif occluder["kind"] == "box":
        corners = [
            (x, y) + sign_a * size * direction + sign_b * 0.6 * size * normal
            for sign_a, sign_b in ((1, 1), (1, -1), (-1, -1), (-1, 1))
        ]
        draw.polygon([tuple(corner) for corner in corners], fill=255)
    elif occluder["kind"] == "ball":
        draw.ellipse([x - size, y - size, x + size, y + size], fill=255)
    else:  # the edge of a sheet, a table or a sleeve: a half-plane beyond a line near the hand
        far = 3 * size
        corners = [
            (x, y) + far * direction,
            (x, y) - far * direction,
            (x, y) - far * direction + far * normal,
            (x, y) + far * direction + far * normal,
        ]
        draw.polygon([tuple(corner) for corner in corners], fill=255)


def _occluder_shading(shape: tuple[int, int], occluder: dict) -> np.ndarray:
    """A linear brightness ramp across the occluder (1 - shade .. 1), so that it reads as a lit solid."""
    y, x = np.mgrid[0 : shape[0], 0 : shape[1]]
    angle = occluder["angle"] + np.pi / 2
    ramp = (x - occluder["centre"][0]) * np.cos(angle) + (y - occluder["centre"][1]) * np.sin(angle)
    ramp = np.clip(0.5 + ramp / (4 * max(occluder["size"], 1.0)), 0.0, 1.0)
    return 1.0 - occluder["shade"] * ramp


def apply_camera_effects(rgb: np.ndarray, effects: dict) -> np.ndarray:
    """The image ((H, W, 3) uint8) as the camera records it: white balance and exposure, vignetting, defocus and
    motion blur, sensor grain, then JPEG compression."""
    height, width = rgb.shape[:2]
    image = rgb.astype(np.float32) * (effects["white_balance"] * effects["exposure"]).astype(np.float32)
    if effects["vignetting"] > 0:
        y, x = np.mgrid[0:height, 0:width]
        radius = np.hypot((x - (width - 1) / 2) / width, (y - (height - 1) / 2) / height) / np.sqrt(0.5)
        image *= (1.0 - effects["vignetting"] * radius**2)[..., None].astype(np.float32)
    if effects["defocus_sigma"] > 0:
        blurred = PIL.Image.fromarray(np.clip(np.round(image), 0, 255).astype(np.uint8))
        image = np.asarray(blurred.filter(PIL.ImageFilter.GaussianBlur(effects["defocus_sigma"])), dtype=np.float32)
    if effects["motion_length"] > 0:
        image = _motion_blur(image, effects["motion_length"], effects["motion_angle"])
    image = np.clip(np.round(image + effects["grain"][:height, :width]), 0, 255).astype(np.uint8)
    if effects["jpeg_quality"] is not None:
        buffer = io.BytesIO()
        PIL.Image.fromarray(image).save(buffer, format="JPEG", quality=effects["jpeg_quality"])
        image = np.asarray(PIL.Image.open(buffer).convert("RGB"))
    return image


def _motion_blur(image: np.ndarray, length: float, angle: float) -> np.ndarray:
    """Average along a line of `length` pixels at `angle` (a straight camera shake during the exposure)."""
    size = int(np.ceil(length)) | 1
    kernel = np.zeros((size, size), dtype=np.float32)
    centre = size // 2
    for t in np.linspace(-0.5, 0.5, 4 * size):
        kernel[round(centre + t * length * np.sin(angle)), round(centre + t * length * np.cos(angle))] += 1.0
    kernel /= kernel.sum()
    return np.stack([convolve(image[..., channel], kernel, mode="nearest") for channel in range(3)], axis=-1)
