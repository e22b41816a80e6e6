"""A character-level GPT small enough to hold in one's head.

Token embeddings plus learned absolute position embeddings (or none, for rotary attention,
which encodes positions inside every layer), pre-LayerNorm blocks with a GELU MLP, dropout,
and a causal attention module chosen by name (see `lib.core.attention`). The loss ignores
pad targets (id 0), which is how both datasets mark positions that teach nothing.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from lib.core.attention import AttentionSpec, build_attention
from lib.core.data import PAD_ID

# Attention variants that encode positions themselves (no learned position table).
ROTARY = ("rope",)


def lm_loss(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-character cross-entropy in float32, padding targets ignored: the one loss the
    model reports, the trainer minimises (summed, then scaled) and the CUDA-graph step captures."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), targets.reshape(-1),
                           ignore_index=PAD_ID, reduction=reduction)


@dataclass(frozen=True)
class GPTConfig:
    """Model shape; the defaults are the classic exercise's model."""

    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 8
    n_embd: int = 256
    dropout: float = 0.1
    attn_dropout: float = 0.1
    attention: str = "vanilla"
    # How positions enter the model: "learned" (an absolute table added to the token
    # embeddings, the classic model) or "rotary" (no table; queries and keys are rotated by
    # their position in every layer). "auto" picks rotary for the `rope` variant only.
    positions: str = "auto"
    # GPT-2's scaled initialisation of the two projections that write into the residual
    # stream (std 0.02 / sqrt(2 n_layer)); off: std 0.02 like every other matrix, as in the
    # classic code (the 2020 minGPT).
    scaled_residual_init: bool = True

    def __post_init__(self) -> None:
        if self.positions == "auto":
            object.__setattr__(self, "positions", "rotary" if self.attention in ROTARY else "learned")
        if self.positions not in ("learned", "rotary"):
            raise ValueError(f"GPTConfig.positions must be learned, rotary or auto, got {self.positions!r}")
        if self.positions == "rotary" and self.attention not in ROTARY:
            raise ValueError(f"positions='rotary' needs a rotary attention variant ({', '.join(ROTARY)}); "
                             f"{self.attention!r} would see no positions at all")
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
        for name in ("dropout", "attn_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ValueError(f"GPTConfig.{name} must lie in [0, 1), got {value!r}")
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")

    def to_dict(self) -> dict:
        return asdict(self)


class MLP(nn.Module):
    """The position-wise part of a block: widen four times, GELU, project back, dropout."""

    def __init__(self, n_embd: int, dropout: float) -> None:
        super().__init__()
        self.fc = nn.Linear(n_embd, 4 * n_embd)
        self.proj = nn.Linear(4 * n_embd, n_embd)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drop(self.proj(F.gelu(self.fc(x))))


class Block(nn.Module):
    """x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(config.n_embd)
        self.ln2 = nn.LayerNorm(config.n_embd)
        spec = AttentionSpec(
            n_embd=config.n_embd,
            n_head=config.n_head,
            block_size=config.block_size,
            attn_dropout=config.attn_dropout,
            resid_dropout=config.dropout,
        )
        self.attn = build_attention(config.attention, spec)
        self.mlp = MLP(config.n_embd, config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))

    def forward_cached(self, x: torch.Tensor, cache: dict | None,
                       key_valid: torch.Tensor | None = None
                       ) -> tuple[torch.Tensor, dict]:
        a, cache = self.attn.forward_cached(self.ln1(x), cache, key_valid)
        x = x + a
        return x + self.mlp(self.ln2(x)), cache


class GPT(nn.Module):
    """Embeddings, `n_layer` blocks, a final LayerNorm and a linear head over
    the characters; GPT-2's initialisation (or the classic code's, see
    `GPTConfig.scaled_residual_init`). `forward` returns logits and, given
    targets, the loss."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.n_embd)
        learned = config.positions == "learned"
        self.pos_emb = (
            nn.Parameter(torch.zeros(1, config.block_size, config.n_embd))
            if learned else None
        )
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config)
                                    for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.vocab_size,
                              bias=False)
        self.apply(self._init_weights)
        if config.scaled_residual_init:
            # GPT-2's scaled init of the residual projections keeps
            # the residual stream's variance from growing with depth.
            residual_std = 0.02 / math.sqrt(2 * config.n_layer)
            for name, p in self.named_parameters():
                if name.endswith("proj.weight"):
                    nn.init.normal_(p, mean=0.0, std=residual_std)

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)

    @property
    def supports_cache(self) -> bool:
        """Whether every block's attention can decode incrementally with a
        KV cache."""
        return all(hasattr(b.attn, "forward_cached") for b in self.blocks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _embed(self, idx: torch.Tensor, start: int = 0,
               positions: torch.Tensor | None = None) -> torch.Tensor:
        t, block_size = idx.shape[1], self.config.block_size
        x = self.tok_emb(idx)
        if positions is not None:
            if int(positions.max()) >= block_size:
                raise ValueError(f"position {int(positions.max())} exceeds "
                                 f"block_size={block_size}")
            if self.pos_emb is not None:
                x = x + self.pos_emb[0, positions]
            return self.drop(x)
        if start + t > block_size:
            raise ValueError(f"sequence of length {start + t} exceeds "
                             f"block_size={block_size}")
        if self.pos_emb is not None:
            x = x + self.pos_emb[:, start : start + t]
        return self.drop(x)

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) and, given targets, the mean loss over
        non-pad targets."""
        x = self._embed(idx)
        for block in self.blocks:
            x = block(x)
        logits = self.head(self.ln_f(x))
        return logits, None if targets is None else lm_loss(logits, targets)

    def forward_cached(
        self,
        idx: torch.Tensor,
        caches: list[dict] | None,
        positions: torch.Tensor | None = None,
        key_valid: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, list[dict]]:
        """Logits for the new positions `idx`, given per-block caches of
        earlier ones.

        For left-padded rows, `positions` (B, T_new) gives each new token's
        position in its own sequence and `key_valid` (B, T_all) marks the
        non-pad positions of cache + new.
        """
        start = 0 if caches is None else caches[0]["k"].shape[2]
        x = self._embed(idx, start, positions)
        new_caches = []
        for i, block in enumerate(self.blocks):
            block_cache = None if caches is None else caches[i]
            x, cache = block.forward_cached(x, block_cache, key_valid)
            new_caches.append(cache)
        return self.head(self.ln_f(x)), new_caches
