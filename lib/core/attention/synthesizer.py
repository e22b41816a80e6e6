"""`synthesizer` (Tay et al.): attention weights computed from each position's own content
alone, through a small MLP whose output has one logit per position; no query-key products."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lib.core.attention.base import AttentionSpec, check_spec, register_attention
from lib.core.attention.common import (
    check_length,
    merge_heads,
    split_heads,
)


@register_attention("synthesizer")
class DenseSynthesizerAttention(nn.Module):
    """Dense synthesizer: head i scores row t as
    ReLU(x_t A_i + b1_i) B_i + b2_i.

    A_i is C x D (D = C / heads) and B_i is D x block_size: the MLP turns
    position t's own vector into one logit per position, of which the first T
    are used. The logits are causally masked and softmaxed, and weight the
    values x V_i as in vanilla attention. Nothing compares position t with
    the other positions' contents.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__()
        check_spec(spec)
        self.n_head = spec.n_head
        head_dim = spec.n_embd // spec.n_head
        self.block_size = spec.block_size
        # A_i and b1_i of all heads, then B_i and b2_i.
        self.hidden = nn.Linear(spec.n_embd, spec.n_embd)
        self.synth = nn.Parameter(
            torch.randn(spec.n_head, head_dim, spec.block_size) * 0.02)
        self.synth_bias = nn.Parameter(
            torch.zeros(spec.n_head, 1, spec.block_size))
        self.value = nn.Linear(spec.n_embd, spec.n_embd)
        self.proj = nn.Linear(spec.n_embd, spec.n_embd)
        self.attn_drop = nn.Dropout(spec.attn_dropout)
        self.resid_drop = nn.Dropout(spec.resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        check_length(t, self.block_size)
        # (B, h, T, D), then (B, h, T, T)
        hidden = F.relu(split_heads(self.hidden(x), self.n_head))
        scores = hidden @ self.synth[:, :, :t] + self.synth_bias[:, :, :t]
        future = torch.ones(t, t, dtype=torch.bool,
                            device=x.device).triu(1)
        masked = scores.masked_fill(future, float("-inf"))
        weights = self.attn_drop(masked.softmax(dim=-1))
        y = weights @ split_heads(self.value(x), self.n_head)
        return self.resid_drop(self.proj(merge_heads(y)))
