"""Every registered attention variant is causal, alone and inside the whole GPT.

The parametrisation runs over `available_variants()`, so a newly registered variant is
checked without touching this file. Equality is exact (see `lib.demos.causality` for why).
"""

from __future__ import annotations

import pytest
import torch

from lib.core.attention import AttentionSpec, NaiveLinformerAttention, available_variants, build_attention
from lib.core.model import GPT, GPTConfig
from lib.demos.causality import boundary_positions, check_causality

SPEC = AttentionSpec(n_embd=32, n_head=4, block_size=128)
VARIANTS = available_variants()


pytestmark = pytest.mark.usefixtures("one_thread")


def test_registry_lists_the_research_variants():
    assert {"vanilla", "synthesizer", "linformer", "bigbird"} <= set(VARIANTS)
    assert "linformer_naive" not in VARIANTS  # the leaky projection stays out of the registry


@pytest.mark.parametrize("length", [128, 77])
@pytest.mark.parametrize("name", VARIANTS)
def test_variant_is_causal(name, length):
    torch.manual_seed(0)
    module = build_attention(name, SPEC).eval()
    x = torch.randn(2, length, SPEC.n_embd)
    ts = boundary_positions(length, getattr(module, "block_len", None))
    assert len(ts) >= 5
    for t in ts:
        report = check_causality(module, x, t)
        assert report.max_output_change == 0.0, f"{name}: future changed output at t={t}"
        assert report.max_future_gradient == 0.0, f"{name}: gradient leak at t={t}"


def test_checker_catches_the_naive_linformer_leak():
    torch.manual_seed(0)
    module = NaiveLinformerAttention(SPEC).eval()
    x = torch.randn(2, 100, SPEC.n_embd)
    for t in (0, 31, 32, 50, 98):
        report = check_causality(module, x, t)
        assert not report.causal
        assert report.max_output_change > 1e-3 and report.max_future_gradient > 1e-4
    # The last position has no future, so even the naive projection passes there.
    assert check_causality(module, x, 99).causal


def test_checker_catches_a_one_step_leak():
    """A leak of a single position into its predecessor is caught at every t."""

    def peek_ahead(x):
        return x + 1e-3 * torch.roll(x, shifts=-1, dims=1)

    x = torch.randn(1, 16, 4)
    for t in range(15):
        assert not check_causality(peek_ahead, x, t).causal


@pytest.mark.parametrize("name", VARIANTS)
def test_gpt_logits_ignore_future_tokens(name):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=23, block_size=64, n_layer=2, n_head=4, n_embd=32,
                       attention=name)
    model = GPT(config).eval()
    gen = torch.Generator().manual_seed(1)
    idx = torch.randint(1, 23, (2, 64), generator=gen)
    with torch.no_grad():
        logits, _ = model(idx)
        for t in (0, 15, 16, 31, 32, 40, 62):
            changed = idx.clone()
            changed[:, t + 1 :] = torch.randint(1, 23, changed[:, t + 1 :].shape, generator=gen)
            new_logits, _ = model(changed)
            assert torch.equal(logits[:, : t + 1], new_logits[:, : t + 1]), f"{name} at t={t}"
            assert not torch.equal(logits[:, t + 1 :], new_logits[:, t + 1 :])
