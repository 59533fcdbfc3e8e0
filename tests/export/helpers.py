"""Helpers of the export tests."""

import torch

from clip_hand3d.modeling import CLIPHand3DModel

# The tests' bound on an exported float32 graph's deviation from PyTorch, as a fraction of the heatmap size.
FLOAT_TOLERANCE = 1e-3


def torch_outputs(model: CLIPHand3DModel, pixel_values: torch.Tensor):
    with torch.inference_mode():
        return model(pixel_values=pixel_values, predict_mesh=True)


def max_deviation(outputs, reference) -> tuple[float, float]:
    """Largest |difference| of joints_uvd and of vertices_uvd, uvd units."""
    joints = (outputs.joints_uvd - reference.joints_uvd).abs().max().item()
    vertices = (outputs.vertices_uvd - reference.vertices_uvd).abs().max().item()
    return joints, vertices
