"""Research attention variants: dense synthesizer, causal Linformer, BigBird-style sparse.

Each class registers itself by name in `lib.attention`'s registry, maps (B, T, C) to (B, T, C)
for any T <= block_size, and is causal (the test suite checks that for every registered name).

- `synthesizer` (Tay et al.): attention weights computed from each position's own content
  alone, through a small MLP whose output has one logit per position; no query-key products.
- `linformer`: Wang et al.'s idea of compressing keys and values along the sequence, made
  causal by compressing only *completed* blocks. The original, non-causal projection is
  `NaiveLinformerAttention`, kept out of the registry on purpose: it leaks the future.
- `bigbird` (Zaheer et al.): each query block sees its own block, a window of previous
  blocks, the first (global) block and a few random earlier blocks, fixed per layer.
- `rope` (Su et al., RoFormer): dot-product attention whose queries and keys are rotated by
  angles proportional to their positions, so every score depends on the two contents and
  their distance only; the model then has no learned position table (`GPTConfig.positions`).

Only `rope` implements `forward_cached`; the others make decoding recompute the prefix.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from lib.attention import (
    AttentionSpec,
    CausalSelfAttention,
    attend,
    check_spec,
    register_attention,
)

__all__ = [
    "BigBirdAttention",
    "BlockLinformerAttention",
    "DenseSynthesizerAttention",
    "NaiveLinformerAttention",
    "RotaryAttention",
    "rotary_angles",
    "rotate",
    "attend_blocks",
    "bigbird_key_blocks",
]


def _split_heads(x: torch.Tensor, n_head: int) -> torch.Tensor:
    """(B, T, C) -> (B, heads, T, C / heads)."""
    b, t, c = x.shape
    return x.view(b, t, n_head, c // n_head).transpose(1, 2)


def _merge_heads(y: torch.Tensor) -> torch.Tensor:
    """(B, heads, T, D) -> (B, T, heads * D)."""
    b, h, t, d = y.shape
    return y.transpose(1, 2).contiguous().view(b, t, h * d)


def _check_length(t: int, block_size: int) -> None:
    if t > block_size:
        raise ValueError(f"sequence of length {t} exceeds block_size={block_size}")


def _pad_to_blocks(x: torch.Tensor, block_len: int) -> torch.Tensor:
    """Zero-pad (B, h, T, D) along T to a multiple of block_len; view as (B, h, nb, b, D)."""
    b, h, t, d = x.shape
    n_blocks = -(-t // block_len)
    x = F.pad(x, (0, 0, 0, n_blocks * block_len - t))
    return x.view(b, h, n_blocks, block_len, d)


def _pow2_at_least(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(x, 1.0))))


def attend_blocks(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, allowed: torch.Tensor, dropout_p: float
) -> torch.Tensor:
    """Each query block attends to its own list of keys: softmax(q k^T / sqrt(D), allowed) v.

    q: (B, h, nb, b, D) queries cut into nb blocks of b; k, v: (B, h, nb, S, D), the S keys
    and values gathered for each query block; allowed: (nb, b, S), True where query i of
    block j may see key s. Returns (B, h, nb * b, D). The work is nb * b * S per head,
    which is what makes a variant cheap when S is much smaller than the sequence.
    """
    batch, heads, n_blocks, b, d = q.shape
    y = attend(
        q.reshape(batch * heads, n_blocks, b, d),
        k.reshape(batch * heads, n_blocks, -1, d),
        v.reshape(batch * heads, n_blocks, -1, d),
        attn_mask=allowed,
        dropout_p=dropout_p,
    )
    # CUDA kernels may return y with a non-contiguous layout, where .view fails.
    return y.reshape(batch, heads, n_blocks * b, d)


class _QKVAttention(nn.Module):
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
        return tuple(_split_heads(z, self.n_head) for z in (q, k, v))  # type: ignore[return-value]

    def output(self, y: torch.Tensor) -> torch.Tensor:
        """(B, heads, T, D) -> (B, T, C): merge heads, project, dropout."""
        return self.resid_drop(self.proj(_merge_heads(y)))


# --------------------------------------------------------------------------- synthesizer


@register_attention("synthesizer")
class DenseSynthesizerAttention(nn.Module):
    """Dense synthesizer: head i scores row t as ReLU(x_t A_i + b1_i) B_i + b2_i.

    A_i is C x D (D = C / heads) and B_i is D x block_size: the MLP turns position t's own
    vector into one logit per position, of which the first T are used. The logits are
    causally masked and softmaxed, and weight the values x V_i as in vanilla attention.
    Nothing compares position t with the other positions' contents.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__()
        check_spec(spec)
        self.n_head = spec.n_head
        head_dim = spec.n_embd // spec.n_head
        self.block_size = spec.block_size
        self.hidden = nn.Linear(spec.n_embd, spec.n_embd)  # A_i and b1_i of all heads
        self.synth = nn.Parameter(torch.randn(spec.n_head, head_dim, spec.block_size) * 0.02)
        self.synth_bias = nn.Parameter(torch.zeros(spec.n_head, 1, spec.block_size))  # b2_i
        self.value = nn.Linear(spec.n_embd, spec.n_embd)
        self.proj = nn.Linear(spec.n_embd, spec.n_embd)
        self.attn_drop = nn.Dropout(spec.attn_dropout)
        self.resid_drop = nn.Dropout(spec.resid_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = x.shape[1]
        _check_length(t, self.block_size)
        hidden = F.relu(_split_heads(self.hidden(x), self.n_head))  # (B, h, T, D)
        scores = hidden @ self.synth[:, :, :t] + self.synth_bias[:, :, :t]  # (B, h, T, T)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        weights = self.attn_drop(scores.masked_fill(future, float("-inf")).softmax(dim=-1))
        y = weights @ _split_heads(self.value(x), self.n_head)
        return self.resid_drop(self.proj(_merge_heads(y)))


# --------------------------------------------------------------------------- Linformer


class NaiveLinformerAttention(_QKVAttention):
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
        _check_length(t, self.block_size)
        q, k, v = self.heads_qkv(x)
        k_short = self.compress_k[:, :t] @ k  # (B, h, rows, D)
        v_short = self.compress_v[:, :t] @ v
        # No mask: every query sees every summary, and every summary mixes all positions.
        y = attend(q, k_short, v_short, dropout_p=self.dropout_p)
        return self.output(y)


def default_linformer_block(block_size: int, rows: int) -> int:
    """The block length b that minimises b + (n / b) * rows: about sqrt(n * rows), a power of 2."""
    return min(block_size, _pow2_at_least(math.sqrt(block_size * rows)))


@register_attention("linformer")
class BlockLinformerAttention(_QKVAttention):
    """Causal Linformer: exact attention inside a block, compressed summaries of earlier blocks.

    The sequence is cut into blocks of `block_len` positions. A learned per-head matrix of
    shape rows x block_len compresses each block's keys (and, separately, its values) along
    the sequence into `rows` summary keys and values. A query in block j attends causally
    to the positions of block j and to the summaries of the completed blocks 0..j-1; a
    block's summary is never seen by its own queries, so no future position leaks in.
    Per query that is b + (j * rows) scores instead of up to n: O(n (b + n/b * rows)) in all.
    """

    def __init__(self, spec: AttentionSpec, block_len: int | None = None, rows: int = 4) -> None:
        super().__init__(spec)
        self.rows = rows
        self.block_len = block_len or default_linformer_block(spec.block_size, rows)
        std = self.block_len**-0.5
        shape = (spec.n_head, rows, self.block_len)
        self.compress_k = nn.Parameter(torch.randn(shape) * std)
        self.compress_v = nn.Parameter(torch.randn(shape) * std)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_length(x.shape[1], self.block_size)
        return self.output(self.attend(*self.heads_qkv(x)))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The blocked core on (B, heads, T, D) queries, keys and values; returns (B, h, T, D)."""
        t, b, r = q.shape[2], self.block_len, self.rows
        q, k, v = (_pad_to_blocks(z, b) for z in (q, k, v))  # (B, h, nb, b, D)
        batch, heads, n_blocks, _, d = q.shape
        # Summaries of every block, (B, h, nb * r, D): row m * r + i is summary i of block m.
        k_sum = torch.einsum("hrp,zhnpd->zhnrd", self.compress_k, k).flatten(2, 3)
        v_sum = torch.einsum("hrp,zhnpd->zhnrd", self.compress_v, v).flatten(2, 3)
        # Keys of query block j: all nb * r summaries, then the b positions of block j.
        every = (batch, heads, n_blocks, n_blocks * r, d)
        keys = torch.cat([k_sum.unsqueeze(2).expand(every), k], dim=3)
        values = torch.cat([v_sum.unsqueeze(2).expand(every), v], dim=3)
        blocks = torch.arange(n_blocks, device=q.device)
        # Summary column c belongs to block c // r; query block j may use it iff c // r < j.
        done = blocks.repeat_interleave(r)[None, :] < blocks[:, None]  # (nb, nb * r)
        causal = torch.ones(b, b, dtype=torch.bool, device=q.device).tril()
        allowed = torch.cat(
            [done[:, None, :].expand(n_blocks, b, n_blocks * r), causal.expand(n_blocks, b, b)],
            dim=2,
        )
        return attend_blocks(q, keys, values, allowed, self.dropout_p)[:, :, :t]


# --------------------------------------------------------------------------- BigBird


def default_bigbird_block(block_size: int) -> int:
    """Blocks of 16 to 64 positions, so a default GPT (block 128) still has 8 of them."""
    return min(block_size, 64, max(16, block_size // 8))


def bigbird_key_blocks(
    n_blocks: int, window: int, n_global: int, random_blocks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query block j, the key blocks it attends to, and which of those slots count.

    Slots: the `n_global` first blocks, then the random blocks of row j of `random_blocks`
    (-1 = none), then the window j - window .. j (the last slot is block j itself).
    A global block that also lies in the window is switched off in its global slot, so
    no key is counted twice. Returns (index, valid), both (n_blocks, slots).
    """
    device = random_blocks.device
    j = torch.arange(n_blocks, device=device)[:, None]
    glob = torch.arange(n_global, device=device)[None, :].expand(n_blocks, n_global)
    rand = random_blocks[:n_blocks]
    win = j - window + torch.arange(window + 1, device=device)[None, :]
    index = torch.cat([glob, rand, win], dim=1)
    valid = torch.cat([glob < j - window, rand >= 0, win >= 0], dim=1)
    return index.clamp(min=0), valid


@register_attention("bigbird")
class BigBirdAttention(_QKVAttention):
    """Causal block-sparse attention: window + global + random blocks, gathered explicitly.

    Query block j attends to its own block (causally), to the `window` blocks before it,
    to the first `n_global` blocks and to `n_random` random blocks among the remaining
    earlier ones. The random choice is drawn once, at construction, from torch's global
    generator (so it is reproducible under `torch.manual_seed` and differs between layers)
    and kept as a buffer that checkpoints save. Only the attended blocks' keys and values
    are gathered, so the cost is O(n * slots * block_len), not O(n^2) with a mask.
    """

    def __init__(
        self,
        spec: AttentionSpec,
        block_len: int | None = None,
        window: int = 2,
        n_global: int = 1,
        n_random: int = 2,
    ) -> None:
        super().__init__(spec)
        self.block_len = block_len or default_bigbird_block(spec.block_size)
        self.window, self.n_global, self.n_random = window, n_global, n_random
        max_blocks = -(-spec.block_size // self.block_len)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self.register_buffer("random_blocks", self._draw_random_blocks(max_blocks, seed))

    def _draw_random_blocks(self, max_blocks: int, seed: int) -> torch.Tensor:
        """Row j: up to n_random distinct blocks among n_global .. j - window - 1, else -1."""
        gen = torch.Generator().manual_seed(seed)
        table = torch.full((max_blocks, self.n_random), -1, dtype=torch.long)
        for j in range(max_blocks):
            if j - self.window <= self.n_global:
                continue
            candidates = torch.arange(self.n_global, j - self.window)
            pick = candidates[torch.randperm(len(candidates), generator=gen)[: self.n_random]]
            table[j, : len(pick)] = pick.sort().values
        return table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_length(x.shape[1], self.block_size)
        return self.output(self.attend(*self.heads_qkv(x)))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """The sparse core on (B, heads, T, D) queries, keys and values; returns (B, h, T, D)."""
        t, b = q.shape[2], self.block_len
        q, k, v = (_pad_to_blocks(z, b) for z in (q, k, v))  # (B, h, nb, b, D)
        n_blocks = q.shape[2]
        index, valid = bigbird_key_blocks(n_blocks, self.window, self.n_global, self.random_blocks)
        slots = index.shape[1]
        # Gather the attended key/value blocks: (B, h, nb, slots * b, D).
        k_near = k[:, :, index].flatten(3, 4)
        v_near = v[:, :, index].flatten(3, 4)
        # A slot's keys are all visible if the slot is valid; block j itself (the last
        # slot) only up to the query's own position.
        allowed = valid[:, None, :, None].expand(n_blocks, b, slots, b).clone()
        allowed[:, :, -1, :] &= torch.ones(b, b, dtype=torch.bool, device=q.device).tril()
        return attend_blocks(q, k_near, v_near, allowed.flatten(2, 3), self.dropout_p)[:, :, :t]


ROPE_BASE = 10000.0


def rotary_angles(positions: torch.Tensor, head_dim: int, base: float = ROPE_BASE
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of position * theta_i for the head_dim / 2 frequencies
    theta_i = base^(-2i / head_dim): (T, head_dim / 2) each. Fast pairs turn a full circle
    every few characters, slow ones barely move across a block."""
    if head_dim % 2:
        raise ValueError(f"rotary embeddings pair up dimensions: head_dim={head_dim} is odd")
    theta = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32)
                     / head_dim)
    angles = positions.to(torch.float32)[:, None] * theta[None, :]
    return angles.cos(), angles.sin()


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate each pair (x_i, x_{i + D/2}) of the last dimension by its angle: (..., T, D)."""
    half = x.shape[-1] // 2
    first, second = x[..., :half].float(), x[..., half:].float()
    out = torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)
    return out.to(x.dtype)


@register_attention("rope")
class RotaryAttention(CausalSelfAttention):
    """Causal multi-head attention with rotary position embeddings on queries and keys.

    A query at position m and a key at position n are rotated by m * theta and n * theta;
    rotations are orthogonal, so their dot product is q^T R((n - m) theta) k: it depends on
    the offset n - m, not on where the pair sits. Values are not rotated.
    """

    def __init__(self, spec: AttentionSpec) -> None:
        super().__init__(spec)
        self.head_dim = spec.n_embd // spec.n_head
        self.block_size = spec.block_size
        if self.head_dim % 2:
            raise ValueError(f"rope needs an even head size; n_embd / n_head = {self.head_dim}")

    def project(self, x: torch.Tensor, start: int = 0) -> tuple[torch.Tensor, torch.Tensor,
                                                                torch.Tensor]:
        """Queries and keys rotated by their positions (start, start + 1, ...); values as they are.
        In cached decoding a row's left padding shifts all its positions alike, which leaves
        every offset, and so every score, unchanged."""
        _check_length(x.shape[1], self.block_size)
        q, k, v = super().project(x)
        positions = torch.arange(start, start + x.shape[1], device=x.device)
        cos, sin = rotary_angles(positions, self.head_dim)
        return rotate(q, cos, sin), rotate(k, cos, sin), v
