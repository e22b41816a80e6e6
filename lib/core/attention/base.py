"""The registry, the vanilla (classic) attention and the masked-softmax kernel every variant shares.

Every variant maps a batch of sequences `x` of shape (B, T, C) to (B, T, C) and must be
causal: the output at position t depends on inputs at positions <= t only. The test
suite checks that for every registered name, so a new variant is covered by registering it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel


@dataclass(frozen=True)
class AttentionSpec:
    """The shape parameters every attention variant is built from."""

    n_embd: int
    n_head: int
    block_size: int
    attn_dropout: float = 0.0
    resid_dropout: float = 0.0


AttentionFactory = Callable[[AttentionSpec], nn.Module]
_REGISTRY: dict[str, AttentionFactory] = {}


def register_attention(name: str) -> Callable[[AttentionFactory], AttentionFactory]:
    """Class decorator: make a variant constructible by `name` everywhere (CLI, notebooks)."""

    def wrap(factory: AttentionFactory) -> AttentionFactory:
        if name in _REGISTRY:
            raise ValueError(f"attention variant {name!r} is registered twice")
        _REGISTRY[name] = factory
        return factory

    return wrap


def available_variants() -> list[str]:
    """Names of every registered attention variant, sorted."""
    return sorted(_REGISTRY)


def build_attention(name: str, spec: AttentionSpec) -> nn.Module:
    """Build the attention module registered as `name`; unknown names list the valid ones."""
    if name not in _REGISTRY:
        raise ValueError(
            f"unknown attention variant {name!r}; choose one of {', '.join(sorted(_REGISTRY))}"
        )
    return _REGISTRY[name](spec)


def check_spec(spec: AttentionSpec) -> None:
    """Reject shapes that cannot form heads, with a message that says why."""
    if spec.n_embd <= 0 or spec.n_head <= 0 or spec.block_size <= 0:
        raise ValueError(f"n_embd, n_head and block_size must be positive, got {spec}")
    if spec.n_embd % spec.n_head != 0:
        raise ValueError(f"n_embd={spec.n_embd} is not divisible by n_head={spec.n_head}")


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, dropout_p: float = 0.0,
           is_causal: bool = False, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`scaled_dot_product_attention`, with attention dropout never inside a fused CUDA kernel.

    Measured on an H200 (torch 2.11, every step replayed as a CUDA graph): with the fused
    kernels' own dropout, vanilla and RoPE pretraining of the `full` profile learned for 25
    epochs and then degraded until the model predicted every character alike, while the
    synthesizer, whose attention dropout is an ordinary `nn.Dropout`, trained normally. So
    on a GPU, attention with dropout takes the unfused (math) path, whose dropout draws from
    the generator a captured graph advances at every replay. Without dropout, and on the
    CPU, PyTorch picks its kernel as usual.
    """
    if dropout_p > 0 and q.is_cuda:
        with sdpa_kernel(SDPBackend.MATH):
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask,
                                                  dropout_p=dropout_p, is_causal=is_causal)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=dropout_p,
                                          is_causal=is_causal)


@register_attention("vanilla")
class CausalSelfAttention(nn.Module):
    """Multi-head causal dot-product attention through
    `scaled_dot_product_attention`.

    PyTorch picks a fused kernel (flash or memory-efficient) where it can,
    which is why the causal mask is passed as `is_causal=True` rather than as
    an explicit matrix.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__()
        check_spec(spec)
        self.n_head = spec.n_head
        self.qkv = nn.Linear(spec.n_embd, 3 * spec.n_embd)
        self.proj = nn.Linear(spec.n_embd, spec.n_embd)
        self.attn_dropout = spec.attn_dropout
        self.resid_drop = nn.Dropout(spec.resid_dropout)

    def split_heads(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, heads, T, C / heads)."""
        b, t, c = x.shape
        return x.view(b, t, self.n_head, c // self.n_head).transpose(1, 2)

    def merge_heads(self, y: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, D) -> (B, T, heads * D)."""
        b, h, t, d = y.shape
        return y.transpose(1, 2).contiguous().view(b, t, h * d)

    def project(self, x: torch.Tensor, start: int = 0
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values of positions start, start + 1, ..., split
        into heads (the positions matter only to variants that encode them
        here, as `rope` does)."""
        q, k, v = self.qkv(x).split(x.shape[-1], dim=2)
        return self.split_heads(q), self.split_heads(k), self.split_heads(v)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.project(x)
        y = attend(q, k, v,
                   dropout_p=self.attn_dropout if self.training else 0.0,
                   is_causal=True)
        return self.resid_drop(self.proj(self.merge_heads(y)))

    def forward_cached(
        self,
        x: torch.Tensor,
        cache: dict[str, torch.Tensor] | None,
        key_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Attend new positions `x` to themselves and to the cached keys and
        values.

        Used by batched greedy decoding: the prefix is encoded once, then one
        position at a time is appended, each step costing O(T) instead of
        recomputing O(T^2). `key_valid` (B, T_all) marks real positions when
        rows are left-padded to a common length: padding is never attended to
        (a pad query sees only itself, so that its softmax is defined; its
        output is never used). Positions are counted in the padded batch.
        """
        start = 0 if cache is None else cache["k"].shape[2]
        q, k, v = self.project(x, start)
        if cache is not None:
            k = torch.cat([cache["k"], k], dim=2)
            v = torch.cat([cache["v"], v], dim=2)
        t_new, t_all = q.shape[2], k.shape[2]
        # New query i sits at absolute position t_all - t_new + i and sees
        # keys up to it.
        mask = torch.ones(t_new, t_all, dtype=torch.bool,
                          device=x.device).tril(t_all - t_new)
        if key_valid is not None:
            itself = _diagonal(t_new, t_all, x.device)
            mask = (mask & key_valid[:, None, None, :]) | itself
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.proj(self.merge_heads(y)), {"k": k, "v": v}


def _diagonal(t_new: int, t_all: int, device: torch.device) -> torch.Tensor:
    """(t_new, t_all) mask that is true where a new query meets its own key."""
    rows = torch.arange(t_new, device=device)[:, None] + (t_all - t_new)
    return rows == torch.arange(t_all, device=device)[None, :]
