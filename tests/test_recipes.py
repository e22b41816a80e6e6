"""Pretraining recipes beyond the classic exercise: what each adds, and that no dev or test
person's question ever reaches pretraining."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lib.core import data as D
from lib.core import datasets as DS
from lib.runs import pipeline as P
from lib.runs.profiles import get_profile
from lib.runs.records import write_record


def corpus_of(dataset: DS.SpanCorruptionDataset) -> list[str]:
    return list(dataset.docs)


@settings(max_examples=15, deadline=None)
@given(n_train=st.integers(1, 60), n_dev=st.integers(1, 30), seed=st.integers(0, 10_000),
       recipe=st.sampled_from([("mixed",), ("mixed", "crop"), ("crop",), ("fullname",),
                               ("mixed", "fullname"), ("mixed", "crop", "fullname"), ()]))
def test_no_dev_or_test_question_enters_pretraining(real_data, n_train, n_dev, seed, recipe):
    world = D.mini_world(real_data, n_train, n_dev, seed)
    dataset = DS.pretraining_dataset(world, real_data.vocab, 128, recipe)
    docs = corpus_of(dataset)
    added = docs[len(world.corpus):]
    assert docs[: len(world.corpus)] == world.corpus
    # What a recipe adds is exactly the training people's questions with their answers.
    assert added == ([f"{q.question} {q.place}" for q in world.train] if "mixed" in recipe else [])
    held_out = {q.question for q in real_data.dev + real_data.test} - {q.question for q in world.train}
    assert not any(question in doc for doc in added for question in held_out)
    # Draws show nothing beyond the documents: every example's characters come from them.
    x, _ = dataset.epoch(torch.Generator().manual_seed(seed))
    assert x.shape == (len(docs), 127)


def test_the_whole_data_mixed_corpus_holds_no_held_out_question(real_data):
    world = D.full_world(real_data)
    added = corpus_of(DS.pretraining_dataset(world, real_data.vocab, 128, ("mixed",)))[len(world.corpus):]
    assert len(added) == len(real_data.train) == 2000
    text = "\n".join(added)
    train_questions = {q.question for q in real_data.train}
    leaked = [q.question for q in real_data.dev + real_data.test
              if q.question not in train_questions and q.question in text]
    assert leaked == []


def test_crop_keeps_the_name_and_starts_the_text_at_a_word(real_data):
    world = D.mini_world(real_data, 30, 10, 0)
    dataset = DS.pretraining_dataset(world, real_data.vocab, 128, ("mixed", "crop"))
    generator = torch.Generator().manual_seed(0)
    seen_whole = set()
    for _ in range(40):
        drawn = dataset.drawn(generator)
        for i, (original, doc) in enumerate(zip(dataset.docs, drawn, strict=True)):
            if i >= len(world.corpus):  # questions are never cropped
                assert doc == original
                continue
            head, body = DS.split_head(original)
            assert head and doc.startswith(head) and body.endswith(doc[len(head):])
            start = len(body) - (len(doc) - len(head))
            assert start == 0 or body[start - 1] == " "
            assert len(doc) - len(head) >= min(len(body), DS.RewrittenSpanCorruption.MIN_TEXT)
            if doc == original:
                seen_whole.add(i)
    assert len(seen_whole) > len(world.corpus) // 2  # the uncropped biography is one of the draws
    a = dataset.epoch(torch.Generator().manual_seed(3))
    b = dataset.epoch(torch.Generator().manual_seed(3))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_name_repetition_writes_the_full_name_at_the_first_other_mention():
    head = "Hector de Castro. "
    assert DS.with_full_name(head, "Born in Lima, de Castro was taught by Castro .") == (
        "Born in Lima, Hector de Castro was taught by Castro .")
    assert DS.with_full_name("John Jaffray. ", "Born in Stirling, he moved; Jaffray stayed .") == (
        "Born in Stirling, John Jaffray moved; Jaffray stayed .")
    assert DS.with_full_name("Stephen Carter, Baron Carter of Barnes. ", "Carter was born .") == (
        "Stephen Carter, Baron Carter of Barnes was born .")
    # Nothing to do: the full name is already written, the surname sits inside another form
    # of the name, or only a longer word contains it.
    assert DS.with_full_name("Stanley Corrsin. ", "Stanley Corrsin was born; he died .") is None
    assert DS.with_full_name("A. G. E. Blake. ", "Anthony Blake was born in Bristol .") is None
    assert DS.with_full_name("Jo Shell. ", "Shelley was born in Theshell .") is None
    assert DS.with_full_name("", "He was born .") is None


def test_name_repetition_rewrites_half_the_rewritable_biographies_and_no_question(real_data):
    world = D.mini_world(real_data, 60, 20, 0)
    dataset = DS.pretraining_dataset(world, real_data.vocab, 128, ("mixed", "fullname"))
    rewrites = {i: DS.split_head(doc)[0] + renamed for i, doc in enumerate(world.corpus)
                if (renamed := DS.with_full_name(*DS.split_head(doc))) is not None}
    assert len(rewrites) > 5
    generator = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(rewrites, 0)
    draws = 60
    for _ in range(draws):
        drawn = dataset.drawn(generator)
        for i, (original, doc) in enumerate(zip(dataset.docs, drawn, strict=True)):
            assert doc == original or doc == rewrites.get(i)
            counts[i] = counts.get(i, 0) + (doc != original)
    assert all(counts.get(i, 0) == 0 for i in range(len(dataset.docs)) if i not in rewrites)
    # A fair coin per biography and draw: each rewritable one is rewritten 30 of 60 times on
    # average; 12 and 48 lie more than four standard deviations away.
    assert all(12 <= counts[i] <= 48 for i in rewrites)


def test_crop_with_name_repetition_crops_either_form(real_data):
    world = D.mini_world(real_data, 60, 20, 1)
    dataset = DS.pretraining_dataset(world, real_data.vocab, 128, ("crop", "fullname"))
    generator = torch.Generator().manual_seed(1)
    for _ in range(10):
        for original, doc in zip(dataset.docs, dataset.drawn(generator), strict=True):
            head, body = DS.split_head(original)
            forms = [body] + [f for f in [DS.with_full_name(head, body)] if f is not None]
            assert doc.startswith(head) and any(f.endswith(doc[len(head):]) for f in forms)
    x, y = dataset.epoch(torch.Generator().manual_seed(2))
    assert x.shape == y.shape == (len(dataset.docs), 127)


def test_a_biography_head_ends_after_the_name_not_at_an_initial():
    assert DS.split_head("John F. Kennedy. He was born in Brookline .") == (
        "John F. Kennedy. ", "He was born in Brookline .")
    assert DS.split_head("no full stop here") == ("", "no full stop here")


def test_recipe_profiles_are_named_by_their_options():
    profile = get_profile("mini+mixed+crop")
    assert profile.recipe == ("mixed", "crop") and profile.name == "mini+mixed+crop"
    assert get_profile("mini").recipe == ()
    for bad, message in (("mini+crop+mixed", "in this order"), ("mini+bogus", "distinct names"),
                         ("mini+mixed+mixed", "distinct names"), ("nope+mixed", "unknown profile")):
        with pytest.raises(ValueError, match=message):
            get_profile(bad)
    with pytest.raises(ValueError, match="unknown recipe options"):
        DS.pretraining_dataset(D.World([], [], [], ""), None, 128, ("bogus",))


def test_a_recipe_run_records_its_recipe_and_trains_on_the_larger_corpus(scratch):
    record = P.run("pretrain", "smoke+mixed", progress=False)
    profile = get_profile("smoke+mixed")
    n_train, n_dev, _ = profile.mini_world
    assert record["profile"] == "smoke+mixed" and record["config"]["recipe"] == ["mixed"]
    documents = n_train + n_dev + n_train  # biographies, then the training questions
    assert record["metrics"]["steps"] == profile.pretrain.epochs * math.ceil(documents / profile.pretrain.batch_size)
    assert (scratch / "results" / "smoke+mixed" / "pretrain-vanilla-seed0.json").is_file()


def test_the_recipe_comparison_pairs_each_arm_with_vanilla_on_the_same_people(scratch):
    from lib.report import dev_outcomes
    from lib.report import recipes as RR
    from lib.report.stats import mcnemar
    from lib.runs.records import load_records

    for profile, variant in (("smoke", "vanilla"), ("smoke+mixed", "vanilla"), ("smoke+mixed", "rope")):
        P.run("london", profile, progress=False)
        P.run("pretrain_finetune", profile, variant=variant, progress=False)
    root = scratch / "results"
    (root / "smoke+unrelated").mkdir()  # a folder of another base is not an arm
    found = RR.arms("smoke", root)
    assert [a.label for a in found] == ["vanilla (classic)", "mixed", "mixed + rope"]
    measured = RR.measure("smoke", root)
    assert [m.arm for m in measured] == found and {m.seed for m in measured} == {0}
    reference, mixed = measured[0], measured[1]
    assert reference.dev_vs_vanilla is None and reference.bio_vs_vanilla is None
    records = {r["variant"]: r for r in load_records("smoke+mixed", root, kind="pretrain_finetune")}
    vanilla = load_records("smoke", root, kind="pretrain_finetune")[0]
    # Exactly the counts of the records, and McNemar on the two runs' own answers.
    assert mixed.dev.k == records["vanilla"]["metrics"]["dev"]["correct"]
    assert mixed.dev.n == 20
    assert mixed.dev_vs_vanilla == mcnemar(dev_outcomes(records["vanilla"], root),
                                           dev_outcomes(vanilla, root))
    assert mixed.bio is not None and mixed.bio.n == mixed.bio_vs_vanilla.n
    from lib.report.verdicts import probe_asked
    from lib.runs.records import records_by_seed

    pre = {p: records_by_seed(p, "pretrain", "vanilla", root)[0] for p in ("smoke", "smoke+mixed")}
    ours, theirs = (probe_asked(pre[p], "name", root) for p in ("smoke+mixed", "smoke"))
    assert list(ours["name"]) == list(theirs["name"])  # the same dev people, in one order
    assert mixed.name_vs_vanilla == mcnemar(list(ours["hit"]), list(theirs["hit"]))
    assert reference.name_vs_vanilla is None
    for table in (RR.extraction_table(measured), RR.storage_table(measured)):
        assert list(table["what changes"]) == ["vanilla (classic)", "mixed", "mixed + rope"]
        assert table.loc[0, "against vanilla"] == "(reference)"
    assert reference.reference and not mixed.reference
    alone = replace(mixed, dev_vs_vanilla=None)  # an arm's seed that vanilla has not run
    assert RR.extraction_table([alone]).loc[0, "against vanilla"] == "no vanilla run of this seed"
    storage = RR.storage_table(measured)
    assert storage.loc[1, "name probe (95 % CI)"] == mixed.name.cell(digits=0)
    assert storage.loc[1, "name probe against vanilla"].startswith(mixed.name_vs_vanilla.verdict)
    assert RR.provenance(measured, root).startswith("Every run compared here was made at commit ")
    sentence = RR.verdict(mixed)
    assert sentence.startswith("**mixed**, seed 0: ") and f"({mixed.dev.k} against " in sentence
    assert ("answers more" in sentence) == (mixed.dev_vs_vanilla.verdict == "above")


def test_a_training_code_profile_is_an_arm_of_its_base(tmp_path):
    from lib.report import recipes as RR

    for name in ("mini", "mini+mixed", "mini-classic", "mini-classic-grouped", "mini-other",
                 "smoke-classic"):
        (tmp_path / name).mkdir()
    assert RR.recipe_profiles("mini", tmp_path) == ["mini", "mini-classic", "mini-classic-grouped",
                                                    "mini+mixed"]
    assert RR.Arm("mini-classic-grouped", "vanilla").label == "classic decay and init, grouped batches"
    assert RR.Arm("mini-classic", "vanilla").label == "classic training code"
    assert RR.Arm("mini-classic", "rope").options == ("classic training code", "rope")
    assert RR.Arm("mini+mixed", "vanilla").label == "mixed"
    # A base whose own name holds a "-" still reads its training code from the end.
    assert RR.Arm("my-world-classic-grouped", "vanilla").label == RR.Arm(
        "mini-classic-grouped", "vanilla").label
    assert RR.Arm("my-world", "vanilla").label == "vanilla (classic)"


def test_the_classic_training_code_runs_and_is_compared_with_its_base(scratch, monkeypatch):
    from dataclasses import replace

    from lib.report import recipes as RR
    from lib.runs import profiles as PR

    smoke = get_profile("smoke")
    classic = replace(
        smoke, name="smoke-classic", scaled_residual_init=False,
        **{phase: replace(getattr(smoke, phase), length_grouped=False, **PR.CLASSIC_CODE)
           for phase in ("pretrain", "finetune_scratch", "finetune_pretrained")})
    monkeypatch.setitem(PR.PROFILES, "smoke-classic", classic)
    for profile in ("smoke", "smoke-classic"):
        record = P.run("pretrain_finetune", profile, progress=False)
        assert record["config"]["pretrain"]["shuffle"] == (profile == "smoke")
    root = scratch / "results"
    assert [a.label for a in RR.arms("smoke", root)] == ["vanilla (classic)",
                                                         "classic training code"]
    [line] = RR.training_code_verdicts("smoke", root)
    assert line.startswith("**classic training code**, seed 0: ")
    assert RR.training_code_verdicts("mini", root) == []
    # The same two trainings compared directly, as the results page compares the whole-data
    # pair (cpu32-classic against cpu32): finetuning alone joins once both have it.
    lines = RR.whole_data_code_verdicts("smoke-classic", "smoke", root)
    assert [line.split(",")[0] for line in lines] == ["**pretraining**", "**pretrain + finetune**"]
    for profile in ("smoke", "smoke-classic"):
        P.run("finetune", profile, progress=False)
    lines = RR.whole_data_code_verdicts("smoke-classic", "smoke", root)
    assert [line.split(",")[0] for line in lines] == ["**pretraining**", "**finetuning alone**",
                                                      "**pretrain + finetune**"]
    from lib.report import dev_outcomes
    from lib.report.stats import format_p, mcnemar
    from lib.runs.records import records_by_seed

    ours, theirs = (records_by_seed(p, "finetune", "vanilla", root)[0]
                    for p in ("smoke-classic", "smoke"))
    test = mcnemar(dev_outcomes(ours, root), dev_outcomes(theirs, root))
    assert lines[1] == (f"**finetuning alone**, seed 0: `smoke-classic` answers {test.a_correct} "
                        f"of 20 dev questions, `smoke` {test.b_correct}; `smoke-classic` is "
                        f"{test.relation} `smoke` ({test.only_a} vs {test.only_b} people, "
                        f"{format_p(test.p_value)}).")
    assert RR.whole_data_code_verdicts("smoke-classic", "mini", root) == []
    # Their snapshot curves, side by side: every seed of each, the code profile first.
    curves = RR.whole_data_code_snapshots("smoke-classic", "smoke", root)
    assert {kind: list(runs) for kind, runs in curves.items()} == {
        kind: ["smoke-classic, seed 0", "smoke, seed 0"] for kind in ("pretrain", "pretrain_finetune")}
    assert curves["pretrain"]["smoke, seed 0"]["profile"] == "smoke"
    # A seed only one profile has finished is drawn too.
    P.run("pretrain", "smoke-classic", seed=1, progress=False)
    curves = RR.whole_data_code_snapshots("smoke-classic", "smoke", root)
    assert list(curves["pretrain"]) == ["smoke-classic, seed 0", "smoke-classic, seed 1",
                                        "smoke, seed 0"]
    assert curves["pretrain"]["smoke-classic, seed 1"]["seed"] == 1
    assert RR.whole_data_code_snapshots("smoke-classic", "mini", root) == {
        "pretrain": {}, "pretrain_finetune": {}}


def test_a_recorded_rerun_is_reported_beside_the_commits(tmp_path):
    from lib.report import recipes as RR

    assert RR.rerun_note("mini", tmp_path) == ""
    (tmp_path / "benchmarks").mkdir()
    record = {"profile": "mini", "variant": "vanilla", "seed": 0,
              "stored": {"commit": "aaaaaaa", "dev": "6/100", "biography probe": "71/90"},
              "rerun": {"commit": "bbbbbbb", "dev": "9/100", "biography probe": "70/90"},
              "dev, rerun against stored": {"only rerun right": 5, "only stored right": 2,
                                            "McNemar p": 0.453125},
              "biography probe, rerun against stored": {"only rerun": 3, "only stored": 4,
                                                        "McNemar p": 1.0}}
    (tmp_path / "benchmarks" / "rerun_mini_vanilla_seed0_bbbbbbb.json").write_text(json.dumps(record))
    (tmp_path / "benchmarks" / "rerun_mini+mixed_rope_seed0_bbbbbbb.json").write_text(
        json.dumps(record | {"profile": "mini+mixed"}))
    assert RR.rerun_note("mini", tmp_path) == (
        "Run a second time at bbbbbbb, vanilla seed 0 of `mini` answered 9/100 dev questions "
        "against 6/100 the first time (at aaaaaaa; 5 vs 2 people, McNemar p = 0.45), and the "
        "biography probe found 70/90 against 71/90 (McNemar p = 1.00): that is how far rounding "
        "differences alone move a whole run.")
    # Two seeds rerun at one commit share a sentence; where the records under results/ are
    # the second runs, the note says so.
    (tmp_path / "benchmarks" / "rerun_mini_vanilla_seed1_bbbbbbb.json").write_text(json.dumps(
        record | {"seed": 1, "stored": {"commit": "ccccccc", "dev": "1/100",
                                        "biography probe": "61/90"}}))
    for seed in (0, 1):
        write_record({"run_id": f"pretrain_finetune-vanilla-seed{seed}", "kind": "pretrain_finetune",
                      "profile": "mini", "variant": "vanilla", "seed": seed, "metrics": {},
                      "git_commit": "bbbbbbb" + "0" * 33}, tmp_path)
    assert RR.rerun_note("mini", tmp_path) == (
        "Run a second time at bbbbbbb, vanilla seeds 0 and 1 of `mini` answered 9/100 and 9/100 "
        "dev questions against 6/100 and 1/100 the first time (at aaaaaaa and ccccccc; 5 vs 2 "
        "people and 5 vs 2 people, McNemar p = 0.45 and p = 0.45), and the biography probe found "
        "70/90 and 70/90 against 71/90 and 61/90 (McNemar p = 1.00 and p = 1.00): that is how "
        "far rounding differences alone move a whole run. The records shown are the second runs.")


def test_rerun_noise_counts_reruns_the_rule_already_separates(tmp_path):
    from lib.report import recipes as RR

    assert RR.rerun_noise("mini", tmp_path) == ""
    (tmp_path / "benchmarks").mkdir()

    def rerun(seed: int, dev_p: float, bio_p: float) -> None:
        record = {"profile": "mini", "variant": "vanilla", "seed": seed,
                  "dev, rerun against stored": {"McNemar p": dev_p},
                  "biography probe, rerun against stored": {"McNemar p": bio_p}}
        (tmp_path / "benchmarks" / f"rerun_mini_vanilla_seed{seed}_abc.json").write_text(
            json.dumps(record))

    rerun(0, 0.62, 0.18)
    assert RR.rerun_noise("mini", tmp_path).startswith("Of 1 rerun of one configuration")
    assert "none came out above or below" in RR.rerun_noise("mini", tmp_path)
    rerun(1, 1.0, 0.65)
    rerun(2, 0.62, 0.013)
    assert RR.rerun_noise("mini", tmp_path) == (
        "Of 3 reruns of one configuration that differ from the first run only by rounding, 0 "
        "came out above or below it on the dev questions and 1 on the biography probe: one "
        "seed's \"above\" or \"below\" can come from run-to-run noise alone.")
    assert RR.rerun_noise("mini+mixed", tmp_path) == ""
