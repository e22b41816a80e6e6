"""lib.core.evaluate: cached batched decoding equals recomputation; baselines; probes; predictions."""

from __future__ import annotations

import pytest
import torch

from lib.core import data as D
from lib.core.evaluate import (
    decode_batched,
    decode_reference,
    knowledge_probe,
    london_baseline,
    most_common_place,
    predict,
    question_prompts,
    read_predictions,
    score,
    write_predictions,
)
from lib.core.model import GPT, GPTConfig


@pytest.fixture(scope="module", params=["vanilla", "rope"])
def model(real_data, request):
    """A random model of each attention variant that decodes with a key-value cache."""
    torch.manual_seed(0)
    m = GPT(GPTConfig(vocab_size=len(real_data.vocab), n_layer=2, n_head=4, n_embd=32, dropout=0.0,
                      attn_dropout=0.0, attention=request.param))
    # A random model rarely emits the stop mask; raise its logit so decoding stops at varied lengths.
    with torch.no_grad():
        m.head.weight[D.MASK_ID] += 0.35 * m.head.weight[D.MASK_ID].norm() * torch.randn(32) / 32**0.5
    return m.eval()


def test_cached_batched_decoding_equals_full_recomputation(model, real_data):
    prompts = question_prompts(real_data.dev[:16], real_data.vocab)
    batched = decode_batched(model, prompts)
    reference = [decode_reference(model, p) for p in prompts]
    assert [b.ids for b in batched] == [r.ids for r in reference]
    assert [b.stopped for b in batched] == [r.stopped for r in reference]
    # Sums of up to 33 float32 log-softmax values: each is exact to ~1e-6 relative, so the
    # cached and recomputed totals may differ in the last bits only; 1e-4 leaves margin.
    for b, r in zip(batched, reference, strict=True):
        assert b.logprob == pytest.approx(r.logprob, abs=1e-4)


def test_cached_logits_equal_recomputed_logits(model, real_data):
    """The cached path's logits agree with a full forward pass to float32 rounding (< 1e-5)."""
    prompt = torch.tensor([question_prompts(real_data.dev[:1], real_data.vocab)[0]])
    full, _ = model(prompt)
    logits, caches = model.forward_cached(prompt[:, :10], None)
    stepwise = [logits]
    for i in range(10, prompt.shape[1]):
        logits, caches = model.forward_cached(prompt[:, i : i + 1], caches)
        stepwise.append(logits)
    torch.testing.assert_close(torch.cat(stepwise, 1), full, atol=1e-5, rtol=1e-5)


def test_uncached_batched_decoding_matches(model, real_data):
    prompts = question_prompts(real_data.dev[:12], real_data.vocab)
    a = decode_batched(model, prompts, use_cache=True)
    b = decode_batched(model, prompts, use_cache=False)
    assert [x.ids for x in a] == [y.ids for y in b]


def test_decoding_stops_at_the_block_end(model, real_data):
    long_prompt = [5] * 120
    short = question_prompts(real_data.dev[:3], real_data.vocab)
    out = decode_batched(model, [long_prompt, *short], max_new=32)
    assert len(out[0].ids) <= 8
    assert [o.ids for o in out] == [decode_reference(model, p).ids for p in [long_prompt, *short]]


def test_london_is_five_percent_on_dev(real_data):
    result = score(london_baseline(real_data.dev), real_data.dev)
    assert (result.correct, result.total, result.accuracy) == (25, 500, 0.05)
    assert most_common_place(real_data.train) == "London"


def test_score_checks_lengths_and_labels(real_data):
    with pytest.raises(ValueError, match="2 predictions for 3"):
        score(["a", "b"], real_data.dev[:3])
    with pytest.raises(ValueError, match="unlabelled"):
        score(["a"], real_data.test[:1])


def test_predictions_file_one_per_line_in_order(tmp_path, model, real_data):
    preds = predict(model, real_data.test[:7], real_data.vocab)
    path = write_predictions(tmp_path / "p.txt", preds.places)
    assert read_predictions(path) == preds.places and len(preds.places) == 7
    assert all(0.0 <= c <= 1.0 for c in preds.confidences)


def test_predictions_written_elsewhere_read_the_same(tmp_path):
    """A file without the final newline, or with CRLF endings, holds the same answers."""
    for name, text in [("lf", "London\n\nParis\n"), ("no_final_newline", "London\n\nParis"),
                       ("crlf", "London\r\n\r\nParis\r\n")]:
        path = tmp_path / name
        path.write_bytes(text.encode("utf-8"))
        assert read_predictions(path) == ["London", "", "Paris"], name
    (tmp_path / "latin1").write_bytes("Z\xfcrich\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not valid UTF-8"):
        read_predictions(tmp_path / "latin1")


def test_knowledge_probe_scores_gold_and_control(model, real_data):
    rows = real_data.dev[:10]
    probe = knowledge_probe(model, rows, real_data.biographies, real_data.vocab)
    assert all(c != g for c, g in zip(probe.control_places, probe.places, strict=True))
    summary = probe.summary()
    assert summary["name_gold_total"] == 10
    assert summary["bio_gold_total"] == sum(c is not None for c in probe.bio_completions)
    # A completion equal to the gold place is counted; to the control's place is not.
    probe.name_completions = [p + " ." for p in probe.places]
    assert probe.summary()["name_gold_correct"] == 10
    assert probe.summary()["name_control_correct"] == 0
