"""Shared by the synthetic set's tests: the image size, the label names and row comparisons."""

import io

import numpy as np
import PIL.Image

from clip_hand3d.data.synthetic.freihand_export import JPEG_OPTIONS

SIZE = 64
LABELS = ("joints_xyz", "vertices_xyz", "K", "joints_uv", "box", "scale", "is_left")


def pixels(image) -> np.ndarray:
    return np.asarray(image)


def jpeg_round_trip(image: PIL.Image.Image) -> PIL.Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", **JPEG_OPTIONS)
    return PIL.Image.open(buffer)


def assert_same_rows(row: dict, expected: dict) -> None:
    np.testing.assert_array_equal(pixels(row["image"]), pixels(expected["image"]))
    np.testing.assert_array_equal(pixels(row["mask"]), pixels(expected["mask"]))
    for name in LABELS:
        np.testing.assert_allclose(
            np.asarray(row[name], dtype=np.float64), np.asarray(expected[name], dtype=np.float64), rtol=0, atol=1e-6
        )
