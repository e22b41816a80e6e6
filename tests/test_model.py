"""lib.core.model: configuration checks, causality of the whole GPT, the pad-ignoring loss."""

from __future__ import annotations

import pytest
import torch

from lib.core.model import GPT, GPTConfig


def tiny(**kw) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=20, block_size=32, n_layer=2, n_head=2, n_embd=16,
                         dropout=0.0, attn_dropout=0.0, **kw)).eval()


@pytest.mark.parametrize("t", [0, 5, 30])
def test_changing_later_inputs_changes_no_earlier_logit(t):
    model = tiny()
    x = torch.randint(2, 20, (3, 32))
    y = x.clone()
    y[:, t + 1:] = torch.randint(2, 20, y[:, t + 1:].shape)
    assert not torch.equal(x, y) or t == 31
    with torch.no_grad():
        a, _ = model(x)
        b, _ = model(y)
    assert torch.equal(a[:, : t + 1], b[:, : t + 1])
    assert not torch.allclose(a[:, t + 1:], b[:, t + 1:])


def test_loss_ignores_pad_targets():
    model = tiny()
    x = torch.randint(2, 20, (2, 10))
    targets = torch.randint(2, 20, (2, 10))
    targets[:, :4] = 0
    logits, loss = model(x, targets)
    keep = targets != 0
    manual = torch.nn.functional.cross_entropy(logits[keep], targets[keep])
    assert torch.allclose(loss, manual)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [("n_embd", 30, "not divisible"), ("n_layer", 0, "positive integer"),
     ("dropout", 1.0, r"\[0, 1\)"), ("attention", "nope", "unknown attention variant")],
)
def test_bad_configs_are_rejected(field, value, message):
    with pytest.raises(ValueError, match=message):
        GPT(GPTConfig(**{"vocab_size": 20, "n_embd": 32, "n_head": 4, field: value}))


def test_too_long_input_is_rejected():
    with pytest.raises(ValueError, match="exceeds block_size"):
        tiny()(torch.zeros(1, 33, dtype=torch.long))


def test_classic_size():
    model = GPT(GPTConfig(vocab_size=255))
    assert (model.config.n_layer, model.config.n_head, model.config.n_embd) == (4, 8, 256)
    assert 3.2e6 < model.num_parameters() < 3.4e6
