"""`bigbird` (Zaheer et al.): each query block sees its own block, a window of previous
blocks, the first (global) block and a few random earlier blocks, fixed per layer."""

from __future__ import annotations

import torch

from lib.core.attention.base import AttentionSpec, register_attention
from lib.core.attention.common import (
    QKVAttention,
    attend_blocks,
    check_length,
    pad_to_blocks,
)


def default_bigbird_block(block_size: int) -> int:
    """Blocks of 16 to 64 positions, so a default GPT (block 128) still has 8 of them."""
    return min(block_size, 64, max(16, block_size // 8))


def bigbird_key_blocks(
    n_blocks: int, window: int, n_global: int, random_blocks: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """For each query block j, the key blocks it attends to, and which of
    those slots count.

    Slots: the `n_global` first blocks, then the random blocks of row j of
    `random_blocks` (-1 = none), then the window j - window .. j (the last
    slot is block j itself). A global block that also lies in the window is
    switched off in its global slot, so no key is counted twice. Returns
    (index, valid), both (n_blocks, slots).
    """
    device = random_blocks.device
    j = torch.arange(n_blocks, device=device)[:, None]
    glob = torch.arange(n_global, device=device)[None, :].expand(
        n_blocks, n_global)
    rand = random_blocks[:n_blocks]
    win = j - window + torch.arange(window + 1, device=device)[None, :]
    index = torch.cat([glob, rand, win], dim=1)
    valid = torch.cat([glob < j - window, rand >= 0, win >= 0], dim=1)
    return index.clamp(min=0), valid


@register_attention("bigbird")
class BigBirdAttention(QKVAttention):
    """Causal block-sparse attention: window + global + random blocks,
    gathered explicitly.

    Query block j attends to its own block (causally), to the `window` blocks
    before it, to the first `n_global` blocks and to `n_random` random blocks
    among the remaining earlier ones. The random choice is drawn once, at
    construction, from torch's global generator (so it is reproducible under
    `torch.manual_seed` and differs between layers) and kept as a buffer that
    checkpoints save. Only the attended blocks' keys and values are gathered,
    so the cost is O(n * slots * block_len), not O(n^2) with a mask.
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
        self.window, self.n_global = window, n_global
        self.n_random = n_random
        max_blocks = -(-spec.block_size // self.block_len)
        seed = int(torch.randint(0, 2**31 - 1, (1,)).item())
        self.register_buffer("random_blocks",
                             self._draw_random_blocks(max_blocks, seed))

    def _draw_random_blocks(self, max_blocks: int,
                            seed: int) -> torch.Tensor:
        """Row j: up to n_random distinct blocks among
        n_global .. j - window - 1, else -1."""
        gen = torch.Generator().manual_seed(seed)
        table = torch.full((max_blocks, self.n_random), -1, dtype=torch.long)
        for j in range(max_blocks):
            if j - self.window <= self.n_global:
                continue
            candidates = torch.arange(self.n_global, j - self.window)
            order = torch.randperm(len(candidates), generator=gen)
            pick = candidates[order[: self.n_random]]
            table[j, : len(pick)] = pick.sort().values
        return table

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_length(x.shape[1], self.block_size)
        return self.output(self.attend(*self.heads_qkv(x)))

    def attend(self, q: torch.Tensor, k: torch.Tensor,
               v: torch.Tensor) -> torch.Tensor:
        """The sparse core on (B, heads, T, D) queries, keys and values;
        returns (B, h, T, D)."""
        t, b = q.shape[2], self.block_len
        # (B, h, nb, b, D)
        q, k, v = (pad_to_blocks(z, b) for z in (q, k, v))
        n_blocks = q.shape[2]
        index, valid = bigbird_key_blocks(n_blocks, self.window,
                                          self.n_global, self.random_blocks)
        slots = index.shape[1]
        # Gather the attended key/value blocks: (B, h, nb, slots * b, D).
        k_near = k[:, :, index].flatten(3, 4)
        v_near = v[:, :, index].flatten(3, 4)
        # A slot's keys are all visible if the slot is valid; block j itself
        # (the last slot) only up to the query's own position.
        allowed = valid[:, None, :, None].expand(n_blocks, b, slots, b).clone()
        own = torch.ones(b, b, dtype=torch.bool, device=q.device).tril()
        allowed[:, :, -1, :] &= own
        y = attend_blocks(q, k_near, v_near, allowed.flatten(2, 3),
                          self.dropout_p)
        return y[:, :, :t]
