"""Feature matching (paper sections 3.1 and 3.3): per-axis text transformers over the frozen CLIP text features,
pose-aware features from the lixel heatmaps, and the per-axis logit matrices with learnable temperatures."""

import torch
from torch import nn
from torch.nn import functional

from .transformer import TransformerEncoder

AXES = ("x", "y", "z")
# Upper bound of the learnable inverse temperature, as in CLIP.
MAX_LOGIT_SCALE = 100.0


class AxisTextEncoder(nn.Module):
    """Phi_axis: a transformer over the CLIP token features of one axis' prompt, pooled at the last real token
    (the end-of-text token) and projected to the shared embedding space."""

    def __init__(self, hidden_size: int, num_layers: int, num_heads: int, projection_dim: int):
        super().__init__()
        self.transformer = TransformerEncoder(hidden_size, num_heads, num_layers, mlp_ratio=4)
        self.projection = nn.Linear(hidden_size, projection_dim)

    def forward(self, token_features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """token_features (N, L, D), attention_mask (N, L) with 1 for real tokens -> embeddings (N, P)."""
        hidden = self.transformer(token_features, padding_mask=attention_mask == 0)
        last_token = attention_mask.long().sum(dim=1).clamp(min=1) - 1
        pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last_token]
        return self.projection(pooled)


class PoseTextMatcher(nn.Module):
    """Projects the pose-aware features (one 1D heatmap per joint and axis) and the text features of the three
    prompts into one space, L2-normalised, with one learnable temperature per axis."""

    def __init__(
        self,
        num_joints: int,
        heatmap_lengths: tuple[int, int, int],
        text_hidden_size: int,
        text_layers: int,
        text_heads: int,
        projection_dim: int,
        logit_scale_init_value: float,
    ):
        super().__init__()
        self.pose_projections = nn.ModuleList(
            nn.Sequential(
                nn.Linear(num_joints * length, projection_dim), nn.GELU(), nn.Linear(projection_dim, projection_dim)
            )
            for length in heatmap_lengths
        )
        self.text_encoders = nn.ModuleList(
            AxisTextEncoder(text_hidden_size, text_layers, text_heads, projection_dim) for _ in AXES
        )
        self.logit_scale_init_value = logit_scale_init_value
        self.logit_scales = nn.Parameter(torch.full((len(AXES),), logit_scale_init_value))

    def pose_embeddings(self, heatmap_logits: tuple[torch.Tensor, ...]) -> torch.Tensor:
        """Lixel heatmap logits (x, y, z), each (B, J, L_axis) -> normalised pose embeddings (B, 3, P)."""
        embeddings = [
            projection(logits.flatten(1))
            for projection, logits in zip(self.pose_projections, heatmap_logits, strict=True)
        ]
        return functional.normalize(torch.stack(embeddings, dim=1), dim=-1)

    def text_embeddings(self, token_features: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """CLIP token features (B, 3, L, D) and mask (B, 3, L) -> normalised text embeddings (B, 3, P)."""
        embeddings = [
            encoder(token_features[:, axis], attention_mask[:, axis])
            for axis, encoder in enumerate(self.text_encoders)
        ]
        return functional.normalize(torch.stack(embeddings, dim=1), dim=-1)

    def scales(self) -> torch.Tensor:
        """Inverse temperatures tau_x, tau_y, tau_z (3,), clamped to at most 100."""
        return self.logit_scales.exp().clamp(max=MAX_LOGIT_SCALE)
