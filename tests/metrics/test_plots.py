"""Tests of clip_hand3d.plots: PNG files of the expected size, the expected axes, legends and data."""

import numpy as np
import pytest
from PIL import Image

from clip_hand3d.plots import LOGIT_AXIS_TITLES, plot_logit_matrices, plot_pck_curves

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path) -> np.ndarray:
    """The PNG's pixels (H, W, channels), after checking the file really is a PNG."""
    with open(path, "rb") as file:
        assert file.read(8) == PNG_SIGNATURE
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def test_pck_curves_png_with_auc_in_legend(tmp_path):
    path = tmp_path / "plots" / "pck.png"
    curves = {
        "linear": (np.linspace(0.0, 50.0, 11), np.linspace(0.0, 1.0, 11)),  # area 25 / 50 mm
        "perfect": ([0.0, 50.0], [1.0, 1.0]),
        "late": ([20.0, 30.0, 50.0], [0.0, 0.5, 1.0]),  # (2.5 + 15) / 30 mm
    }
    figure = plot_pck_curves(curves, path, title="FreiHAND validation")

    pixels = read_png(path)
    assert pixels.shape[:2] == (450, 600)
    assert pixels.std() > 0
    assert len(figure.axes) == 1
    axes = figure.axes[0]
    assert [text.get_text() for text in axes.get_legend().get_texts()] == [
        "linear (AUC=0.500)",
        "perfect (AUC=1.000)",
        f"late (AUC={17.5 / 30:.3f})",
    ]
    assert axes.get_title() == "FreiHAND validation"
    np.testing.assert_allclose(axes.get_lines()[2].get_xydata(), [[20.0, 0.0], [30.0, 0.5], [50.0, 1.0]])


def test_logit_matrices_png_has_three_titled_heatmaps(tmp_path):
    path = tmp_path / "logits.png"
    logits = np.random.default_rng(0).normal(size=(3, 5, 5)) + 3 * np.eye(5)
    figure = plot_logit_matrices(logits, path)

    pixels = read_png(path)
    assert pixels.shape[:2] == (500, 1500)
    # Three heatmaps, each with its colour bar.
    assert len(figure.axes) == 6
    heatmap_axes = [axes for axes in figure.axes if axes.get_title()]
    assert [axes.get_title() for axes in heatmap_axes] == list(LOGIT_AXIS_TITLES)
    for axes, matrix in zip(heatmap_axes, logits, strict=True):
        assert len(axes.images) == 1
        np.testing.assert_array_equal(axes.images[0].get_array(), matrix)


def test_logit_matrices_with_thumbnails(tmp_path):
    path = tmp_path / "logits_with_images.png"
    rng = np.random.default_rng(1)
    images = [rng.random((16, 16, 3)), (rng.random((16, 16)) * 255).astype(np.uint8), rng.random((8, 8, 4))]
    figure = plot_logit_matrices(rng.normal(size=(3, 3, 3)), path, images=images)

    assert read_png(path).shape[:2] == (500, 1500)
    heatmap_axes = [axes for axes in figure.axes if axes.get_title()]
    assert len(heatmap_axes) == 3
    for axes in heatmap_axes:
        # The heatmap, then one thumbnail per row, each in the unit cell left of its row.
        assert len(axes.images) == 1 + 3
        assert [tuple(image.get_extent()) for image in axes.images[1:]] == [
            (-2.0, -1.0, row + 0.5, row - 0.5) for row in range(3)
        ]
    # The grey image is drawn as RGB.
    assert heatmap_axes[0].images[2].get_array().shape == (16, 16, 3)


@pytest.mark.parametrize(
    ("curves", "message"),
    [
        ({}, "curves is empty"),
        ({"a": ([0.0, 1.0, 2.0], [0.0, 1.0])}, "curve 'a': thresholds have shape"),
        ({"a": ([0.0, 1.0], [0.0, 1.5])}, r"curve 'a': pck values must lie in \[0, 1\]"),
        ({"a": ([1.0, 0.0], [0.0, 1.0])}, "thresholds must be a 1D increasing"),
    ],
)
def test_bad_curves_raise_clear_errors(tmp_path, curves, message):
    with pytest.raises(ValueError, match=message):
        plot_pck_curves(curves, tmp_path / "pck.png")
    assert not (tmp_path / "pck.png").exists()


@pytest.mark.parametrize(
    ("logits", "images", "message"),
    [
        (np.zeros((2, 4, 4)), None, r"logits must have shape \(3, batch, batch\)"),
        (np.zeros((3, 4, 5)), None, r"logits must have shape \(3, batch, batch\)"),
        (np.full((3, 2, 2), np.nan), None, "logits contain NaN"),
        (np.zeros((3, 2, 2)), [np.zeros((4, 4, 3))], "got 1 images for logit matrices of batch size 2"),
        (np.zeros((3, 1, 1)), [np.full((4, 4, 3), 2.0)], r"images\[0\] must be uint8 or floats in \[0, 1\]"),
        (np.zeros((3, 1, 1)), [np.zeros((3, 8, 8))], r"images\[0\] must have shape \(H, W\)"),
    ],
)
def test_bad_logits_or_images_raise_clear_errors(tmp_path, logits, images, message):
    with pytest.raises(ValueError, match=message):
        plot_logit_matrices(logits, tmp_path / "logits.png", images=images)
