"""lib.core.train.loop: schedule, optimizer groups, determinism, resume, NaN handling."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch

from lib.core import data as D
from lib.core import datasets as DS
from lib.core.checkpoint import CheckpointError, load_tensors
from lib.core.metrics_log import read_log
from lib.core.model import GPT, GPTConfig
from lib.core.train.config import TrainConfig, lr_multiplier, make_optimizer
from lib.core.train.loop import ReplaceLoss, StopAfterEpochs, Trainer, TrainingDiverged, train
from lib.core.train.state import computed_positions, epoch_batches
from lib.runs.profiles import get_profile


def test_schedule_warmup_cosine_floor():
    assert lr_multiplier(0, 100, 1100) == 0.0
    assert lr_multiplier(50, 100, 1100) == 0.5
    assert lr_multiplier(100, 100, 1100) == 1.0
    assert lr_multiplier(600, 100, 1100) == pytest.approx(0.5)
    assert lr_multiplier(1100, 100, 1100) == 0.1  # floor
    # The classic schedule does not clamp: past its end the cosine climbs again.
    assert lr_multiplier(2100, 100, 1100) == pytest.approx(1.0)
    assert lr_multiplier(2100, 100, 1100, clamp=True) == 0.1


def test_full_profile_is_classic_and_unclamped():
    full = get_profile("full")
    assert (full.n_layer, full.n_head, full.n_embd, full.block_size) == (4, 8, 256, 128)
    assert (full.pretrain.epochs, full.pretrain.batch_size, full.pretrain.learning_rate) == (650, 128, 6e-3)
    assert (full.finetune_scratch.epochs, full.finetune_scratch.batch_size) == (75, 256)
    assert (full.finetune_pretrained.epochs, full.finetune_pretrained.learning_rate) == (10, 6e-4)
    assert not full.pretrain.clamp_schedule and full.pretrain.final_epochs == 200
    # ... trained as the classic code trains: corpus order, its decay set, its initialisation,
    # and a finetuning cosine of 200 passes over the 2,937 biographies in question passes.
    for cfg in (full.pretrain, full.finetune_scratch, full.finetune_pretrained):
        assert not cfg.shuffle and not cfg.length_grouped and cfg.decay_all_but_biases
    assert full.finetune_scratch.final_epochs == full.finetune_pretrained.final_epochs == 293.7
    assert not full.scaled_residual_init


def test_finetuning_cosine_is_as_long_as_pretrainings_in_the_classic_profile(real_data):
    full = get_profile("full")
    corpus, questions = len(real_data.corpus), len(real_data.train)
    finetune_tokens = full.finetune_pretrained.final_epochs * questions
    assert finetune_tokens == pytest.approx(full.pretrain.final_epochs * corpus)


def test_weight_decay_only_on_matrices():
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=8))
    opt = make_optimizer(model, TrainConfig(epochs=1, batch_size=1, learning_rate=1e-3))
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))
    gains = {id(b.ln1.weight) for b in model.blocks} | {id(model.ln_f.weight)}
    assert not gains & {id(p) for p in decay["params"]}


def test_classic_decay_set_spares_only_biases():
    model = GPT(GPTConfig(vocab_size=20, block_size=16, n_layer=1, n_head=2, n_embd=8))
    cfg = TrainConfig(epochs=1, batch_size=1, learning_rate=1e-3, decay_all_but_biases=True)
    decay, no_decay = make_optimizer(model, cfg).param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    assert sorted(names[id(p)] for p in no_decay["params"]) == sorted(
        n for n, _ in model.named_parameters() if n.endswith(".bias"))
    decayed = {names[id(p)] for p in decay["params"]}
    assert {"blocks.0.ln1.weight", "blocks.0.ln2.weight", "ln_f.weight", "pos_emb",
            "tok_emb.weight", "head.weight"} <= decayed
    assert len(decay["params"]) + len(no_decay["params"]) == len(names)


def test_corpus_order_batches_read_the_examples_in_order_and_draw_nothing():
    cfg = TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, shuffle=False)
    generator = torch.Generator().manual_seed(3)
    before = generator.get_state()
    batches = epoch_batches(torch.ones(10, 5, dtype=torch.long), cfg, generator)
    assert [b.tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert torch.equal(generator.get_state(), before)


def test_computed_positions_count_each_batch_at_its_longest_example():
    # Examples of lengths 1, 4, 2, 3 (PAD_ID after them) in corpus order, batches of two:
    # [1, 4] costs 2 * 4 and [2, 3] costs 2 * 3; grouped by length, [1, 2] and [3, 4] cost
    # 2 * 2 + 2 * 4 whatever the shuffle.
    x = torch.full((4, 6), D.PAD_ID, dtype=torch.long)
    for row, length in enumerate((1, 4, 2, 3)):
        x[row, :length] = 5
    in_order = TrainConfig(epochs=1, batch_size=2, learning_rate=1e-3, shuffle=False)
    grouped = TrainConfig(epochs=1, batch_size=2, learning_rate=1e-3, length_grouped=True)
    assert computed_positions(x, in_order, torch.Generator().manual_seed(0)) == 14
    for seed in range(5):
        assert computed_positions(x, grouped, torch.Generator().manual_seed(seed)) == 12


def test_corpus_order_cannot_be_length_grouped():
    with pytest.raises(ValueError, match="corpus order"):
        TrainConfig(epochs=1, batch_size=4, learning_rate=1e-3, shuffle=False, length_grouped=True)


@pytest.mark.parametrize("scaled, std", [(True, 0.02 / 8 ** 0.5), (False, 0.02)])
def test_residual_projections_start_scaled_or_as_in_the_classic_code(scaled, std):
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=20, n_layer=4, scaled_residual_init=scaled))
    for name, p in model.named_parameters():
        if name.endswith("proj.weight"):
            assert float(p.detach().std()) == pytest.approx(std, rel=0.02), name
        elif name.endswith("fc.weight"):
            assert float(p.detach().std()) == pytest.approx(0.02, rel=0.02), name


@pytest.fixture(scope="module")
def small_setup(real_data):
    world = D.mini_world(real_data, 20, 5, seed=0)
    dataset = DS.SpanCorruptionDataset(world.corpus, real_data.vocab, 64)
    cfg = TrainConfig(epochs=4, batch_size=8, learning_rate=3e-3, warmup_tokens=0, final_epochs=4,
                      clamp_schedule=True, length_grouped=True, checkpoint_every=1)
    config = GPTConfig(vocab_size=len(real_data.vocab), block_size=64, n_layer=1, n_head=2, n_embd=16,
                       dropout=0.1, attn_dropout=0.0)
    return dataset, cfg, config


def fresh(config):
    torch.manual_seed(0)
    return GPT(config)


def test_two_runs_with_one_seed_are_bit_identical(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    a, b = fresh(config), fresh(config)
    train(a, dataset, cfg, seed=5, state_path=tmp_path / "a.state", log_path=tmp_path / "a.jsonl", progress=False)
    train(b, dataset, cfg, seed=5, state_path=tmp_path / "b.state", log_path=tmp_path / "b.jsonl", progress=False)
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    la = [r["loss"] for r in read_log(tmp_path / "a.jsonl")]
    assert la == [r["loss"] for r in read_log(tmp_path / "b.jsonl")] and len(la) > 0


def test_resume_after_interruption_equals_uninterrupted(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    whole = fresh(config)
    train(whole, dataset, cfg, seed=1, state_path=tmp_path / "w.state", log_path=tmp_path / "w.jsonl",
          progress=False)
    resumed = fresh(config)
    state = tmp_path / "r.state"
    train(resumed, dataset, cfg, seed=1, state_path=state, log_path=tmp_path / "r.jsonl", progress=False,
          callbacks=[StopAfterEpochs(2)])
    assert state.exists()
    # A new process would build a fresh model; its initial weights must not matter.
    again = GPT(config)
    result = train(again, dataset, cfg, seed=1, state_path=state, log_path=tmp_path / "r.jsonl",
                   progress=False)
    assert result.resumed_from_epoch == 2 and not state.exists()
    for (name, p), q in zip(whole.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(p, q), name
    assert read_log(tmp_path / "w.jsonl") == [
        {**r, "time": w["time"]} for r, w in zip(read_log(tmp_path / "r.jsonl"), read_log(tmp_path / "w.jsonl"), strict=True)
    ]


def test_state_of_another_run_is_refused(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    state = tmp_path / "s.state"
    train(fresh(config), dataset, cfg, seed=1, state_path=state, progress=False, callbacks=[StopAfterEpochs(1)])
    with pytest.raises(CheckpointError, match="different run"):
        train(fresh(config), dataset, cfg, seed=2, state_path=state, progress=False)


def test_nan_loss_stops_naming_the_step_and_keeps_the_checkpoint(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    state = tmp_path / "n.state"
    steps_per_epoch = -(-len(dataset) // cfg.batch_size)
    bad_step = steps_per_epoch * 2 + 1

    def inject(step, loss):
        return loss * float("nan") if step == bad_step else loss

    with pytest.raises(TrainingDiverged, match=f"at step {bad_step} \\(epoch 3\\)"):
        train(fresh(config), dataset, cfg, seed=1, state_path=state, progress=False, callbacks=[ReplaceLoss(inject)])
    tensors, meta = load_tensors(state)
    assert meta["epoch"] == 2
    assert all(torch.isfinite(v).all() for k, v in tensors.items() if k.startswith("model."))


def test_metrics_log_fields(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    train(fresh(config), dataset, cfg, seed=0, state_path=tmp_path / "s", log_path=tmp_path / "m.jsonl",
          progress=False, log_every=1)
    rows = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert set(rows[0]) == {"step", "epoch", "tokens", "loss", "lr", "time"}
    assert [r["step"] for r in rows] == sorted({r["step"] for r in rows})
    assert rows[-1]["loss"] < rows[0]["loss"]


def test_the_data_goes_to_the_device_once_per_epoch_not_once_per_step(small_setup, tmp_path,
                                                                      monkeypatch):
    """On a GPU every copy of token ids from the host is a transfer, and a Python number
    copied to the device makes the host wait for it; the loop sends each epoch's inputs and
    targets in one copy each and keeps its step count on the device."""
    dataset, cfg, config = small_setup
    id_copies, numbers_sent = [], []
    real_to, real_tensor = torch.Tensor.to, torch.tensor

    def counting_to(self, *args, **kwargs):
        if self.dtype == torch.long:
            id_copies.append(tuple(self.shape))
        return real_to(self, *args, **kwargs)

    def counting_tensor(*args, **kwargs):
        if kwargs.get("device") is not None:
            numbers_sent.append(args)
        return real_tensor(*args, **kwargs)

    def copies_for(epochs: int) -> tuple[int, int, int]:
        model = fresh(config)
        id_copies.clear()
        numbers_sent.clear()
        monkeypatch.setattr(torch.Tensor, "to", counting_to)
        monkeypatch.setattr(torch, "tensor", counting_tensor)
        result = train(model, dataset, cfg, seed=0, state_path=tmp_path / f"s{epochs}",
                       progress=False, callbacks=[StopAfterEpochs(epochs)])
        monkeypatch.undo()
        return len(id_copies), len(numbers_sent), result.steps

    ids_one, numbers_one, steps_per_epoch = copies_for(1)
    ids_three, numbers_three, steps = copies_for(3)
    assert steps_per_epoch >= 3 and steps == 3 * steps_per_epoch  # per-step copies would show
    assert (ids_three - ids_one) / 2 == 2  # inputs and targets, once each per epoch
    assert numbers_three == numbers_one  # only the optimizer's set-up sends numbers


def test_cpu_bf16_runs_the_matrix_products_in_bf16_and_keeps_float32_weights(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    seen: dict[bool, set] = {}
    for bf16 in (False, True):
        model = fresh(config)
        dtypes = seen.setdefault(bf16, set())
        model.head.register_forward_hook(lambda _m, _i, out, d=dtypes: d.add(out.dtype))
        result = train(model, dataset, replace(cfg, epochs=1, cpu_bf16=bf16), seed=0,
                       state_path=tmp_path / f"state{bf16}.safetensors", progress=False)
        assert result.final_loss == result.final_loss  # finite, not NaN
        assert all(p.dtype == torch.float32 for p in model.parameters())
    assert seen == {False: {torch.float32}, True: {torch.bfloat16}}


def test_without_epoch_checkpoints_no_state_is_written_between_epochs(small_setup, tmp_path):
    """The GPU machine's setting: `checkpoint_every` is ignored, the weights are the same."""
    dataset, cfg, config = small_setup
    state = tmp_path / "s.state"
    without = fresh(config)
    train(without, dataset, cfg, seed=1, state_path=state, progress=False, callbacks=[StopAfterEpochs(2)],
          epoch_checkpoints=False)
    assert not state.exists()
    with_them = fresh(config)
    train(with_them, dataset, cfg, seed=1, state_path=tmp_path / "w.state", progress=False,
          callbacks=[StopAfterEpochs(2)])
    assert (tmp_path / "w.state").exists()
    for a, b in zip(without.state_dict().values(), with_them.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_a_resumed_runs_clock_continues_from_the_time_its_log_recorded(small_setup, tmp_path):
    dataset, cfg, config = small_setup
    state, log = tmp_path / "c.state", tmp_path / "c.jsonl"
    first = train(fresh(config), dataset, cfg, seed=1, state_path=state, log_path=log,
                  progress=False, callbacks=[StopAfterEpochs(2)])
    # Pretend the first process trained for an hour: its log says so.
    lines = read_log(log)
    lines[-1]["time"] = 3600.0
    log.write_text("".join(json.dumps(row) + "\n" for row in lines))
    second = train(GPT(config), dataset, cfg, seed=1, state_path=state, log_path=log, progress=False)
    assert first.earlier_seconds == 0.0 and second.earlier_seconds == 3600.0
    assert second.wall_time >= 3600.0
    times = [row["time"] for row in read_log(log)]
    assert times[len(lines):] and min(times[len(lines):]) >= 3600.0  # no restart at zero


class _RecordingTrainer(Trainer):
    """A trainer whose steps only record what they would train on (no update)."""

    def _step(self, x, y, scale, log_weight=1.0, log_count=1):
        self.seen.append((int(len(x)), int((y != D.PAD_ID).sum()), scale, log_weight, log_count))
        self.step += 1


@pytest.mark.parametrize("epoch_mean", [False, True])
def test_epoch_token_mean_weighs_every_character_the_same(small_setup, tmp_path, epoch_mean):
    dataset, cfg, config = small_setup
    cfg = replace(cfg, epochs=1, epoch_token_mean=epoch_mean)
    trainer = _RecordingTrainer(fresh(config), dataset, cfg, seed=0, state_path=tmp_path / "s",
                                progress=False)
    trainer.seen = []
    trainer.run()
    sizes, targets, scales, weights, counts = zip(*trainer.seen, strict=True)
    # The log shows what the steps minimise: a scaled loss times its weight, summed and
    # divided by the summed counts, is the mean per character (epoch_token_mean) or the
    # mean of the batches' means.
    unit = [s * w for s, w in zip(scales, weights, strict=True)]
    if epoch_mean:
        assert all(u == pytest.approx(1.0) for u in unit) and list(counts) == list(targets)
    else:
        assert all(u == s for u, s in zip(unit, scales, strict=True)) and set(counts) == {1}
    assert sum(sizes) == len(dataset) and len(set(targets)) > 1  # grouped batches differ in length
    if epoch_mean:
        # One weight per character across the epoch: batch size times the mean characters
        # per example, whatever this batch's own lengths are.
        per_example = sum(targets) / len(dataset)
        assert all(s == pytest.approx(1 / (n * per_example), rel=1e-12)
                   for n, s in zip(sizes, scales, strict=True))
        full = {s for n, s in zip(sizes, scales, strict=True) if n == cfg.batch_size}
        assert len(full) == 1
    else:
        assert all(s == 1 / t for t, s in zip(targets, scales, strict=True))
