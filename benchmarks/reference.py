"""A deliberately plain reference for the performance benchmarks, and nothing else.

It is the classic exercise's way of doing things: attention written out with an explicit
causal mask and softmax (no fused kernels), training on full-width padded batches in
random order, and decoding one question at a time, recomputing the whole prefix for
every generated character. It exists only to be measured against `lib`.
"""

from __future__ import annotations

import math
import time

import torch
from torch import nn

from lib.core.data import MASK_ID, PAD_ID
from lib.core.model import GPT


class ExplicitAttention(nn.Module):
    """Multi-head causal attention with a materialised T x T mask and an explicit softmax."""

    def __init__(self, fused: nn.Module, block_size: int, attn_dropout: float) -> None:
        super().__init__()
        self.n_head = fused.n_head
        self.qkv, self.proj, self.resid_drop = fused.qkv, fused.proj, fused.resid_drop
        self.attn_drop = nn.Dropout(attn_dropout)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c = x.shape
        h = self.n_head
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (z.view(b, t, h, c // h).transpose(1, 2) for z in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.mask[:, :, :t, :t] == 0, float("-inf"))
        att = self.attn_drop(torch.softmax(att, dim=-1))
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, c)
        return self.resid_drop(self.proj(y))


def as_reference(model: GPT) -> GPT:
    """The same model (shared weights) with every attention replaced by `ExplicitAttention`."""
    for block in model.blocks:
        block.attn = ExplicitAttention(block.attn, model.config.block_size, model.config.attn_dropout)
    return model


def reference_epoch_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Random batches, as a plain DataLoader with shuffle=True gives them."""
    return list(torch.randperm(n, generator=generator).split(batch_size))


def reference_train_steps(model: GPT, x: torch.Tensor, y: torch.Tensor, batches, optimizer) -> float:
    """Full-width steps (no trimming of padding); returns seconds."""
    model.train()
    started = time.perf_counter()
    for batch in batches:
        _, loss = model(x[batch], y[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return time.perf_counter() - started


@torch.no_grad()
def reference_decode(model: GPT, prompt: list[int], max_new: int = 32) -> list[int]:
    """One question, greedy, recomputing the whole prefix for every character."""
    model.eval()
    ids = list(prompt)
    out = []
    for _ in range(min(max_new, model.config.block_size - len(prompt))):
        logits, _ = model(torch.tensor([ids]))
        nxt = int(logits[0, -1].argmax())
        if nxt == MASK_ID:
            break
        out.append(nxt)
        ids.append(nxt)
    return out


__all__ = ["ExplicitAttention", "as_reference", "reference_decode", "reference_epoch_batches",
           "reference_train_steps", "PAD_ID"]
