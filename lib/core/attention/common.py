"""What the research variants share: head splitting, blocking, and the qkv module of the
dot-product variants (Linformer, BigBird)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lib.core.attention.base import AttentionSpec, attend, check_spec


def split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, heads, T, C / heads)."""
    b, t, c = x.shape
    return x.view(b, t, n_head, c // n_head).transpose(1, 2)


def merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, D) -> (B, T, heads * D)."""
    b, h, t, d = y.shape
    return y.transpose(1, 2).contiguous().view(b, t, h * d)


def check_length(t: int, block_size: int) -> None:
    """Refuse a sequence longer than the block: the variants size their masks, projections
    and rotation tables to it, and would otherwise fail with an unhelpful shape error."""
    if t > block_size:
        raise ValueError(f"sequence of length {t} exceeds block_size={block_size}")


def pad_to_blocks(x: torch.Tensor, block_len: int) -> torch.Tensor:
    """Zero-pad (B, h, T, D) along T to a multiple of block_len; view as (B, h, nb, b, D)."""
    b, h, t, d = x.shape
    n_blocks = -(-t // block_len)
    x = F.pad(x, (0, 0, 0, n_blocks * block_len - t))
    return x.view(b, h, n_blocks, block_len, d)


def pow2_at_least(x: float) -> int:
    """The smallest power of two at or above `x`, and 1 at least: the Linformer's default
    block length is rounded up to one."""
    return 1 << max(0, math.ceil(math.log2(max(x, 1.0))))


def attend_blocks(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor,
    dropout_p: float,
) -> torch.Tensor:
    """Each query block attends to its own list of keys:
    softmax(q k^T / sqrt(D), allowed) v.

    q: (B, h, nb, b, D) queries cut into nb blocks of b; k, v:
    (B, h, nb, S, D), the S keys and values gathered for each query block;
    allowed: (nb, b, S), True where query i of block j may see key s. Returns
    (B, h, nb * b, D). The work is nb * b * S per head, which is what makes a
    variant cheap when S is much smaller than the sequence.
    """
    batch, heads, n_blocks, b, d = q.shape
    y = attend(
        q.reshape(batch * heads, n_blocks, b, d),
        k.reshape(batch * heads, n_blocks, -1, d),
        v.reshape(batch * heads, n_blocks, -1, d),
        attn_mask=allowed,
        dropout_p=dropout_p,
    )
    # CUDA kernels may return y with a non-contiguous layout, where .view
    # fails.
    return y.reshape(batch, heads, n_blocks * b, d)


class QKVAttention(nn.Module):
    """What the dot-product variants share with vanilla: one qkv Linear, heads, output `proj`.

    Deliberately not a subclass of `CausalSelfAttention`: inheriting its `forward_cached`
    would make decoding silently use full attention instead of the variant.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__()
        check_spec(spec)
        self.n_head = spec.n_head
        self.head_dim = spec.n_embd // spec.n_head
        self.block_size = spec.block_size
        self.qkv = nn.Linear(spec.n_embd, 3 * spec.n_embd)
        self.proj = nn.Linear(spec.n_embd, spec.n_embd)
        self.attn_dropout = spec.attn_dropout
        self.resid_drop = nn.Dropout(spec.resid_dropout)

    @property
    def dropout_p(self) -> float:
        return self.attn_dropout if self.training else 0.0

    def heads_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.qkv(x).split(x.shape[-1], dim=2)
        return tuple(split_heads(z, self.n_head) for z in (q, k, v))  # type: ignore[return-value]

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, D) -> (B, T, C): merge heads, project, dropout."""
        return self.resid_drop(self.proj(merge_heads(y)))
