"""The lookup task's data is right by construction, and its training loop runs and learns."""

from __future__ import annotations

import pytest
import torch

from lib.demos.lookup_task import (
    LookupConfig,
    LookupModel,
    LookupTask,
    answer_by_scanning,
    best_guess_without_lookup,
    held_out_set,
    make_batch,
    run_lookup_experiment,
)

TINY = LookupTask(n_keys=6, n_values=5, n_pairs=3)


def test_batches_have_the_promised_layout_and_answers():
    task = LookupTask()
    tokens, answers = make_batch(task, 500, torch.Generator().manual_seed(0))
    assert tokens.shape == (500, task.length)
    keys, values = tokens[:, 0:-1:2], tokens[:, 1:-1:2]
    assert (keys < task.n_keys).all() and (values >= task.n_keys).all()
    assert (values < task.vocab_size).all()
    assert all(len(set(row)) == task.n_pairs for row in keys.tolist())  # distinct keys
    assert (keys == tokens[:, -1:]).sum(dim=1).eq(1).all()  # the query occurs exactly once
    assert torch.equal(answers, answer_by_scanning(task, tokens))
    # The query position is spread over all pairs, not always the same slot.
    slots = (keys == tokens[:, -1:]).float().argmax(dim=1)
    assert len(set(slots.tolist())) == task.n_pairs


def test_batches_are_reproducible_from_the_generator():
    a = make_batch(TINY, 8, torch.Generator().manual_seed(3))
    b = make_batch(TINY, 8, torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_best_guess_without_lookup_on_a_hand_made_example():
    task = LookupTask(n_keys=4, n_values=3, n_pairs=4)
    # values (after subtracting n_keys): 2, 2, 0, 2 -> most frequent occurs 3 times of 4.
    tokens = torch.tensor([[0, 6, 1, 6, 2, 4, 3, 6, 1]])
    assert best_guess_without_lookup(task, tokens) == pytest.approx(0.75)


def test_invalid_tasks_are_refused():
    with pytest.raises(ValueError):
        LookupTask(n_keys=3, n_values=4, n_pairs=4)


@pytest.mark.parametrize("variant", ["vanilla", "synthesizer"])
def test_model_reads_out_one_value_distribution_per_sequence(variant):
    torch.manual_seed(0)
    model = LookupModel(TINY, variant, n_embd=16, n_head=2)
    tokens, _ = make_batch(TINY, 5, torch.Generator().manual_seed(0))
    assert model(tokens).shape == (5, TINY.n_values)


def test_training_runs_and_dot_product_attention_learns_a_tiny_lookup():
    config = LookupConfig(task=TINY, steps=150, batch=64, n_embd=32, n_head=2,
                          eval_every=50, eval_size=500)
    curves = run_lookup_experiment(("vanilla", "synthesizer"), config)
    for curve in curves.values():
        assert curve.steps == [0, 50, 100, 150]
        assert all(0.0 <= a <= 1.0 for a in curve.accuracy)
        assert curve.seconds > 0
    vanilla = curves["vanilla"]
    assert vanilla.final_accuracy > 0.9, vanilla.accuracy
    assert vanilla.final_accuracy > vanilla.accuracy[0] + 0.3
    # The synthesizer stays near what the bag of values alone allows (about 0.55 here).
    ceiling = best_guess_without_lookup(TINY, held_out_set(config)[0])
    assert max(curves["synthesizer"].accuracy) < ceiling + 0.1 < vanilla.final_accuracy
