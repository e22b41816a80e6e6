"""lib.report.analysis: the counting behind the considerations essays, pinned on small fixtures."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from lib.core import data as D
from lib.core.evaluate import ProbeResult
from lib.core.strangers import invented_names
from lib.report import analysis as A
from lib.report import confidence as CF
from lib.report import evidence as EV
from lib.report.choice import essay_profile
from lib.runs.matrix import TRAINED_KINDS


# --------------------------------------------------------------------------------------
# AUROC
# --------------------------------------------------------------------------------------
def test_auroc_hand_computed():
    # Right answers score 0.9 and 0.7; wrong ones 0.8, 0.6, 0.55. Of the 6 (right, wrong)
    # pairs the right one scores higher in 5 (0.7 < 0.8 is the exception): 5/6.
    assert CF.auroc([0.9, 0.8, 0.7, 0.6, 0.55], [1, 0, 1, 0, 0]) == pytest.approx(5 / 6)


def test_auroc_ties_count_half_and_extremes():
    assert CF.auroc([0.5, 0.5], [True, False]) == pytest.approx(0.5)
    # pairs: (0.7 vs 0.7) tie = 1/2, (0.7 vs 0.1) = 1 -> 1.5 / 2
    assert CF.auroc([0.7, 0.7, 0.1], [True, False, False]) == pytest.approx(0.75)
    assert CF.auroc([0.9, 0.8, 0.1], [True, True, False]) == 1.0
    assert CF.auroc([0.1, 0.8, 0.9], [True, True, False]) == 0.0


def test_auroc_undefined_with_one_class():
    assert math.isnan(CF.auroc([0.2, 0.4], [False, False]))
    assert math.isnan(CF.auroc([0.2, 0.4], [True, True]))
    with pytest.raises(ValueError):
        CF.auroc([0.2, 0.4], [True])


def test_auroc_equals_pairwise_count():
    rng = np.random.default_rng(1)
    for _ in range(20):
        s = rng.integers(0, 6, size=40) / 5  # many ties
        y = rng.random(40) < 0.3
        pos, neg = s[y][:, None], s[~y][None, :]
        brute = ((pos > neg).sum() + 0.5 * (pos == neg).sum()) / (pos.size * neg.size)
        assert CF.auroc(s, y) == pytest.approx(brute)


# --------------------------------------------------------------------------------------
# (a) where the knowledge is
# --------------------------------------------------------------------------------------
def test_prefix_window_is_seven_eighths_of_the_block():
    assert D.prefix_window(128) == 112
    assert D.prefix_window(64) == 56


def test_place_location_uses_where_the_first_mention_ends():
    bio = "Ann Lee. Born in Oslo, Lee moved to Rome."  # "Oslo" ends at 21, "Rome" at 40
    within, later, absent = A.LOCATIONS
    assert A.place_location("Oslo", bio, 21) == within
    assert A.place_location("Oslo", bio, 20) == later
    assert A.place_location("Rome", bio, 30) == later
    assert A.place_location("Paris", bio, 100) == absent
    assert A.place_location("Paris", None, 100) == absent


def test_accuracy_by_group_lists_every_group():
    within, later, absent = A.LOCATIONS
    table = A.accuracy_by_group([True, False, True, False], [within, within, within, later])
    assert table.loc[within, "people"] == 3 and table.loc[within, "correct"] == 2
    assert table.loc[within, "accuracy"] == pytest.approx(2 / 3)
    assert table.loc[later, "accuracy"] == 0.0
    assert table.loc[absent, "people"] == 0 and math.isnan(table.loc[absent, "accuracy"])
    assert table["share"].sum() == pytest.approx(1.0)
    with pytest.raises(ValueError):
        A.accuracy_by_group([True], [within, later])


def test_locate_on_the_real_data_matches_the_probe_rule(real_data):
    rows = [{"name": q.name, "gold": q.place} for q in real_data.dev]
    where = A.locate(rows, real_data.biographies, 112)
    # The biography probe asks exactly the people whose place ends inside the window.
    for q, loc in zip(real_data.dev, where, strict=True):
        at = real_data.biographies[q.name].find(q.place)
        assert (loc == A.LOCATIONS[0]) == (at > 0 and at + len(q.place) <= 112), q.name
    # On the reference copy of the dev file: 462 within the window, 17 later, 21 absent.
    counts = [where.count(loc) for loc in A.LOCATIONS]
    assert counts == [462, 17, 21]


def _probe_fixture() -> ProbeResult:
    return ProbeResult(
        names=["A", "B", "C", "D"],
        places=["Oslo", "Oslo", "Rome", "Lima"],
        control_places=["Rome", "Rome", "Lima", "Oslo"],
        name_completions=["Oslo.", "Rome, Italy", "Rome", "x"],
        bio_completions=[" Oslo", None, "Lima y", "Lim"],
    )


def test_control_places_follow_the_probe_rule():
    fixture = _probe_fixture()
    assert A.control_places(fixture.places) == fixture.control_places
    assert A.control_places(["X", "X"]) == ["X", "X"]  # nobody differs: the person's own


def test_probe_table_agrees_with_the_probe_summary():
    fixture = _probe_fixture()
    table = A.probe_table(fixture.per_person())
    summary = fixture.summary()
    scores = A.probe_scores(table).set_index(["probe", "against"])
    for probe, label in (("name", "NAME. NAME was born in"), ("bio", "biography prefix")):
        for against, key in (("own place", "gold"), ("control", "control")):
            row = scores.loc[(label, against)]
            assert row.correct == summary[f"{probe}_{key}_correct"]
            assert row.asked == summary[f"{probe}_{key}_total"]
    assert table.loc[1, "bio_probe"] is None
    assert table.loc[2, "bio_control"] is True  # "Lima y" is the control's place


def test_stored_vs_extracted_cross_table():
    probe = _probe_fixture().per_person()
    dev = [{"name": "A", "gold": "Oslo", "prediction": "Oslo", "logprob": -0.1},
           {"name": "B", "gold": "Oslo", "prediction": "Rome", "logprob": -0.2},
           {"name": "C", "gold": "Rome", "prediction": "Paris", "logprob": -0.3},
           {"name": "D", "gold": "Lima", "prediction": "Paris", "logprob": -0.4}]
    per_person = A.stored_vs_extracted(probe, dev)
    assert per_person["stored"].tolist() == [True, False, True, False]
    assert per_person["answered"].tolist() == [True, False, False, False]
    table = A.cross_table(per_person)
    assert table.loc["recovered by the probe", "question answered"] == 1
    assert table.loc["recovered by the probe", "question missed"] == 1
    assert table.loc["not recovered", "question missed"] == 2
    assert table.loc["total", "total"] == 4
    bio = A.cross_table(per_person, stored="bio_probe")
    assert bio.loc["not probed", "total"] == 1  # B's place is not in the window
    with pytest.raises(ValueError):
        A.stored_vs_extracted(probe[:3], dev)


def test_frequency_bands_cover_every_count_once():
    assert [A.frequency_band(c) for c in (0, 1, 2, 4, 5, 19, 20, 900)] == [
        "never", "once", "2-4 times", "2-4 times", "5-19 times", "5-19 times",
        "20 times or more", "20 times or more"]
    with pytest.raises(ValueError):
        A.frequency_band(-1)
    assert A.training_answer_counts(["Oslo", "Rome", "Lima"], ["Oslo", "Oslo", "Rome"]) == [2, 1, 0]


def test_extraction_by_frequency_counts_only_people_the_biography_probe_finds():
    per_person = pd.DataFrame([
        # name, place, biography probe, name probe, answered after pretraining
        ("P1", "Oslo", True, True, True),
        ("P2", "Oslo", True, False, False),
        ("P3", "Rome", True, False, False),
        ("P4", "Lima", None, True, True),    # place outside the window: not asked
        ("P5", "Quito", False, False, False),  # not found by the biography probe
        ("P6", "Paris", True, True, True),
    ], columns=["name", "place", "bio_probe", "name_probe", "answered"])
    train = ["Oslo"] * 5 + ["Rome"] + ["Paris"] * 25 + ["Lima"] * 3
    alone = {"P1": False, "P2": True, "P3": False, "P4": True, "P5": True, "P6": True}
    table = A.extraction_by_frequency(per_person, train, alone)
    assert list(table.index) == [label for label, _, _ in A.FREQUENCY_BANDS]
    assert table.loc["never"].tolist() == [0, 0, 0, 0]
    assert table.loc["once"].tolist() == [1, 0, 0, 0]              # P3
    assert table.loc["2-4 times"].tolist() == [0, 0, 0, 0]         # Lima's P4 was not asked
    assert table.loc["5-19 times"].tolist() == [2, 1, 1, 1]        # P1, P2
    assert table.loc["20 times or more"].tolist() == [1, 1, 1, 1]  # P6
    assert list(table.columns) == ["stored", "name probe", "answered", "finetuning alone"]
    with pytest.raises(ValueError, match="P6"):
        A.extraction_by_frequency(per_person, train, {k: v for k, v in alone.items() if k != "P6"})


def _summary(name: int, bio: int, total: int = 10) -> dict:
    return {"name_gold_correct": name, "name_gold_total": total, "name_control_correct": 0,
            "name_control_total": total, "bio_gold_correct": bio, "bio_gold_total": total,
            "bio_control_correct": 1, "bio_control_total": total}


def test_pretraining_curve_joins_snapshots_and_adds_the_end():
    pretrain = {"config": {"pretrain": {"epochs": 8}},
                "metrics": {"steps": 80, "tokens": 8000, "probe": _summary(9, 10),
                            "snapshots": [{"epoch": 2, "step": 20, "tokens": 2000,
                                           "probe": _summary(1, 2)},
                                          {"epoch": 4, "step": 40, "tokens": 4000,
                                           "probe": _summary(5, 6)}]}}
    finetuned = {"metrics": {"dev": {"accuracy": 0.3},
                             "snapshots": [{"epoch": 2, "step": 20, "dev": {"accuracy": 0.1}},
                                           {"epoch": 4, "step": 40, "dev": {"accuracy": 0.2}}]}}
    curve = A.pretraining_curve(pretrain, finetuned)
    assert curve["step"].tolist() == [20, 40, 80]
    assert curve["name_gold"].tolist() == pytest.approx([0.1, 0.5, 0.9])
    assert curve["bio_gold"].tolist() == pytest.approx([0.2, 0.6, 1.0])
    assert curve["dev_accuracy"].tolist() == pytest.approx([0.1, 0.2, 0.3])
    assert "final" not in curve
    # A snapshot at the end: nothing added; without a finetuned record, accuracy is NaN.
    pretrain["metrics"]["snapshots"].append({"epoch": 8, "step": 80, "tokens": 8000,
                                             "probe": _summary(9, 10)})
    curve = A.pretraining_curve(pretrain)
    assert len(curve) == 3 and curve["dev_accuracy"].isna().all()


def test_answer_frequencies_and_baselines():
    freq = A.answer_frequencies(["Paris", "London", "Paris", "Rome"], top=2)
    assert freq["answer"].tolist() == ["Paris", "London"]
    assert freq["share"].tolist() == [0.5, 0.25]
    base = A.frequency_baselines(["Rome", "Rome", "London"], ["Rome", "London", "Oslo", "Rome"])
    assert base.loc["always London", "correct"] == 1
    assert base.loc["always the commonest training place", "answer"] == "Rome"
    assert base.loc["always the commonest training place", "accuracy"] == 0.5


# --------------------------------------------------------------------------------------
# (b) confidence
# --------------------------------------------------------------------------------------
def test_confidences_are_probabilities_of_the_answer():
    rows = [{"name": "A", "gold": "Oslo", "prediction": "Oslo", "logprob": math.log(0.25)},
            {"name": "B", "gold": "Oslo", "prediction": "Rome", "logprob": 0.0}]
    assert CF.confidences(rows).tolist() == pytest.approx([0.25, 1.0])
    assert CF.correctness(rows).tolist() == [True, False]


def test_per_character_confidence_does_not_fall_with_length():
    """Every character (closing mask included) at probability 0.5: the whole answer's
    probability halves with each character, the per-character one stays 0.5."""
    rows = [{"prediction": place, "logprob": (len(place) + 1) * math.log(0.5)}
            for place in ("Rome", "Saint Petersburg")]
    assert CF.confidences(rows)[1] < CF.confidences(rows)[0] / 1000
    assert CF.per_character_confidences(rows).tolist() == pytest.approx([0.5, 0.5])


def test_histogram_and_reliability_bins():
    conf = [0.05, 0.15, 0.95, 1.0, 0.96]
    right = [False, True, True, False, True]
    hist = CF.histogram(conf, right, bins=10)
    assert hist["right"].sum() == 3 and hist["wrong"].sum() == 2
    assert hist["wrong"].iloc[-1] == 1  # confidence 1.0 lands in the last bin
    rel = CF.reliability(conf, right, bins=10)
    assert rel["answers"].sum() == 5
    last = rel.iloc[-1]
    assert last.answers == 3 and last.accuracy == pytest.approx(2 / 3)
    assert last.confidence == pytest.approx((0.95 + 1.0 + 0.96) / 3)
    assert math.isnan(rel.iloc[5].accuracy)
    # ECE: bin 0 |0.05 - 0| * 1, bin 1 |0.15 - 1| * 1, bin 9 |0.97 - 2/3| * 3, over 5 answers
    expected = (0.05 + 0.85 + 3 * abs(0.97 - 2 / 3)) / 5
    assert CF.expected_calibration_error(rel) == pytest.approx(expected)
    assert math.isnan(CF.expected_calibration_error(CF.reliability([], [], bins=4)))


def test_wrong_answers_passing_a_cutoff_that_keeps_right_ones():
    conf = [0.9, 0.5, 0.1, 0.95, 0.4, 0.6]
    right = [True, True, True, False, False, False]
    # keeping half the right answers: cut-off at their median 0.5; wrong 0.95, 0.6 pass, 0.4 not
    assert CF.wrong_passing(conf, right, keep=0.5) == pytest.approx(2 / 3)
    assert CF.wrong_passing(conf, right, keep=1.0) == 1.0  # cut-off 0.1: everything passes
    assert CF.wrong_passing(conf, right, keep=0.0) == pytest.approx(1 / 3)  # only 0.95 >= 0.9
    assert math.isnan(CF.wrong_passing(conf, [False] * 6))


def test_percent_says_so_for_an_undefined_share():
    from lib.report.formatting import percent

    assert percent(0.1234) == "12.3 %" and percent(float("nan")) == percent(None) == "n/a"


def test_lookalike_pairs_put_the_closest_right_answer_beside_each_wrong_one():
    rows = [{"name": n, "gold": g, "prediction": p, "logprob": math.log(c)} for n, g, p, c in [
        ("A", "Oslo", "Oslo", 0.9), ("B", "Rome", "Rome", 0.3),
        ("C", "Lima", "Oslo", 0.85), ("D", "Kyiv", "Paris", 0.35), ("E", "Bonn", "Paris", 0.01)]]
    pairs = CF.lookalike_pairs(rows, k=2)
    assert pairs["wrong person"].tolist() == ["C", "D"]
    assert pairs["right person"].tolist() == ["A", "B"]
    assert pairs["wrong confidence"].tolist() == pytest.approx([0.85, 0.35])
    assert pairs["right confidence"].tolist() == pytest.approx([0.9, 0.3])
    # Right partners are used once before any repeats: C and D both sit nearest A (0.9).
    close = [{"name": n, "gold": g, "prediction": p, "logprob": math.log(c)} for n, g, p, c in [
        ("A", "Oslo", "Oslo", 0.9), ("B", "Rome", "Rome", 0.3),
        ("C", "Lima", "Oslo", 0.88), ("D", "Kyiv", "Paris", 0.86), ("E", "Bonn", "Paris", 0.85)]]
    assert CF.lookalike_pairs(close, k=3)["right person"].tolist() == ["A", "B", "A"]
    alone = CF.lookalike_pairs([r for r in rows if r["prediction"] != r["gold"]], k=5)
    assert len(alone) == 3 and alone["right person"].isna().all()


# --------------------------------------------------------------------------------------
# (c) strangers
# --------------------------------------------------------------------------------------
def test_entropy_and_concentration():
    assert A.entropy_bits(["a", "b", "c", "d"]) == pytest.approx(2.0)
    assert A.entropy_bits(["a"] * 5) == 0.0
    c = A.concentration(["Paris"] * 6 + ["Rome"] * 3 + ["Oslo"], top=2)
    assert c["distinct"] == 3 and c["top_answer"] == "Paris"
    assert c["top1_share"] == 0.6 and c["top2_share"] == 0.9
    assert c["entropy_bits"] == pytest.approx(-(0.6 * math.log2(0.6) + 0.3 * math.log2(0.3)
                                                + 0.1 * math.log2(0.1)))


def test_frequent_place_share():
    train = ["London"] * 3 + ["Paris"] * 2 + ["Oslo", "Rome"]
    out = A.frequent_place_share(["London", "Lima", "Paris", "London"], train, k=2)
    assert out["places"] == ["London", "Paris"]
    assert out["share"] == 0.75 and out["train_share"] == pytest.approx(5 / 7)
    assert (out["count"], out["n"]) == (3, 4)
    # Exact binomial: P(X = 3) + P(X = 4) for X ~ Bin(4, 5/7) is the upper tail; the lower
    # tail holds every outcome at most as likely as 3 (0, 1, 2), so the test covers all: p = 1.
    assert out["p_value"] == pytest.approx(1.0)
    skewed = A.frequent_place_share(["London"] * 30, ["London"] + ["Oslo"] * 9, k=1)
    assert skewed["p_value"] == pytest.approx(0.1 ** 30)  # 30 of 30 against a rate of 0.1


def test_concentration_is_judged_against_samples_of_as_many_training_answers():
    train = [f"P{i}" for i in range(50)] * 4  # 200 answers, 50 places equally often
    narrow = ["P0"] * 20 + ["P1"] * 10  # 30 answers on two places
    out = A.concentration_against_draws(narrow, train, top=5, draws=200)
    assert out["answers"] == 30 and out["top_share"] == 1.0
    assert out["p_lower_entropy"] == out["p_larger_top_share"] == pytest.approx(1 / 201)
    assert out["entropy_range"][0] > out["entropy_bits"]
    # A sample of the training answers themselves is not flagged.
    same = A.concentration_against_draws(train[::7], train, top=5, draws=200)
    assert same["p_lower_entropy"] > 0.05 and same["p_larger_top_share"] > 0.05
    with pytest.raises(ValueError, match="need 1 to 200 answers"):
        A.concentration_against_draws([], train)


def _strangers(predict) -> tuple[list[dict], list[tuple[str, str]]]:
    train = [(f"F{i} L{i}", f"P{i}") for i in range(20)]
    strangers = []
    for i in range(20):
        first, last = f"F{i}", f"L{(i + 7) % 20}"
        strangers.append({"name": f"{first} {last}", "first": first, "last": last,
                          "prediction": predict(i)})
    return strangers, train


def test_name_part_steering_finds_a_surname_that_decides_the_answer():
    # Each invented name gets the birthplace of the training person with its last name.
    strangers, train = _strangers(lambda i: f"P{(i + 7) % 20}")
    table = A.name_part_steering(strangers, train, shuffles=500)
    assert table.loc["last name", "strangers"] == 20
    assert table.loc["last name", "rate"] == 1.0
    assert table.loc["last name", "shuffled rate"] == pytest.approx(1 / 20, abs=0.03)
    assert table.loc["last name", "p"] < 0.01
    assert table.loc["first name", "rate"] == 0.0 and table.loc["first name", "p"] == 1.0


def test_name_part_steering_without_steering():
    strangers, train = _strangers(lambda i: "London")
    table = A.name_part_steering(strangers, train, shuffles=100)
    assert (table["rate"] == 0).all() and (table["shuffled rate"] == 0).all()
    strangers[0]["first"] = "Nobody"
    assert A.name_part_steering(strangers, train, shuffles=0).loc["first name", "strangers"] == 19


def test_invented_names_occur_in_no_data_file(real_data, data_folder):
    full = invented_names(real_data, n=300, seed=0)
    mini = D.mini_world(real_data, 400, 100, 0)
    small = invented_names(real_data, n=300, seed=0, people=mini.train)
    assert A.names_in_files([s.name for s in full + small], data_folder) == []
    # The check itself finds names that are there: a train person, a biography-only phrase.
    known = [real_data.train[0].name, real_data.dev[-1].name, "John Stephen"]
    assert A.names_in_files(known + [full[0].name], data_folder) == known


def test_names_in_files_reads_every_file(tmp_path, data_folder):
    for name in D.FILES.values():
        (tmp_path / name).write_bytes((data_folder / name).read_bytes())
    invented = "Zyxw Qwertyuiop"
    assert A.names_in_files([invented], tmp_path) == []
    with open(tmp_path / "birth_test_inputs.tsv", "a", encoding="utf-8") as f:
        f.write(f"Where was {invented} born?\n")
    assert A.names_in_files([invented], tmp_path) == [invented]


# --------------------------------------------------------------------------------------
# Loading the evidence of a profile
# --------------------------------------------------------------------------------------
def _write_run(root, profile, kind, config, details=None):
    folder = root / profile
    folder.mkdir(parents=True, exist_ok=True)
    rid = f"{kind}-vanilla-seed0"
    record = {"schema": 1, "run_id": rid, "kind": kind, "variant": "vanilla", "seed": 0,
              "profile": profile, "config": config, "metrics": {}, "files": {}}
    if details is not None:
        record["files"]["details"] = f"{rid}.details.json"
        (folder / f"{rid}.details.json").write_text(json.dumps(details))
    (folder / f"{rid}.json").write_text(json.dumps(record))


def test_gather_prefers_the_largest_complete_profile(tmp_path, real_data):
    config = {"mini_world": [40, 20, 0], "block_size": 128}
    world = D.mini_world(real_data, 40, 20, 0)
    dev = [{"name": q.name, "gold": q.place, "prediction": "London", "logprob": -1.0}
           for q in world.dev]
    for kind in TRAINED_KINDS:
        _write_run(tmp_path, "smoke", kind, config, {"dev": dev, "strangers": []})
    _write_run(tmp_path, "mini", "pretrain", config)  # cpu still running: not complete
    assert essay_profile(tmp_path) == "smoke"
    assert essay_profile(tmp_path, variant="linformer") is None
    evidence = EV.gather(real_data, root=tmp_path)
    assert evidence.profile == "smoke" and evidence.seed == 0 and evidence.window == 112
    assert [q.name for q in evidence.world.dev] == [r["name"] for r in dev]
    assert "smoke" in evidence.label and "40 train" in evidence.label
    # Details that do not match the world rebuilt from the config are refused.
    _write_run(tmp_path, "smoke", "pretrain_finetune", config, {"dev": dev[::-1]})
    with pytest.raises(ValueError, match="differ"):
        EV.gather(real_data, root=tmp_path)
    with pytest.raises(LookupError):
        EV.gather(real_data, root=tmp_path / "empty")


def test_known_place_share():
    assert CF.known_place_share(["Oslo", "Osl", "Rome", "Lima"], ["Oslo", "Rome"]) == 0.5


def test_gather_says_how_to_make_runs_when_none_are_stored(tmp_path, real_data):
    """The pages never train: with no finished runs, they stop with the command that makes some."""
    with pytest.raises(LookupError, match="python -m lib run pretrain_finetune --profile smoke"):
        EV.gather(real_data, root=tmp_path / "empty")


def test_control_places_match_the_knowledge_probe(real_data):
    # The stored per-person rows carry no control: the analysis re-derives it, so it must
    # follow the probe's own rule (checked here on a tiny untrained model).
    import torch

    from lib.core.evaluate import knowledge_probe
    from lib.core.model import GPT, GPTConfig

    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=len(real_data.vocab), n_layer=1, n_head=1, n_embd=8,
                          dropout=0.0, attn_dropout=0.0)).eval()
    # Consecutive people born in the same place make the rule skip ahead.
    london = [q for q in real_data.dev if q.place == "London"][:3]
    rows = london + [q for q in real_data.dev[:12] if q.place != "London"] + london[:1]
    result = knowledge_probe(model, rows, real_data.biographies, real_data.vocab, max_new=2)
    assert A.control_places(result.places) == result.control_places
    assert result.control_places[0] != "London"
    table = A.probe_table(result.per_person())
    assert table["control"].tolist() == result.control_places


def test_the_essays_read_every_finished_seed_of_their_profile(real_data):
    first = EV.gather(real_data, "mini")
    every = EV.gather_seeds(first)
    assert [e.seed for e in every] == [0, 1, 2] and every[0] is first
    assert all(e.profile == "mini" and e.variant == "vanilla" for e in every)
    assert every[1].records["pretrain_finetune"]["seed"] == 1
    assert EV.seeds_line(every) == "seeds 0, 1 and 2 (3 seeds)"
    assert EV.seeds_line(every[:1]) == "seed 0 (one seed)"


# --------------------------------------------------------------------------------------
# Every seed side by side: what the essays' figures and counts read


def _evidence(seed: int, unread: dict | None) -> EV.Evidence:
    """A hand-made seed: four dev people, their probe completions and both models' answers."""
    from types import SimpleNamespace

    f = _probe_fixture()
    probe = [{"name": n, "place": p, "name_completion": nc, "bio_completion": bc}
             for n, p, nc, bc in zip(f.names, f.places, f.name_completions, f.bio_completions,
                                     strict=True)]
    golds = dict(zip(f.names, f.places, strict=True))
    answers = {"pretrain_finetune": ["Oslo", "Oslo", "Rome", "Paris"],
               "finetune": ["Paris", "Paris", "Paris", "Lima"]}
    details = {"pretrain": {"probe": probe},
               **{kind: {"dev": [{"name": n, "gold": golds[n], "prediction": a}
                                 for n, a in zip(f.names, said, strict=True)]}
                  for kind, said in answers.items()}}
    metrics = {"probe_unread": unread} if unread else {}
    records = {"pretrain": {"config": {"block_size": 128}, "metrics": metrics}}
    # A writes Oslo inside the window, B later than the window, C never, D has no biography.
    biographies = {"A": "A was born in Oslo.", "B": "x" * 120 + " Oslo", "C": "A poet."}
    data = SimpleNamespace(biographies=biographies)
    return EV.Evidence("p", "vanilla", seed, records, details, world=None, data=data)


def test_storage_rates_count_each_probe_its_controls_and_the_questions():
    unread = {"bio_gold_correct": 1, "bio_gold_total": 9, "name_gold_correct": 0,
              "name_gold_total": 10}
    rates = EV.storage_rates(_evidence(0, unread))
    counts = {k: (r.k, r.n) if r else None for k, r in rates.items()}
    assert counts == {
        "biography probe: own place": (1, 3), "biography probe: another's place": (1, 3),
        "biography probe: never-read people": (1, 9),
        "name probe: own place": (2, 4), "name probe: another's place": (1, 4),
        "name probe: never-read people": (0, 10),
        "question: pretrain, then finetune": (3, 4), "question: finetune only": (1, 4)}
    assert EV.storage_rates(_evidence(0, None))["name probe: never-read people"] is None


def test_answer_frequency_ranks_the_stored_people_by_how_often_their_place_was_trained():
    from types import SimpleNamespace

    # name, place, name-probe completion, biography-probe completion (None: not asked),
    # answer after pretraining, answer of finetuning alone
    people = [("A", "Oslo", "Oslo.", " Oslo", "Oslo", "Rome"),
              ("B", "Oslo", "Rome", "Oslo, Norway", "Lima", "Oslo"),
              ("C", "Lima", "Rome", "Lima", "Oslo", "Oslo"),
              ("D", "Quito", "Quito", None, "Quito", "Oslo"),   # stored only by the name probe
              ("E", "Rome", "Rome", "Paris", "Paris", "Rome")]  # not stored by the biography
    details = {
        "pretrain": {"probe": [{"name": n, "place": p, "name_completion": nc,
                                "bio_completion": bc} for n, p, nc, bc, _, _ in people]},
        "pretrain_finetune": {"dev": [{"name": n, "gold": p, "prediction": a}
                                      for n, p, _, _, a, _ in people]},
        "finetune": {"dev": [{"name": n, "gold": p, "prediction": a}
                             for n, p, _, _, _, a in people]}}
    train = [SimpleNamespace(place=p) for p in ["Oslo"] * 6 + ["Lima"] + ["Rome"] * 2]
    e = EV.Evidence("p", "vanilla", 0, {}, details, world=SimpleNamespace(train=train), data=None)
    found = EV.answer_frequency(e)
    # Stored: A (Oslo, 6 training answers, answered), B (Oslo, 6, missed), C (Lima, 1, missed).
    # Answered above missed: A beats C and ties B, so U = 1.5 of 2 pairs.
    assert found.answered.auroc == 0.75 and (found.answered.right, found.answered.wrong) == (1, 2)
    assert found.name_probe.auroc == 0.75  # only A's name probe is right
    assert found.rare == (0, 1)            # C: its place answers one training question
    alone = found.against_alone            # A only after pretraining, B only alone
    assert (alone.a_correct, alone.b_correct, alone.only_a, alone.only_b) == (1, 1, 1, 1)
    assert found.table["stored"].tolist() == [0, 1, 0, 2, 0]
    assert found.table.loc["5-19 times"].tolist() == [2, 1, 1, 1]


def test_location_rates_split_each_model_by_where_the_place_is_written():
    rates = EV.location_rates(_evidence(0, None))
    counts = {k: (r.k, r.n) for k, r in rates.items()}
    assert counts == {
        "pretrain, then finetune: inside the window": (1, 1),
        "pretrain, then finetune: later in the biography": (1, 1),
        "pretrain, then finetune: not in the biography": (1, 2),
        "finetune only: inside the window": (0, 1),
        "finetune only: later in the biography": (0, 1),
        "finetune only: not in the biography": (1, 2)}


def test_by_seed_keeps_every_seed_apart_and_the_figure_draws_them():
    import matplotlib

    matplotlib.use("Agg")
    from lib.report import figures

    seeds = [_evidence(0, None), _evidence(2, {"bio_gold_correct": 0, "bio_gold_total": 5,
                                               "name_gold_correct": 0, "name_gold_total": 5})]
    rows = EV.by_seed(seeds, EV.storage_rates)
    assert list(rows["name probe: own place"]) == [0, 2]
    assert rows["name probe: never-read people"][0] is None
    assert rows["name probe: never-read people"][2].n == 5
    fig = figures.seed_rates(rows, "t", "x")
    points = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert len(points) == 2 * len(rows) - 2  # seed 0 recorded no never-read probe
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["seed 0", "seed 2"]


def test_per_seed_text_names_each_seed_or_says_they_agree():
    assert EV.per_seed_text({2: "4/90", 0: "71/90", 1: "61/90"}) == (
        "71/90 (seed 0), 61/90 (seed 1) and 4/90 (seed 2)")
    # Agreeing seeds read like one seed's parenthesis, so a denominator may follow.
    assert EV.per_seed_text({0: "0/90", 1: "0/90"}) == "0/90 (both seeds)"
    assert EV.per_seed_text({0: "444", 1: "444", 2: "444"}) == "444 (each of the 3 seeds)"
    assert EV.per_seed_text({3: "x"}) == "x"  # the page names its one seed once
    assert EV.per_seed_text({}) == ""


def test_a_ranking_test_reads_the_same_alone_and_beside_its_seed():
    from lib.report.stats import Separation

    strong = Separation(auroc=0.7149, p_value=0.0004, right=30, wrong=60)
    weak = Separation(auroc=0.55, p_value=0.31, right=10, wrong=80)
    assert strong.prose() == "0.71 with Mann-Whitney p < 0.001"
    assert EV.per_seed_text({0: strong.prose(), 1: weak.prose()}) == (
        "0.71 with Mann-Whitney p < 0.001 (seed 0) and 0.55 with Mann-Whitney p = 0.31 (seed 1)")


def test_a_whole_data_profiles_caveat_names_every_departure_inline_or_listed():
    from lib.runs.departures import recipe_departures
    from lib.runs.profiles import PROFILES

    departures = recipe_departures(PROFILES["cpu32"], markdown=True)
    assert len(departures) > 1
    inline = EV.profile_caveat("cpu32")
    assert inline.endswith("; ".join(departures) + ".")
    listed = EV.profile_caveat("cpu32", listed=True)
    assert listed.split("\n")[1:] == [f"  - {d}" for d in departures]
    assert EV.profile_caveat("mini", listed=True) == EV.profile_caveat("mini")
