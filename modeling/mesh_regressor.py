"""Coarse-to-fine mesh regressor (paper section 3.4).

joints uvd -> joint heatmap planes (xy, xz, yz) with F0 -> F_J (one feature vector per joint) -> levels of
(nodes, width), e.g. 21/256 -> 98/128 -> 389/64 -> 778/32: nodes are upsampled between levels by the topology's
matrices plus a learned correction, a transformer attends over the nodes of one sample (never across the batch),
and pyramid features sampled at the predicted joints are spread to the nodes (feature projection). An MLP turns
the last level into offsets from the upsampled joints: the vertices in uvd space.
"""

import torch
from torch import nn
from torch.nn import functional

from .hand_topology import HandTopology
from .transformer import TransformerEncoder

# Templates are in metres (a hand spans ~0.2 m): scale them to order one before the positional encoding.
TEMPLATE_SCALE = 10.0


def joint_heatmap_planes(joints_uvd: torch.Tensor, heatmap_size: int, depth_size: int, sigma: float) -> torch.Tensor:
    """Gaussian heatmaps of the joints on the xy, xz and yz planes (paper appendix A.2).

    Args:
        joints_uvd: (B, J, 3), u and v in heatmap pixels, d in depth bins.
        sigma: standard deviation in heatmap pixels.

    Returns:
        (B, 3 * J, heatmap_size, heatmap_size): the J xy planes, then the J xz planes (rows: d), then the J yz
        planes (rows: d). Depth is rescaled to heatmap pixels when depth_size differs from heatmap_size.
    """
    grid = torch.arange(heatmap_size, device=joints_uvd.device, dtype=joints_uvd.dtype)
    u, v = joints_uvd[..., 0], joints_uvd[..., 1]
    d = joints_uvd[..., 2] * (heatmap_size / depth_size)

    def gaussian_1d(centre: torch.Tensor) -> torch.Tensor:
        return torch.exp(-((grid - centre[..., None]) ** 2) / (2 * sigma**2))

    along_u, along_v, along_d = gaussian_1d(u), gaussian_1d(v), gaussian_1d(d)
    plane_xy = along_v[..., :, None] * along_u[..., None, :]
    plane_xz = along_d[..., :, None] * along_u[..., None, :]
    plane_yz = along_d[..., :, None] * along_v[..., None, :]
    return torch.cat([plane_xy, plane_xz, plane_yz], dim=1)


def sample_at_joints(feature_map: torch.Tensor, joints_uvd: torch.Tensor, image_size: int, heatmap_size: int):
    """Bilinear samples of `feature_map` (B, C, h, w), which covers the crop, at the joints' u, v.

    Coordinates are normalised to [-1, 1] for grid_sample (align_corners=False: -1 and 1 are the crop's outer
    pixel edges). Returns (B, J, C).
    """
    crop_pixels = joints_uvd[..., :2] * (image_size / heatmap_size)
    grid = (2 * crop_pixels + 1) / image_size - 1
    sampled = functional.grid_sample(feature_map, grid[:, :, None, :], mode="bilinear", align_corners=False)
    return sampled[..., 0].transpose(1, 2)


class JointFeatureEncoder(nn.Module):
    """Joint heatmap planes (B, 3J, H, H) + F0 (B, C0, H, H) -> F_J (B, J, width): a CNN adjusts the channels to
    one map per joint (its first, strided convolution halves the resolution, which the pooling to `plane_size`
    would discard anyway), pooled to `plane_size` x `plane_size`; an MLP turns each flattened map into a feature."""

    def __init__(self, num_joints: int, stem_channels: int, plane_size: int, width: int, hidden_channels: int = 32):
        super().__init__()
        self.plane_size = plane_size
        self.convolutions = nn.Sequential(
            nn.Conv2d(3 * num_joints + stem_channels, hidden_channels, kernel_size=3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(hidden_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden_channels, num_joints, kernel_size=3, padding=1),
        )
        self.mlp = nn.Sequential(nn.Linear(plane_size**2, width), nn.GELU(), nn.Linear(width, width))

    def forward(self, joint_planes: torch.Tensor, stem_features: torch.Tensor) -> torch.Tensor:
        maps = self.convolutions(torch.cat([joint_planes, stem_features], dim=1))
        maps = functional.adaptive_avg_pool2d(maps, self.plane_size)
        return self.mlp(maps.flatten(2))


class TopologyBuffers(nn.Module):
    """The mesh topology as persistent buffers, so it travels inside every checkpoint.

    `template_vertices_{k}` (n_k, 3) metres, `upsample_{k}` (n_{k+1}, n_k), `faces` (F, 3),
    `joint_regressor` (J, V).
    """

    def __init__(self, topology: HandTopology):
        super().__init__()
        for level, vertices in enumerate(topology.template_vertices):
            self.register_buffer(f"template_vertices_{level}", vertices.float().clone())
        for level, matrix in enumerate(topology.upsample):
            self.register_buffer(f"upsample_{level}", matrix.float().clone())
        self.register_buffer("faces", topology.faces.long().clone())
        self.register_buffer("joint_regressor", topology.joint_regressor.float().clone())
        self.num_levels = len(topology.template_vertices)

    def template(self, level: int) -> torch.Tensor:
        return getattr(self, f"template_vertices_{level}")

    def upsample_matrix(self, level: int) -> torch.Tensor:
        return getattr(self, f"upsample_{level}")

    def upsample_chain(self, from_level: int, to_level: int) -> torch.Tensor:
        """The product of the upsampling matrices from `from_level` to `to_level`: (n_to, n_from), in float32 also
        under mixed precision (bfloat16 would round its weights to 3 significant digits)."""
        matrix = torch.eye(self.template(from_level).shape[0], device=self.faces.device)
        with torch.autocast(matrix.device.type, enabled=False):
            for level in range(from_level, to_level):
                matrix = self.upsample_matrix(level) @ matrix
        return matrix

    def copy_from(self, topology: HandTopology) -> None:
        """Overwrite the buffers with `topology`, whose shapes must match."""
        for name, value in TopologyBuffers(topology).state_dict().items():
            current = getattr(self, name)
            if current.shape != value.shape:
                raise ValueError(
                    f"topology tensor {name} has shape {tuple(value.shape)}, the model has {tuple(current.shape)}"
                )
            current.copy_(value)


class MeshLevel(nn.Module):
    """One level of the mesh regressor: width change, positional encoding of the level's template, feature
    projection from one pyramid level, and a transformer over the level's nodes."""

    def __init__(
        self,
        in_width: int,
        width: int,
        num_layers: int,
        num_heads: int,
        pyramid_channels: int,
        use_feature_projection: bool,
    ):
        super().__init__()
        self.input_projection = nn.Linear(in_width, width)
        self.position_encoding = nn.Linear(3, width)
        self.feature_projection = nn.Linear(pyramid_channels, width) if use_feature_projection else None
        self.transformer = TransformerEncoder(width, num_heads, num_layers)

    def forward(
        self,
        nodes: torch.Tensor,
        template: torch.Tensor,
        joint_samples: torch.Tensor | None,
        joints_to_nodes: torch.Tensor,
    ) -> torch.Tensor:
        """nodes (B, n, in_width), template (n, 3) metres, joint_samples (B, J, C) or None,
        joints_to_nodes (n, J) -> (B, n, width)."""
        hidden = self.input_projection(nodes) + self.position_encoding(template * TEMPLATE_SCALE)
        if self.feature_projection is not None and joint_samples is not None:
            hidden = hidden + joints_to_nodes @ self.feature_projection(joint_samples)
        return self.transformer(hidden)


class MeshRegressor(nn.Module):
    """F_J (B, J, width_0) and the pyramid -> vertices in uvd space (B, V, 3)."""

    def __init__(self, config, topology: HandTopology, pyramid_channels: list[int]):
        super().__init__()
        self.image_size = config.image_size
        self.heatmap_size = config.heatmap_size
        self.use_sparse_to_dense = config.use_sparse_to_dense
        self.topology = TopologyBuffers(topology)
        widths = config.mesh_widths
        sizes = list(config.level_sizes)
        self.levels = nn.ModuleList(
            MeshLevel(
                widths[max(level - 1, 0)],
                widths[level],
                config.mesh_transformer_layers[level],
                config.mesh_attention_heads[level],
                pyramid_channels[level],
                config.use_feature_projection,
            )
            for level in range(len(sizes))
        )
        if self.use_sparse_to_dense:
            # Learned corrections of the topology's upsampling matrices, zero at the start.
            self.upsample_residuals = nn.ParameterList(
                nn.Parameter(torch.zeros(sizes[level + 1], sizes[level])) for level in range(len(sizes) - 1)
            )
        else:
            self.dense_residual = nn.Parameter(torch.zeros(sizes[-1], sizes[0]))
        self.vertex_head = nn.Sequential(nn.Linear(widths[-1], widths[-1]), nn.GELU(), nn.Linear(widths[-1], 3))

    def forward(
        self, joint_features: torch.Tensor, joints_uvd: torch.Tensor, pyramid: list[torch.Tensor]
    ) -> torch.Tensor:
        """joint_features (B, J, width_0); joints_uvd (B, J, 3); pyramid: feature maps coarse to fine, one per
        level (F4, F3, F2, F1). Returns vertices (B, V, 3) in uvd space."""
        nodes = joint_features
        last_level = len(self.levels) - 1
        for level, mesh_level in enumerate(self.levels):
            if self.use_sparse_to_dense and level > 0:
                upsample = self.topology.upsample_matrix(level - 1) + self.upsample_residuals[level - 1]
                nodes = upsample @ nodes
            node_level = level if self.use_sparse_to_dense else 0
            joints_to_nodes = self.topology.upsample_chain(0, node_level)
            joint_samples = None
            if mesh_level.feature_projection is not None:
                joint_samples = sample_at_joints(pyramid[level], joints_uvd, self.image_size, self.heatmap_size)
            nodes = mesh_level(nodes, self.topology.template(node_level), joint_samples, joints_to_nodes)
        joints_to_vertices = self.topology.upsample_chain(0, last_level)
        if not self.use_sparse_to_dense:
            nodes = (joints_to_vertices + self.dense_residual) @ nodes
        # The anchor vertices stay in float32 under mixed precision: bfloat16 would round them to 1/8-1/4 of a bin.
        with torch.autocast(joints_uvd.device.type, enabled=False):
            anchor_vertices = joints_to_vertices @ joints_uvd.float()
        return anchor_vertices + self.vertex_head(nodes).float()
