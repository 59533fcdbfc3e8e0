"""Lixel-map joint regressor (paper section 3.2): F4 -> deconvolutions -> 1D heatmaps along u, v, d -> soft-argmax."""

import torch
from torch import nn


def soft_argmax_1d(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Expected index under the softmax of `logits` (..., L) along the last axis.

    Returns (coordinates (...,) in bins, from 0 to L - 1, and the probabilities (..., L)), both in float32: under
    bfloat16 autocast the expected index would otherwise be rounded to 1/8-1/4 of a bin.
    """
    probabilities = logits.float().softmax(dim=-1)
    positions = torch.arange(logits.shape[-1], device=logits.device, dtype=probabilities.dtype)
    return (probabilities * positions).sum(dim=-1), probabilities


class LixelJointRegressor(nn.Module):
    """Predicts the joints in uvd space from the last feature map F4.

    F4 (B, C4, h, w) is reduced by a 1x1 convolution and upsampled by deconvolutions (kernel 4, stride 2) to F_l
    (B, C, H, H) with H the heatmap size.
    The x and y lixel features average F_l over the other image axis; the depth feature comes from the globally
    pooled F_l expanded to `depth_size` positions (the multi-layer Conv1d* of the paper). A 1D convolution turns
    each into one 1D heatmap per joint (the pose-aware features F_px, F_py, F_pz).
    """

    def __init__(self, in_channels: int, deconv_channels: list[int], num_joints: int, depth_size: int):
        super().__init__()
        # A 1x1 convolution first brings F4's channels down, so that the deconvolutions stay cheap.
        layers = [
            nn.Conv2d(in_channels, deconv_channels[0], kernel_size=1, bias=False),
            nn.BatchNorm2d(deconv_channels[0]),
            nn.ReLU(inplace=True),
        ]
        channels = deconv_channels[0]
        for out_channels in deconv_channels:
            layers += [
                nn.ConvTranspose2d(channels, out_channels, kernel_size=4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            channels = out_channels
        self.deconv = nn.Sequential(*layers)
        self.depth_size = depth_size
        self.depth_expand = nn.Sequential(
            nn.Conv1d(channels, channels * depth_size, kernel_size=1),
            nn.ReLU(inplace=True),
        )
        self.feature_channels = channels
        self.heatmap_x = nn.Conv1d(channels, num_joints, kernel_size=1)
        self.heatmap_y = nn.Conv1d(channels, num_joints, kernel_size=1)
        self.heatmap_z = nn.Conv1d(channels, num_joints, kernel_size=1)

    def forward(
        self, feature_map: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """F4 (B, C4, h, w) -> joints_uvd (B, J, 3), heatmap logits (x, y, z), heatmap probabilities (x, y, z).

        u and v are in heatmap pixels (0 .. heatmap_size - 1), d in depth bins (0 .. depth_size - 1).
        """
        upsampled = self.deconv(feature_map)
        logits_x = self.heatmap_x(upsampled.mean(dim=2))
        logits_y = self.heatmap_y(upsampled.mean(dim=3))
        pooled = upsampled.mean(dim=(2, 3))[:, :, None]
        depth_features = self.depth_expand(pooled).view(feature_map.shape[0], self.feature_channels, self.depth_size)
        logits_z = self.heatmap_z(depth_features)
        u, probabilities_x = soft_argmax_1d(logits_x)
        v, probabilities_y = soft_argmax_1d(logits_y)
        d, probabilities_z = soft_argmax_1d(logits_z)
        joints_uvd = torch.stack([u, v, d], dim=-1)
        return joints_uvd, (logits_x, logits_y, logits_z), (probabilities_x, probabilities_y, probabilities_z)
