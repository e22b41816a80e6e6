"""`linformer`: Wang et al.'s idea of compressing keys and values along the sequence, made
causal by compressing only *completed* blocks. The original, non-causal projection is
`NaiveLinformerAttention`, kept out of the registry on purpose: it leaks the future."""

from __future__ import annotations

import math

import torch
from torch import nn

from lib.core.attention.base import AttentionSpec, attend, register_attention
from lib.core.attention.common import (
    QKVAttention,
    attend_blocks,
    check_length,
    pad_to_blocks,
    pow2_at_least,
)


class NaiveLinformerAttention(QKVAttention):
    """Linformer as published: keys and values compressed along the whole sequence.

    K' = E K and V' = F V with learned E, F of shape rows x n (the first T columns for a
    sequence of length T), so every query attends to `rows` mixtures of *all* positions:
    cost O(n * rows), but the output at t depends on the future. Not registered; the
    causality test shows that its checker catches this leak.
    """

    def __init__(self, spec: AttentionSpec, rows: int | None = None) -> None:
        super().__init__(spec)
        self.rows = rows or min(64, spec.block_size)
        std = spec.block_size**-0.5
        self.compress_k = nn.Parameter(torch.randn(self.rows, spec.block_size) * std)  # E
        self.compress_v = nn.Parameter(torch.randn(self.rows, spec.block_size) * std)  # F

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        check_length(t, self.block_size)
        q, k, v = self.heads_qkv(x)
        k_short = self.compress_k[:, :t] @ k  # (B, h, rows, D)
        v_short = self.compress_v[:, :t] @ v
        # No mask: every query sees every summary, and every summary mixes all positions.
        y = attend(q, k_short, v_short, dropout_p=self.dropout_p)
        return self.output(y)


def default_linformer_block(block_size: int, rows: int) -> int:
    """The block length b that minimises b + (n / b) * rows: about sqrt(n * rows), a power of 2."""
    return min(block_size, pow2_at_least(math.sqrt(block_size * rows)))


@register_attention("linformer")
class BlockLinformerAttention(QKVAttention):
    """Causal Linformer: exact attention inside a block, compressed summaries
    of earlier blocks.

    The sequence is cut into blocks of `block_len` positions. A learned
    per-head matrix of shape rows x block_len compresses each block's keys
    (and, separately, its values) along the sequence into `rows` summary keys
    and values. A query in block j attends causally to the positions of block
    j and to the summaries of the completed blocks 0..j-1; a block's summary
    is never seen by its own queries, so no future position leaks in. Per
    query that is b + (j * rows) scores instead of up to n:
    O(n (b + n/b * rows)) in all.
    """

    def __init__(self, spec: AttentionSpec, block_len: int | None = None,
                 rows: int = 4) -> None:
        super().__init__(spec)
        self.rows = rows
        self.block_len = block_len or default_linformer_block(
            spec.block_size, rows)
        std = self.block_len**-0.5
        shape = (spec.n_head, rows, self.block_len)
        self.compress_k = nn.Parameter(torch.randn(shape) * std)
        self.compress_v = nn.Parameter(torch.randn(shape) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_length(x.shape[1], self.block_size)
        return self.output(self.attend(*self.heads_qkv(x)))

    def attend(self, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """The blocked core on (B, heads, T, D) queries, keys and values;
        returns (B, h, T, D)."""
        t, b, r = q.shape[2], self.block_len, self.rows
        # (B, h, nb, b, D)
        q, k, v = (pad_to_blocks(z, b) for z in (q, k, v))
        batch, heads, n_blocks, _, d = q.shape
        # Summaries of every block, (B, h, nb * r, D): row m * r + i is
        # summary i of block m.
        summarise = "hrp,zhnpd->zhnrd"
        k_sum = torch.einsum(summarise, self.compress_k, k).flatten(2, 3)
        v_sum = torch.einsum(summarise, self.compress_v, v).flatten(2, 3)
        # Keys of query block j: all nb * r summaries, then the b positions
        # of block j.
        every = (batch, heads, n_blocks, n_blocks * r, d)
        keys = torch.cat([k_sum.unsqueeze(2).expand(every), k], dim=3)
        values = torch.cat([v_sum.unsqueeze(2).expand(every), v], dim=3)
        blocks = torch.arange(n_blocks, device=q.device)
        # Summary column c belongs to block c // r; query block j may use it
        # iff c // r < j. (nb, nb * r)
        done = blocks.repeat_interleave(r)[None, :] < blocks[:, None]
        causal = torch.ones(b, b, dtype=torch.bool, device=q.device).tril()
        allowed = torch.cat(
            [done[:, None, :].expand(n_blocks, b, n_blocks * r),
             causal.expand(n_blocks, b, b)],
            dim=2,
        )
        y = attend_blocks(q, keys, values, allowed, self.dropout_p)
        return y[:, :, :t]
