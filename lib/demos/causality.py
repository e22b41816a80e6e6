"""Check that a sequence model is causal: nothing after position t reaches outputs at or before t.

Two independent probes, both exact rather than approximate:
- *perturbation*: replace every input after t by fresh random values; the outputs at
  positions 0..t must stay bit-for-bit the same;
- *gradient*: the gradient of (a random weighting of) the outputs at 0..t with respect to
  the inputs after t must be exactly zero.

Exactness is justified because a causal implementation either never reads the future
entries or multiplies them by an attention weight that is exactly 0.0 (softmax of -inf),
and the floating-point operations on the kept entries do not depend on the future values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class CausalityReport:
    """How far the future leaked into outputs at positions <= t (both 0.0 when causal)."""

    t: int
    max_output_change: float
    max_future_gradient: float

    @property
    def causal(self) -> bool:
        return self.max_output_change == 0.0 and self.max_future_gradient == 0.0


def check_causality(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, t: int, seed: int = 0
) -> CausalityReport:
    """Probe `fn`, mapping (B, T, C) to (B, T, ...), for a leak from positions > t into <= t.

    Call it with the module in eval mode (dropout would change outputs on its own).
    """
    if not 0 <= t < x.shape[1]:
        raise ValueError(f"t={t} must index a position of a length-{x.shape[1]} sequence")
    gen = torch.Generator().manual_seed(seed)
    x = x.detach().clone()
    changed = x.clone()
    changed[:, t + 1 :] = 3.0 * torch.randn(changed[:, t + 1 :].shape, generator=gen)
    with torch.no_grad():  # both runs take the same kernels, so only the inputs differ
        change = (fn(x)[:, : t + 1] - fn(changed)[:, : t + 1]).abs().max().item()
    x.requires_grad_(True)
    out = fn(x)[:, : t + 1]
    (grad,) = torch.autograd.grad((out * torch.randn(out.shape, generator=gen)).sum(), x)
    future_grad = grad[:, t + 1 :].abs().max().item() if t + 1 < x.shape[1] else 0.0
    return CausalityReport(t=t, max_output_change=change, max_future_gradient=future_grad)


def boundary_positions(length: int, block_len: int | None) -> list[int]:
    """Positions worth probing: the ends, the middle and both sides of each block boundary."""
    ts = {0, 1, length // 2, length - 2, length - 1}
    if block_len:
        for start in range(block_len, length, block_len):
            ts.update({start - 1, start})
    return sorted(t for t in ts if 0 <= t < length)
