"""`rope` (Su et al., RoFormer): dot-product attention whose queries and keys are rotated by
angles proportional to their positions, so every score depends on the two contents and
their distance only; the model then has no learned position table (`GPTConfig.positions`).

Only `rope` implements `forward_cached` among the research variants; the others make decoding
recompute the prefix."""

from __future__ import annotations

import torch

from lib.core.attention.base import AttentionSpec, CausalSelfAttention, register_attention
from lib.core.attention.common import (
    check_length,
)

ROPE_BASE = 10000.0


def rotary_angles(positions: torch.Tensor, head_dim: int,
                  base: float = ROPE_BASE
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta_i for the head_dim / 2 frequencies
    theta_i = base^(-2i / head_dim): (T, head_dim / 2) each. Fast pairs
    turn a full circle every few characters, slow ones barely move across a
    block."""
    if head_dim % 2:
        raise ValueError("rotary embeddings pair up dimensions: "
                         f"head_dim={head_dim} is odd")
    even = torch.arange(0, head_dim, 2, device=positions.device,
                        dtype=torch.float32)
    theta = base ** (-even / head_dim)
    angles = positions.to(torch.float32)[:, None] * theta[None, :]
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor,
           sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i + D/2}) of the last dimension by its angle:
    (..., T, D)."""
    half = x.shape[-1] // 2
    first, second = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([first * cos - second * sin, first * sin + second * cos],
                    dim=-1)
    return out.to(x.dtype)


@register_attention("rope")
class RotaryAttention(CausalSelfAttention):
    """Causal multi-head attention with rotary position embeddings on queries
    and keys.

    A query at position m and a key at position n are rotated by m * theta and
    n * theta; rotations are orthogonal, so their dot product is
    q^T R((n - m) theta) k: it depends on the offset n - m, not on where the
    pair sits. Values are not rotated.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__(spec)
        self.head_dim = spec.n_embd // spec.n_head
        self.block_size = spec.block_size
        if self.head_dim % 2:
            raise ValueError("rope needs an even head size; "
                             f"n_embd / n_head = {self.head_dim}")

    def project(self, x: torch.Tensor, start: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries and keys rotated by their positions (start, start + 1,
        ...); values as they are. In cached decoding a row's left padding
        shifts all its positions alike, which leaves every offset, and so
        every score, unchanged."""
        check_length(x.shape[1], self.block_size)
        q, k, v = super().project(x)
        positions = torch.arange(start, start + x.shape[1],
                                 device=x.device)
        cos, sin = rotary_angles(positions, self.head_dim)
        return rotate(q, cos, sin), rotate(k, cos, sin), v
