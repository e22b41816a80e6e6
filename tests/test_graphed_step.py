"""lib.core.train.graphed_step: the fixed-shape step a GPU captures as a CUDA graph. CI has no GPU, so
these tests run the same step eagerly on the CPU and check everything but the capture: the
same arithmetic as the ordinary step, the rate and loss scale read from where a graph would
read them, short batches padded to the graph's shape, resumable state, and leaving a failed
capture."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lib.core import data as D
from lib.core import datasets as DS
from lib.core.model import GPT, GPTConfig
from lib.core.train.config import TrainConfig, make_optimizer
from lib.core.train.graphed_step import StaticStep, make_rates_tensors, set_learning_rate
from lib.core.train.loop import StopAfterEpochs, train
from lib.core.train.state import load_state, save_state

CONFIG = GPTConfig(vocab_size=30, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0,
                   attn_dropout=0.0)
CFG = TrainConfig(epochs=1, batch_size=4, learning_rate=1e-2, warmup_tokens=0)


def model_and_optimizer():
    torch.manual_seed(0)
    model = GPT(CONFIG)
    return model, make_optimizer(model, CFG)


def batch(seed: int):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(3, 30, (4, 15), generator=g)
    y = torch.randint(3, 30, (4, 15), generator=g)
    y[:, :5] = D.PAD_ID  # a prompt the loss ignores, as in finetuning
    return x, y


def ordinary_step(model, optimizer, x, y, scale):
    logits, _ = model(x)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1),
                           ignore_index=D.PAD_ID, reduction="sum") * scale
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), CFG.grad_clip)
    optimizer.step()
    return loss.detach()


def test_the_fixed_shape_step_is_the_ordinary_step_exactly():
    ours, our_opt = model_and_optimizer()
    theirs, their_opt = model_and_optimizer()
    step = StaticStep(ours, our_opt, rows=4, width=15, grad_clip=CFG.grad_clip,
                      device=torch.device("cpu"), amp=True)
    for seed, rate in [(1, 1e-2), (2, 5e-3), (3, 2e-3)]:
        x, y = batch(seed)
        scale = 1 / int((y != D.PAD_ID).sum())
        set_learning_rate(our_opt, rate)
        set_learning_rate(their_opt, rate)
        assert torch.equal(step(x, y, scale), ordinary_step(theirs, their_opt, x, y, scale))
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert step.failure is None and step.replays == 0  # nothing is captured on a CPU


def test_batches_of_its_width_and_at_most_its_rows_fit():
    model, optimizer = model_and_optimizer()
    step = StaticStep(model, optimizer, rows=4, width=15, grad_clip=1.0, device=torch.device("cpu"),
                      amp=False)
    assert step.fits(torch.zeros(4, 15, dtype=torch.long))
    assert step.fits(torch.zeros(3, 15, dtype=torch.long))  # the short last batch, padded
    assert not step.fits(torch.zeros(5, 15, dtype=torch.long))
    assert not step.fits(torch.zeros(4, 12, dtype=torch.long))
    step.failure = "capture failed"
    assert not step.fits(torch.zeros(4, 15, dtype=torch.long))


def test_a_short_batch_padded_to_the_graphs_rows_gives_the_loss_of_the_batch_alone():
    """Padding rows have PAD targets: no loss, no gradient. The padded fixed-shape step must
    equal the ordinary step on the short batch alone, before and after a full batch filled
    the buffers (the padding must overwrite what that batch left behind)."""
    ours, our_opt = model_and_optimizer()
    theirs, their_opt = model_and_optimizer()
    step = StaticStep(ours, our_opt, rows=4, width=15, grad_clip=CFG.grad_clip,
                      device=torch.device("cpu"), amp=False)
    x_full, y_full = batch(1)
    x_short, y_short = batch(2)
    x_short, y_short = x_short[:3], y_short[:3]
    for x, y in [(x_short, y_short), (x_full, y_full), (x_short, y_short)]:
        scale = 1 / int((y != D.PAD_ID).sum())
        got, want = step(x, y, scale), ordinary_step(theirs, their_opt, x, y, scale)
        torch.testing.assert_close(got, want, rtol=1e-6, atol=0.0)
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, rtol=1e-5, atol=1e-7)
    assert torch.equal(step.x[3], torch.full((15,), D.PAD_ID))
    assert torch.equal(step.y[3], torch.full((15,), D.PAD_ID))
    # AdamW turns rounding-sized gradient differences into small weight differences.
    for a, b in zip(ours.state_dict().values(), theirs.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_a_rate_held_in_a_tensor_is_changed_in_place():
    """A captured step reads the rate from the tensor's memory: replacing the tensor would
    leave the graph reading the old rate for the rest of the run."""
    model, optimizer = model_and_optimizer()
    make_rates_tensors(optimizer, torch.device("cpu"))
    held = [group["lr"] for group in optimizer.param_groups]
    set_learning_rate(optimizer, 3e-4)
    assert [group["lr"] for group in optimizer.param_groups] == held
    assert all(group["lr"] is tensor for group, tensor in zip(optimizer.param_groups, held, strict=True))
    assert all(float(t) == pytest.approx(3e-4) for t in held)
    plain = make_optimizer(model, CFG)
    set_learning_rate(plain, 3e-4)
    assert all(group["lr"] == 3e-4 for group in plain.param_groups)


def test_a_state_with_rates_in_tensors_saves_and_loads(tmp_path):
    model, optimizer = model_and_optimizer()
    ordinary_step(model, optimizer, *batch(1), 0.1)
    make_rates_tensors(optimizer, torch.device("cpu"))
    set_learning_rate(optimizer, 2e-3)
    generator = torch.Generator().manual_seed(0)
    save_state(tmp_path / "state.safetensors", model, optimizer, generator, {"step": 1})
    other, other_opt = model_and_optimizer()
    load_state(tmp_path / "state.safetensors", other, other_opt, generator)
    assert [g["lr"] for g in other_opt.param_groups] == pytest.approx([2e-3, 2e-3])
    for a, b in zip(model.state_dict().values(), other.state_dict().values(), strict=True):
        assert torch.equal(a, b)


@pytest.fixture(scope="module")
def corpus(real_data):
    world = D.mini_world(real_data, 20, 5, seed=0)
    return DS.SpanCorruptionDataset(world.corpus, real_data.vocab, 64), len(real_data.vocab)


def run(corpus, tmp_path, cuda_graphs: bool, name: str, stop_after_epochs=None):
    dataset, vocab = corpus
    cfg = TrainConfig(epochs=3, batch_size=8, learning_rate=3e-3, warmup_tokens=0, final_epochs=3,
                      clamp_schedule=True, length_grouped=True, checkpoint_every=1)
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=vocab, block_size=64, n_layer=1, n_head=2, n_embd=16,
                          dropout=0.0, attn_dropout=0.0))
    result = train(model, dataset, cfg, seed=0, state_path=tmp_path / f"{name}.state",
                   progress=False, cuda_graphs=cuda_graphs,
                   callbacks=[StopAfterEpochs(stop_after_epochs)] if stop_after_epochs else [])
    return model, result


def test_training_with_fixed_shapes_learns_what_ordinary_training_learns(corpus, tmp_path, monkeypatch):
    """Full-width and padded batches add only padding, which the loss ignores and a causal
    model cannot see from earlier positions: the same training up to rounding, with every
    step (the short last batch of each epoch too) taken by the fixed-shape step."""
    assert len(corpus[0]) % 8, "the corpus should end in a short batch, padded to the full rows"
    fixed_steps = []
    real_call = StaticStep.__call__

    def counted(self, x, y, scale):
        fixed_steps.append(x.shape[0])
        return real_call(self, x, y, scale)

    monkeypatch.setattr(StaticStep, "__call__", counted)
    fixed, fixed_result = run(corpus, tmp_path, True, "fixed")
    assert len(fixed_steps) == fixed_result.steps and min(fixed_steps) < 8
    plain, plain_result = run(corpus, tmp_path, False, "plain")
    assert fixed_result.steps == plain_result.steps
    assert fixed_result.final_loss == pytest.approx(plain_result.final_loss, rel=1e-4)
    for a, b in zip(fixed.state_dict().values(), plain.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-4)


def test_fixed_shape_training_resumes_exactly(corpus, tmp_path):
    whole, _ = run(corpus, tmp_path, True, "whole")
    run(corpus, tmp_path, True, "parts", stop_after_epochs=1)
    resumed, result = run(corpus, tmp_path, True, "parts")
    assert result.resumed_from_epoch == 1
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_failed_capture_is_ended_and_the_callers_stream_is_current_again(monkeypatch):
    """Without a GPU, the CUDA calls are stand-ins; what is checked is the order of the
    clean-up: end the broken capture (its error is expected and dropped), then switch back."""
    from lib.core.train import graphed_step

    calls = []

    class BrokenGraph:
        def capture_end(self):
            calls.append("capture_end")
            raise RuntimeError("operation failed due to a previous error during capture")

    class CallersStream:
        device = "cuda:0"

    stream = CallersStream()
    monkeypatch.setattr(torch.cuda, "is_current_stream_capturing", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_stream", lambda s: calls.append(("set_stream", s)))
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append("synchronize"))
    graphed_step.leave_capture(BrokenGraph(), stream)
    assert calls == ["capture_end", ("set_stream", stream), "synchronize"]


def test_a_failure_is_named_by_its_first_cause():
    from lib.core.train.graphed_step import _first_line

    try:
        try:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")
        except RuntimeError:
            raise RuntimeError("operation failed due to a previous error during capture") from None
    except RuntimeError as error:
        suppressed = error
    try:
        try:
            raise RuntimeError("CUDA error: operation not permitted when stream is capturing\nmore")
        except RuntimeError:
            raise RuntimeError("operation failed due to a previous error during capture")  # noqa: B904
    except RuntimeError as error:
        chained = error
    assert _first_line(chained) == ("RuntimeError: CUDA error: operation not permitted when "
                                    "stream is capturing")
    assert _first_line(suppressed) == ("RuntimeError: operation failed due to a previous error "
                                       "during capture")
