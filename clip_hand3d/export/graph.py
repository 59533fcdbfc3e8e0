"""The inference graph that the exporter captures, and which of its layers int8 keeps in float.

`InferenceGraph` wraps a `CLIPHand3DModel` as pixel_values -> (joints_uvd, vertices_uvd): the model's own forward
(no text inputs, mesh predicted), so the exported graph is the model's inference computation, text tower left out.

int8 (static post-training quantisation) quantises the layers with weights, convolutions and linear layers, in
the encoder, the lixel deconvolutions, the joint feature encoder and the mesh transformers; it keeps in float
what turns features into coordinates, where a rounding of the input moves a joint or a vertex directly:

- the lixel heatmap layers and the depth expansion that feed the soft-argmax (`FLOAT_MODULES`), and the
  soft-argmax itself (softmax and expectation are never quantised);
- the mesh anchors: the topology's upsampling matrices and the joints-to-vertices anchor product, matrix products
  without a layer of their own (`is_topology_product`), and the vertex head's MLP that gives the offsets from the
  anchors;
- attention's two products (activation by activation) and everything that is not a convolution or a matrix
  product with a constant weight (normalisation, GELU, softmax).

Both backends quantise the same ONNX graph, whose node names are the module paths torch.onnx's exporter gives
them ("/model/lixel_regressor/heatmap_x/Conv"): `node_module_path` reads the path back.
"""

import re

import torch
from torch import nn

from clip_hand3d.modeling import CLIPHand3DModel

# Module paths (relative to CLIPHand3DModel) whose layers stay in float under int8.
FLOAT_MODULES = (
    "lixel_regressor.heatmap_x",
    "lixel_regressor.heatmap_y",
    "lixel_regressor.heatmap_z",
    "lixel_regressor.depth_expand",
    "mesh_regressor.vertex_head",
)
# The attribute under which InferenceGraph holds the model: module paths in the captured graph start with it.
MODEL_ATTRIBUTE = "model"
# Matrix products directly inside the mesh regressor or one of its levels (not inside a Linear): the topology's.
_TOPOLOGY_SCOPE = re.compile(r"^mesh_regressor(\.levels\.\d+)?$")


class InferenceGraph(nn.Module):
    """pixel_values (B, 3, S, S) -> joints_uvd (B, 21, 3), vertices_uvd (B, V, 3): what the exporter captures."""

    def __init__(self, model: CLIPHand3DModel):
        super().__init__()
        self.model = model

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        outputs = self.model(pixel_values=pixel_values, predict_mesh=True, return_dict=True)
        return outputs.joints_uvd, outputs.vertices_uvd


def node_module_path(node_name: str) -> str:
    """The module path, relative to CLIPHand3DModel, of an exported node named "/model/<module path>/<Op>"
    ("" for a node of the model itself or of none)."""
    scopes = node_name.strip("/").split("/")[:-1]
    if not scopes or scopes[0] != MODEL_ATTRIBUTE:
        return ""
    return ".".join(scopes[1:])


def is_float_module(path: str) -> bool:
    """Whether the layer at module `path` (relative to CLIPHand3DModel) is kept in float under int8."""
    return any(path == name or path.startswith(name + ".") for name in FLOAT_MODULES)


def is_topology_product(path: str) -> bool:
    """Whether a bare matrix product at module `path` is one of the topology's (upsampling, anchors)."""
    return bool(_TOPOLOGY_SCOPE.match(path))


def keeps_float(node_name: str) -> bool:
    """Whether int8 leaves the exported node `node_name` in float: a float-kept layer, a topology product, or a
    node outside the model's modules."""
    path = node_module_path(node_name)
    return not path or is_float_module(path) or is_topology_product(path)
