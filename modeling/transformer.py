"""A pre-norm transformer encoder block over the tokens of one sample (batch first), on PyTorch's fused
scaled-dot-product attention. Used for the nodes of each mesh level and for the tokens of each axis' prompt."""

import torch
from torch import nn
from torch.nn import functional

# Under CPU bfloat16 autocast, PyTorch's fused attention is slower in bfloat16 than in float32 for short sequences
# (forward + backward, batch 32, 2 heads of 16: 4x at 73 tokens, 5x at 98), so sequences up to this length attend
# in float32 on the CPU: the prompt tokens and the mesh levels of 21 and 98 nodes. The levels of 389 and 778 nodes
# make a whole stage-2 step faster left in bfloat16.
CPU_FLOAT32_ATTENTION_MAX_TOKENS = 128


def attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Scaled dot-product attention of (B, heads, N, head_dim) tensors; `mask` True where a key may be attended.
    Short sequences on the CPU attend in float32 (see CPU_FLOAT32_ATTENTION_MAX_TOKENS) in the dtype they came in."""
    if (
        query.device.type != "cpu"
        or query.dtype == torch.float32
        or query.shape[-2] > CPU_FLOAT32_ATTENTION_MAX_TOKENS
    ):
        return functional.scaled_dot_product_attention(query, key, value, attn_mask=mask)
    with torch.autocast("cpu", enabled=False):
        attended = functional.scaled_dot_product_attention(query.float(), key.float(), value.float(), attn_mask=mask)
    return attended.to(query.dtype)


class TransformerBlock(nn.Module):
    """x + Attention(LayerNorm(x)), then x + MLP(LayerNorm(x)); attention never mixes samples of a batch."""

    def __init__(self, width: int, num_heads: int, mlp_ratio: int = 2):
        super().__init__()
        if width % num_heads != 0:
            raise ValueError(f"width {width} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.attention_norm = nn.LayerNorm(width)
        self.qkv = nn.Linear(width, 3 * width)
        self.output = nn.Linear(width, width)
        self.mlp_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(nn.Linear(width, mlp_ratio * width), nn.GELU(), nn.Linear(mlp_ratio * width, width))

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        """tokens (B, N, width); padding_mask (B, N), True for tokens to ignore as keys. Returns (B, N, width)."""
        batch, length, width = tokens.shape
        query, key, value = (
            self.qkv(self.attention_norm(tokens))
            .view(batch, length, 3, self.num_heads, width // self.num_heads)
            .permute(2, 0, 3, 1, 4)
        )
        attention_mask = None if padding_mask is None else ~padding_mask[:, None, None, :]
        attended = attention(query, key, value, attention_mask)
        tokens = tokens + self.output(attended.transpose(1, 2).reshape(batch, length, width))
        return tokens + self.mlp(self.mlp_norm(tokens))


class TransformerEncoder(nn.Module):
    """A stack of `num_layers` TransformerBlocks."""

    def __init__(self, width: int, num_heads: int, num_layers: int, mlp_ratio: int = 2):
        super().__init__()
        self.blocks = nn.ModuleList(TransformerBlock(width, num_heads, mlp_ratio) for _ in range(num_layers))

    def forward(self, tokens: torch.Tensor, padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        for block in self.blocks:
            tokens = block(tokens, padding_mask)
        return tokens
