"""Figures for evaluation reports: PCK curves (the paper's Fig. 7) and CLIP logit matrices (Figs. 4 and 10).

The figures are drawn on matplotlib's Agg canvas directly (no pyplot, no display, no global state), so they
work headless and in threads. Each function writes a PNG and returns the `Figure` for further use.
"""

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from clip_hand3d.metrics import area_under_curve

# Prompt axes in the order of the logit matrices, as the paper titles them.
LOGIT_AXIS_TITLES = ("Left to Right", "Top to Bottom", "Near to Far")

PCK_FIGURE_SIZE_INCHES = (6.0, 4.5)
LOGIT_PANEL_SIZE_INCHES = 5.0
DPI = 100


def _save_png(figure: Figure, path: str | Path) -> Path:
    """Render `figure` with Agg and write it as a PNG at `DPI` (its pixel size is its size in inches x DPI)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def plot_pck_curves(
    curves: Mapping[str, tuple[Sequence[float], Sequence[float]]], path: str | Path, title: str = "3D PCK"
) -> Figure:
    """Plot PCK curves, one per method, with each curve's AUC in the legend (the paper's Fig. 7).

    Args:
        curves: method name -> (thresholds in mm, increasing; PCK in [0, 1] at each threshold), e.g.
            `{"ours": (scores["pck_thresholds_mm"], scores["pck_joints"])}` from `freihand_scores`.
        path: where to write the PNG (600 x 450 pixels); parent folders are created.
        title: the figure's title.

    Returns:
        The figure: one axes, one line per curve, labelled "name (AUC=0.xxx)" with the AUC normalised over
        that curve's threshold range.
    """
    if not curves:
        raise ValueError("curves is empty: give at least one name -> (thresholds_mm, pck)")
    figure = Figure(figsize=PCK_FIGURE_SIZE_INCHES, layout="constrained")
    axes = figure.add_subplot()
    for name, (thresholds_mm, pck) in curves.items():
        thresholds_mm = np.asarray(thresholds_mm, dtype=np.float64)
        pck = np.asarray(pck, dtype=np.float64)
        if pck.shape != thresholds_mm.shape or pck.ndim != 1:
            raise ValueError(
                f"curve '{name}': thresholds have shape {thresholds_mm.shape} but pck has shape {pck.shape}; "
                "both must be 1D of the same length"
            )
        if not np.all((pck >= 0) & (pck <= 1)):
            raise ValueError(f"curve '{name}': pck values must lie in [0, 1]")
        auc = area_under_curve(pck, thresholds_mm)
        axes.plot(thresholds_mm, pck, linewidth=1.8, label=f"{name} (AUC={auc:.3f})")
    axes.set_xlabel("Error threshold (mm)")
    axes.set_ylabel("3D PCK")
    axes.set_ylim(0.0, 1.02)
    axes.set_title(title)
    axes.grid(True, alpha=0.4)
    axes.legend(loc="lower right")
    _save_png(figure, path)
    return figure


def _thumbnail(index: int, image) -> np.ndarray:
    """`images[index]` checked and as an (H, W, 3|4) array, uint8 or float in [0, 1]; grey images become RGB."""
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[-1] not in (3, 4)):
        raise ValueError(f"images[{index}] must have shape (H, W), (H, W, 3) or (H, W, 4), got {image.shape}")
    if image.dtype != np.uint8 and not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
        raise ValueError(f"images[{index}] must be uint8 or floats in [0, 1] (dtype {image.dtype})")
    if image.ndim == 2:
        return np.repeat(image[..., None], 3, axis=-1)
    return image


def plot_logit_matrices(logits: np.ndarray, path: str | Path, images: Sequence | None = None) -> Figure:
    """Plot the three per-axis image-text logit matrices of a batch (the paper's Figs. 4 and 10).

    Args:
        logits: (3, B, B) array, one matrix per prompt axis in the order "Left to Right", "Top to Bottom",
            "Near to Far"; `logits[a, i, j]` scores image i against text prompt j (rows: images, columns: texts).
            A torch tensor must be converted first (`.detach().cpu().numpy()`).
        path: where to write the PNG (1500 x 500 pixels); parent folders are created.
        images: optional B images (H, W), (H, W, 3) or (H, W, 4), uint8 or floats in [0, 1], drawn as
            thumbnails to the left of their rows.

    Returns:
        The figure: three heatmap axes titled by prompt axis, each with its colour bar (six axes in all).
    """
    logits = np.asarray(logits, dtype=np.float64)
    if logits.ndim != 3 or logits.shape[0] != 3 or logits.shape[1] != logits.shape[2] or logits.shape[1] == 0:
        raise ValueError(f"logits must have shape (3, batch, batch) with batch >= 1, got {logits.shape}")
    if not np.isfinite(logits).all():
        raise ValueError("logits contain NaN or infinite values")
    batch_size = logits.shape[1]
    thumbnails = None
    if images is not None:
        if len(images) != batch_size:
            raise ValueError(f"got {len(images)} images for logit matrices of batch size {batch_size}")
        thumbnails = [_thumbnail(index, image) for index, image in enumerate(images)]

    ticks = np.arange(0, batch_size, max(1, batch_size // 8))
    figure = Figure(figsize=(3 * LOGIT_PANEL_SIZE_INCHES, LOGIT_PANEL_SIZE_INCHES), layout="constrained")
    for matrix, title, axes in zip(logits, LOGIT_AXIS_TITLES, figure.subplots(1, 3), strict=True):
        heatmap = axes.imshow(matrix, cmap="viridis", interpolation="nearest")
        figure.colorbar(heatmap, ax=axes, shrink=0.8)
        left = -0.5
        if thumbnails is not None:
            # Each thumbnail fills the unit cell left of its row, one cell's gap from the matrix.
            left = -2.0
            for row, thumbnail in enumerate(thumbnails):
                axes.imshow(thumbnail, extent=(-2.0, -1.0, row + 0.5, row - 0.5))
        axes.set_xlim(left, batch_size - 0.5)
        axes.set_ylim(batch_size - 0.5, -0.5)
        axes.set_xticks(ticks)
        axes.set_yticks(ticks)
        axes.set_title(title)
        axes.set_xlabel("text prompt")
        axes.set_ylabel("image")
    _save_png(figure, path)
    return figure
