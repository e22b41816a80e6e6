"""Tables, findings and figures built from records (synthetic records in a scratch folder,
plus the committed smoke records)."""

from __future__ import annotations

import json
import math

import matplotlib
import pytest

from lib import report
from lib.core.atomic import atomic_write_json, atomic_write_text
from lib.report import figures
from lib.runs.records import load_records, results_root, write_record
from tests.conftest import REPO

matplotlib.use("Agg")

WORLD = "mini world: 10 train and 10 dev people (seed 0), 20 biographies, 2,000 characters"
WHOLE_WORLD = "whole data: 2000 train and 500 dev questions, 2937 biographies"  # as lib.core.data writes it


def probe(name_gold: int, name_ctrl: int, bio_gold: int = 0, bio_ctrl: int = 0, n: int = 100) -> dict:
    return {"name_gold_correct": name_gold, "name_gold_total": n, "name_control_correct": name_ctrl,
            "name_control_total": n, "bio_gold_correct": bio_gold, "bio_gold_total": n,
            "bio_control_correct": bio_ctrl, "bio_control_total": n}


def dev(correct: int, total: int = 100) -> dict:
    return {"correct": correct, "total": total, "accuracy": correct / total}


def synthetic_details(metrics: dict) -> dict:
    """Per-person rows that agree with `metrics`: person i of n is answered right when
    i < correct, and a probe finds person i's own place when i < hits and the control's
    place (the next person's) for the next `control` people. So two runs' discordant pairs
    are the difference of their counts, which makes the paired tests' outcomes plain."""
    place = "P{:04d}".format
    out = {}
    if "dev" in metrics:
        k, n = metrics["dev"]["correct"], metrics["dev"]["total"]
        out["dev"] = [{"name": f"person {i}", "gold": place(i),
                       "prediction": place(i) if i < k else "elsewhere"} for i in range(n)]
    if "probe" in metrics:
        m = metrics["probe"]
        n = m["name_gold_total"]

        def completion(i: int, own: int, control: int) -> str:
            return place(i) if i < own else place((i + 1) % n) if i < own + control else "nowhere"

        out["probe"] = [{"name": f"person {i}", "place": place(i),
                         "name_completion": completion(i, m["name_gold_correct"],
                                                       m["name_control_correct"]),
                         "bio_completion": completion(i, m["bio_gold_correct"],
                                                      m["bio_control_correct"])}
                        for i in range(n)]
    return out


def add(profile: str, kind: str, seed: int, metrics: dict, variant: str = "vanilla",
        whole_data: bool = False) -> dict:
    rid = "london" if kind == "london" else f"{kind}-{variant}-seed{seed}"
    log = [{"step": s, "epoch": 1, "tokens": 1000 * s, "loss": 3.0 / s, "lr": 1e-3, "time": s}
           for s in range(1, 4)]
    atomic_write_text(results_root() / profile / f"{rid}.metrics.jsonl",
                      "".join(json.dumps(row) + "\n" for row in log))
    record = {"run_id": rid, "kind": kind, "profile": profile, "seed": seed,
              "world": WHOLE_WORLD if whole_data else WORLD,
              "variant": "none" if kind == "london" else variant, "metrics": metrics,
              "device_name": "cpu", "created": "2025-01-01T00:00:00+00:00",
              "config": {"mini_world": None if whole_data else [10, 10, 0]},
              "files": {"metrics_log": f"{rid}.metrics.jsonl", "details": f"{rid}.details.json"}}
    write_record(record)
    details = synthetic_details(metrics)
    if details:
        atomic_write_json(results_root() / profile / record["files"]["details"], details)
    return record


def stored_but_not_extracted(profile: str = "mini") -> None:
    add(profile, "london", 0, {"dev": dev(5)})
    for seed, (hits, pf, ft) in enumerate([(60, 4, 2), (64, 6, 1), (62, 5, 3)]):
        add(profile, "pretrain", seed, {"probe": probe(hits, 3, hits // 2, 2)})
        add(profile, "pretrain_finetune", seed, {"dev": dev(pf)})
        add(profile, "finetune", seed, {"dev": dev(ft)})


def test_mean_and_sample_standard_deviation():
    mean, std = report.mean_std([0.1, 0.2, 0.3])
    assert math.isclose(mean, 0.2) and math.isclose(std, 0.1)
    assert report.mean_std([0.25]) == (0.25, None)
    assert report.format_stat([0.1, 0.2, 0.3]) == "20.0 ± 10.0 %"
    assert report.format_stat([0.05]) == "5.0 %"
    # No spread from fewer than three seeds: they are listed one by one.
    assert report.format_stat([0.1, 0.2]) == "10.0 % / 20.0 %"
    assert report.format_mean_std([0.1, 0.2]) == "10.0 %, 20.0 % (2 seeds, one by one)"
    assert report.format_mean_std([0.05]) == "5.0 % (1 seed)"
    assert report.format_mean_std([0.1, 0.2, 0.3]) == "20.0 ± 10.0 % (3 seeds)"


def test_results_table_has_every_configuration_with_profile_and_published_figures(scratch):
    stored_but_not_extracted()
    table = report.results_table("mini")
    rows = {r["configuration"]: r for r in table.to_dict("records")}
    pf = rows["pretrain, then finetune: dev accuracy"]
    assert pf["seeds"] == "0, 1, 2" and "profile" not in pf  # the caption names the profile
    assert pf["measured"] == "5.0 ± 1.0 %"
    assert pf["published, report"] == "21.6 %"
    assert pf["published, write-up"] == "24 %"
    assert pf["published, handout"] == "at least 10 %"
    scratch_row = rows["finetune only (no pretraining): dev accuracy"]
    assert scratch_row["measured"] == "2.0 ± 1.0 %"
    assert scratch_row["published, report"] == "0.6 %"
    assert rows["London baseline (always answer London): dev accuracy"]["measured"] == "5.0 %"
    name_probe = [r for c, r in rows.items() if c.startswith("knowledge probe: NAME")][0]
    assert name_probe["measured"] == "62.0 ± 2.0 % (control 3.0 ± 0.0 %)"


def test_research_variants_get_their_own_rows_without_published_figures(scratch):
    stored_but_not_extracted()
    add("mini", "pretrain_finetune", 0, {"dev": dev(7)}, variant="synthesizer")
    rows = report.results_table("mini").to_dict("records")
    synth = [r for r in rows if "[synthesizer attention]" in r["configuration"]]
    assert len(synth) == 1 and synth[0]["published, report"] == ""
    assert rows[-1] is synth[0]  # vanilla's rows first, in reading order, then each variant's
    assert [r["configuration"].split(":")[0] for r in rows[:3]] == [
        "London baseline (always answer London)", "finetune only (no pretraining)",
        "pretrain, then finetune"]


def test_variant_table_lists_every_variant_and_marks_missing_ones_pending(scratch):
    stored_but_not_extracted()
    add("mini", "pretrain", 0, {"probe": probe(30, 2, 40, 1), "final_loss": 0.9}, variant="bigbird")
    add("mini", "pretrain_finetune", 0, {"dev": dev(4)}, variant="bigbird")
    table = report.variant_table("mini")
    assert list(table.index) == ["vanilla", "bigbird", "linformer", "rope", "synthesizer"]
    assert table.loc["vanilla", "seeds"] == "0, 1, 2"
    assert table.loc["vanilla", "dev accuracy"] == "5.0 ± 1.0 %"
    assert table.loc["vanilla", "name probe, per seed (control)"] == "60, 64, 62 of 100 (3, 3, 3 of 100)"
    assert table.loc["bigbird", "biography probe, per seed (control)"] == "40 of 100 (1 of 100)"
    assert table.loc["bigbird", "final pretraining loss"] == "0.900"
    assert (table.loc["synthesizer"] == "pending").all() and (table.loc["rope"] == "pending").all()
    assert report.variant_profiles() == ["mini"]


def test_variant_findings_compare_seed_by_seed_on_the_same_people(scratch):
    stored_but_not_extracted()  # vanilla seeds 0-2: name probe 60, 64, 62 of 100
    add("mini", "pretrain", 0, {"probe": probe(20, 2, 31, 1)}, variant="synthesizer")
    add("mini", "pretrain_finetune", 0, {"dev": dev(3)}, variant="synthesizer")
    add("mini", "pretrain", 0, {"probe": probe(58, 2, 30, 1)}, variant="linformer")
    add("mini", "pretrain_finetune", 0, {"dev": dev(5)}, variant="linformer")
    found = report.variant_findings("mini")
    assert set(found) == {"synthesizer", "linformer", "spread"}  # bigbird: no record, no sentence
    assert found["spread"].startswith("Seed to seed, vanilla's name probe found 60, 64, 62 of 100")
    assert "about what counting noise alone gives" in found["spread"]
    assert "seed 0:" in found["synthesizer"] and "seed 1" not in found["synthesizer"]
    # People 20-59 are found by vanilla's probe only: 0 vs 40 discordant pairs.
    assert ("name probe 20/100 = 20.0 %, below vanilla's 60/100 = 60.0 % (0 vs 40 people, "
            "McNemar p < 0.001)") in found["synthesizer"]
    assert ("biography probe 31/100 = 31.0 %, not separated from vanilla's 30/100 = 30.0 % "
            "(1 vs 0 people, McNemar p = 1.00)") in found["synthesizer"]
    assert "name probe 58/100 = 58.0 %, not separated from" in found["linformer"]
    assert "cannot rank the two" in found["linformer"]


def test_variant_rates_are_shown_seed_by_seed_never_pooled(scratch):
    stored_but_not_extracted()  # vanilla seeds 0-2: name probe 60, 64, 62; dev 4, 6, 5
    add("mini", "pretrain", 0, {"probe": probe(20, 2, 31, 1)}, variant="synthesizer")
    add("mini", "pretrain_finetune", 0, {"dev": dev(3)}, variant="synthesizer")
    table = report.variant_table("mini")
    assert table.loc["synthesizer", "biography probe, per seed (control)"] == "31 of 100 (1 of 100)"
    assert table.loc["bigbird", "name probe, per seed (control)"] == "pending"
    rows = report.variant_seed_rates("mini")
    assert list(rows) == ["dev accuracy: vanilla", "dev accuracy: synthesizer",
                          "biography probe: vanilla", "biography probe: synthesizer",
                          "name probe: vanilla", "name probe: synthesizer"]  # no linformer, bigbird
    assert {s: (r.k, r.n) for s, r in rows["name probe: vanilla"].items()} == {
        0: (60, 100), 1: (64, 100), 2: (62, 100)}
    assert {s: r.k for s, r in rows["dev accuracy: vanilla"].items()} == {0: 4, 1: 6, 2: 5}
    fig = figures.seed_rates(rows, "mini", "x", line=(0.05, "London baseline"),
                             line_over="dev accuracy")
    points = [line for line in fig.axes[0].lines if line.get_marker() == "o"]
    assert len(points) == 3 * 3 + 3  # vanilla's three seeds per measure, the synthesizer's one
    assert "London baseline" in [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    (baseline,) = [line for line in fig.axes[0].lines if line.get_label() == "London baseline"]
    assert list(baseline.get_xdata()) == [5.0, 5.0]
    assert list(baseline.get_ydata()) == [-0.5, 1.5]  # the two dev-accuracy rows, not the probes'
    add("mini", "pretrain", 1, {"probe": probe(20, 2, 25, 0, n=90)}, variant="synthesizer")
    assert report.variant_table("mini").loc["synthesizer", "biography probe, per seed (control)"] == (
        "31/100, 25/90 (1/100, 0/90)")  # totals named per seed where they differ


def test_variant_findings_rank_dev_accuracy_once_it_beats_london(scratch):
    assert report.london_counts(load_records("full")) is None
    add("full", "london", 0, {"dev": dev(25, 500)})
    assert report.london_counts(load_records("full")) == (25, 500)
    add("full", "pretrain", 0, {"probe": probe(200, 20, n=500)})
    add("full", "pretrain_finetune", 0, {"dev": dev(110, 500)})
    add("full", "pretrain", 0, {"probe": probe(150, 20, n=500)}, variant="synthesizer")
    add("full", "pretrain_finetune", 0, {"dev": dev(40, 500)}, variant="synthesizer")
    found = report.variant_findings("full")
    assert "dev accuracy 40/500 = 8.0 %, below vanilla's 110/500 = 22.0 %" in found["synthesizer"]


def test_findings_say_stored_but_not_extracted_and_full_pending(scratch):
    stored_but_not_extracted()
    found = report.findings("mini")
    assert "has stored birthplaces" in found["probe"] and "in 3 of 3 seeds" in found["probe"]
    assert ("seed 1: the name probe completes the own birthplace of 64/100 = 64.0 % "
            "(95 % CI 53.8-73.4 %) people and the control's place of 3, above the control "
            "(64 vs 3 people, McNemar p < 0.001)") in found["probe"]
    # Not separated is not "cannot": the sentence says what the numbers do not show.
    assert "do not show question finetuning extracting them" in found["summary"]
    assert "seed 2: 3/100 = 3.0 %" in found["finetune"]
    assert "not separated from London (0 vs 2 people, McNemar p = 0.50)" in found["finetune"]
    assert found["finetune"].endswith("Above the London baseline in 0 of 3 seeds.")
    assert "mini-world numbers" in found["pending"]


def _snapshot_runs(seed: int, answered: list[int], bio: list[int] | None = None) -> tuple[dict, dict]:
    """A pretrain + finetune record whose snapshots answered `answered` of 500 dev questions,
    and its pretraining record whose snapshots' biography probe found `bio` of 462."""
    steps = [100 * (i + 1) for i in range(len(answered))]
    pf = {"seed": seed, "pretrain_run": f"pretrain-vanilla-seed{seed}",
          "metrics": {"snapshots": [{"epoch": 10 * (i + 1), "step": step,
                                     "dev": {"correct": c, "total": 500}}
                                    for i, (step, c) in enumerate(zip(steps, answered, strict=True))]}}
    pre = {"run_id": f"pretrain-vanilla-seed{seed}",
           "metrics": {"snapshots": [{"step": step, "probe": {"bio_gold_correct": b, "bio_gold_total": 462}}
                                     for step, b in zip(steps, bio, strict=True)] if bio else []}}
    return pf, pre


def test_snapshot_growth_says_whether_the_answers_were_still_rising():
    # cpu32-classic seed 0's counts: 76/500 (12.3-18.7 %) then 118/500 (19.9-27.6 %), apart.
    pf, pre = _snapshot_runs(0, [15, 27, 76, 118], [48, 82, 312, 443])
    text = report.snapshot_growth([pf], {pre["run_id"]: pre})
    assert text == ("Dev questions answered after finetuning each pretraining snapshot, seed 0: "
                    "15, 27, 76 and 118 of 500 after 10, 20, 30 and 40 epochs (the biography "
                    "probe at the same snapshots: 48, 82, 312 and 443 of 462). The last interval "
                    "changed the count by +42 in seed 0 (epochs 30 to 40); in seed 0 the last "
                    "snapshot's exact 95 % interval lies wholly above the one before, so when "
                    "pretraining stopped the answers were still rising, and the runs do not show "
                    "that its length was enough; whether longer pretraining would add more is "
                    "not measured here.")
    # A seed whose last two intervals overlap withholds the claim; a missing pretraining
    # record drops the probe counts, not the sentence.
    flat, _ = _snapshot_runs(1, [10, 30, 31])
    text = report.snapshot_growth([pf, flat], {})
    assert "seed 1: 10, 30 and 31 of 500" in text and "biography probe" not in text
    assert "+42 in seed 0 (epochs 30 to 40) and +1 in seed 1 (epochs 20 to 30)" in text
    assert text.endswith("in 1 of 2 seeds the last snapshot's exact 95 % interval lies wholly "
                         "above the one before (still rising); in the other these snapshots "
                         "show no clear rise at the end.")
    # Gains of 38 then 0 of 500: the biggest gain came before the end, and nothing says rising.
    assert report.snapshot_growth([flat], {}).endswith(
        "in seed 1 the last snapshot's exact 95 % interval does not lie wholly above the one "
        "before, so these snapshots show no clear rise at the end of pretraining.")
    # Touching intervals are not apart: 20/500 reaches 6.1 %, 38/500 starts at 5.4 %.
    close, _ = _snapshot_runs(2, [2, 8, 20, 38])
    assert "in no seed does" in report.snapshot_growth([flat, close], {})
    single, _ = _snapshot_runs(2, [5])
    assert report.snapshot_growth([single], {}) is None


def test_findings_for_a_full_run_that_extracts(scratch):
    add("full", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed in range(3):
        add("full", "pretrain", seed, {"probe": probe(200, 20, n=500)}, whole_data=True)
        add("full", "pretrain_finetune", seed, {"dev": dev(110, 500)}, whole_data=True)
        add("full", "finetune", seed, {"dev": dev(8, 500)}, whole_data=True)
    found = report.findings("full")
    assert "above London (85 vs 0 people" in found["pretrain_finetune"]
    assert "above finetuning alone (same seed) (102 vs 0 people" in found["pretrain_finetune"]
    assert found["pretrain_finetune"].endswith("in 3 of 3 seeds.")
    assert "extracts them" in found["summary"] and "pending" not in found


def test_findings_claim_nothing_across_seeds_that_one_seed_contradicts(scratch):
    add("full", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed, hits in enumerate((110, 9)):  # seed 1: 9 against finetuning alone's 8
        add("full", "pretrain", seed, {"probe": probe(200, 20, n=500)}, whole_data=True)
        add("full", "pretrain_finetune", seed, {"dev": dev(hits, 500)}, whole_data=True)
        add("full", "finetune", seed, {"dev": dev(8, 500)}, whole_data=True)
    found = report.findings("full")
    assert found["pretrain_finetune"].endswith("in 1 of 2 seeds.")
    assert "helps the answers" not in found["summary"]
    assert "extracts them" not in found["summary"]
    assert "do not show question finetuning extracting them in every seed" in found["summary"]


def test_findings_say_pretraining_helps_when_it_beats_finetuning_alone_but_not_london(scratch):
    # The shape of a whole-data run that stores facts yet answers about as often as London:
    # above finetuning alone in every seed, above London in one seed of two.
    add("full", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed, hits in enumerate((110, 30)):
        add("full", "pretrain", seed, {"probe": probe(200, 20, n=500)}, whole_data=True)
        add("full", "pretrain_finetune", seed, {"dev": dev(hits, 500)}, whole_data=True)
        add("full", "finetune", seed, {"dev": dev(8, 500)}, whole_data=True)
    found = report.findings("full")
    assert "not separated from London (5 vs 0 people, McNemar p = 0.062)" in found["pretrain_finetune"]
    summary = found["summary"]
    assert "helps the answers: pretrain + finetune is above finetuning alone in 2 of 2 seeds" in summary
    assert "above the London baseline in 1 of 2 seeds" in summary
    assert "extracts them" not in summary and summary.endswith("they do not show that it cannot either.")


def test_findings_do_not_say_pretraining_helps_without_a_london_record(scratch):
    add("full", "pretrain", 0, {"probe": probe(200, 20, n=500)}, whole_data=True)
    add("full", "pretrain_finetune", 0, {"dev": dev(30, 500)}, whole_data=True)
    add("full", "finetune", 0, {"dev": dev(8, 500)}, whole_data=True)
    found = report.findings("full")
    assert "helps the answers" not in found["summary"]
    assert "do not show question finetuning extracting them in every seed" in found["summary"]


def test_findings_do_not_claim_what_the_numbers_cannot_separate(scratch):
    add("smoke", "london", 0, {"dev": dev(0, 20)})
    add("smoke", "pretrain", 0, {"probe": probe(1, 1, n=20)})
    add("smoke", "pretrain_finetune", 0, {"dev": dev(1, 20)})
    add("smoke", "finetune", 0, {"dev": dev(0, 20)})
    found = report.findings("smoke")
    assert "do not show stored facts" in found["probe"]
    assert "not separated from London (1 vs 0 people, McNemar p = 1.00)" in found["pretrain_finetune"]
    assert found["pretrain_finetune"].endswith("in 0 of 1 seed.")
    assert "summary" not in found


def test_chapter_profile_prefers_full_then_cpu_then_smoke(scratch):
    assert report.chapter_profile() is None
    stored_but_not_extracted("smoke")
    assert report.chapter_profile() == "smoke"
    for kind in ("london", "pretrain", "pretrain_finetune"):
        add("mini", kind, 0, {"dev": dev(5)} if kind != "pretrain" else {"probe": probe(1, 0)})
    assert report.chapter_profile() == "smoke"  # cpu's matrix is still running: no finetune yet
    add("mini", "finetune", 0, {"dev": dev(2)})
    assert report.chapter_profile() == "smoke"  # seeds 1 and 2 of cpu have not run
    for seed in (1, 2):
        for kind in ("pretrain", "pretrain_finetune", "finetune"):
            add("mini", kind, seed, {"dev": dev(2)} if kind != "pretrain" else {"probe": probe(1, 0)})
    assert report.chapter_profile() == "mini"
    # A GPU run that stopped part-way: every kind is there, but not for every seed.
    add("full", "london", 0, {"dev": dev(5)})
    for kind in ("pretrain", "pretrain_finetune", "finetune"):
        add("full", kind, 0, {"dev": dev(20)} if kind != "pretrain" else {"probe": probe(50, 0)})
    add("full", "pretrain_finetune", 0, {"dev": dev(10)}, variant="synthesizer")
    assert report.chapter_profile() == "mini" and report.variant_profiles() == []
    # The essays follow the chapters: a whole-data profile without finetuning alone for
    # seeds 1 and 2 does not answer 2(c), so it does not displace a world that does.
    assert report.essay_profile() == "mini"
    assert report.essay_profile(variant="synthesizer") is None
    stored_but_not_extracted("full")
    assert report.chapter_profile() == "full" and report.variant_profiles() == ["full"]
    # The variants chapter keeps the mini world's comparisons beside the whole data's.
    add("mini", "pretrain_finetune", 0, {"dev": dev(3)}, variant="bigbird")
    assert report.variant_profiles() == ["full", "mini"]
    assert report.essay_profile() == "full"


def test_captions_name_profile_and_world(scratch):
    add("mini", "london", 0, {"dev": dev(5)})
    assert report.caption("mini").startswith(f"profile mini, {WORLD}")
    assert "mini world, not the classic setting" in report.caption("mini")
    assert report.short_caption("mini") == "mini profile, mini world: 10 train and 10 dev people (seed 0)"


def test_run_links_link_stored_notebooks_and_flag_missing_ones(scratch):
    add("mini", "london", 0, {"dev": dev(5)})
    add("mini", "finetune", 0, {"dev": dev(2)})
    runs = scratch / "book" / "runs"
    (runs / "mini").mkdir(parents=True)
    (runs / "mini" / "london.ipynb").write_text("{}")
    text = report.run_links(runs, scratch / "book" / "knowledge")
    assert "[london](../runs/mini/london.ipynb)" in text
    assert "finetune-vanilla-seed0 (notebook not rendered yet)" in text
    assert "dev 5/100 = 5.0 %" in text
    assert "| 2025-01-01 00:00 |" in text  # when the run finished, to the minute
    # Every profile under its own name, its table without a profile column on every row.
    add("cpu32", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    text = report.run_links(runs, scratch / "book" / "knowledge")
    assert text.index("**cpu32** (whole data, 1 run)") < text.index("**mini** (mini world, 2 runs)")
    assert "| profile |" not in text and "| run | result | training |" in text
    one = report.run_links(runs, scratch / "book" / "knowledge", profile="mini")
    assert "**mini**" not in one and "cpu32" not in one and "[london]" in one
    assert report.run_links(runs, scratch / "book" / "knowledge", profile="full") == "No runs yet."


def test_one_profiles_runs_read_only_that_profiles_files(scratch, monkeypatch):
    add("mini", "london", 0, {"dev": dev(5)})
    add("cpu32", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    (scratch / "book" / "runs" / "cpu32").mkdir(parents=True)
    (scratch / "book" / "runs" / "cpu32" / "london.ipynb").write_text("{}")
    import lib.report.run_pages as run_pages
    asked = []
    real = run_pages.load_records
    monkeypatch.setattr(run_pages, "load_records",
                        lambda profile, root=None: asked.append(profile) or real(profile, root))
    table = report.stored_runs(scratch / "book" / "runs", profile="mini")
    assert asked == ["mini"] and set(table["profile"]) == {"mini"}
    assert list(table["run"]) == ["london"]


def test_the_runs_table_says_what_each_run_found_and_how_long_it_trained(scratch):
    add("mini", "pretrain", 0, {"probe": probe(30, 1, bio_gold=90, bio_ctrl=2)})
    path = results_root() / "mini" / "pretrain-vanilla-seed0.json"
    atomic_write_json(path, {**json.loads(path.read_text()), "train_time": 41826.7})
    add("mini", "london", 0, {"dev": dev(5)})
    table = report.stored_runs(scratch / "book" / "runs").set_index("run")
    assert table.loc["pretrain-vanilla-seed0", "result"] == (
        "name probe 30/100 (control 1), biography probe 90/100 (control 2)")
    assert table.loc["pretrain-vanilla-seed0", "training"] == "11.6 h"
    assert table.loc["london", "training"] == "–"  # London trains nothing


def test_counts_take_the_noun_in_their_number():
    from lib.report.formatting import counted
    assert [counted(n, "seed") for n in (0, 1, 2)] == ["0 seeds", "1 seed", "2 seeds"]


def test_durations_read_in_the_unit_a_reader_thinks_in():
    from lib.report.formatting import duration
    assert [duration(s) for s in (12, 89.4, 95, 845, 5399, 5400, 41826)] == [
        "12 s", "89 s", "2 min", "14 min", "90 min", "1.5 h", "11.6 h"]


def test_stored_vs_answered_counts_people(scratch):
    pre = add("mini", "pretrain", 0, {"probe": probe(1, 0, n=3)})
    pf = add("mini", "pretrain_finetune", 0, {"dev": dev(1, 3)})
    # A: the name probe finds X; B: only the biography probe does; C: neither (no biography).
    atomic_write_json(results_root() / "mini" / pre["files"]["details"], {"probe": [
        {"name": "A", "place": "X", "name_completion": "X, in 1950", "bio_completion": "Y"},
        {"name": "B", "place": "X", "name_completion": "Y", "bio_completion": "X."},
        {"name": "C", "place": "X", "name_completion": "Z", "bio_completion": None}]})
    atomic_write_json(results_root() / "mini" / pf["files"]["details"], {"dev": [
        {"name": "A", "gold": "X", "prediction": "Y"}, {"name": "B", "gold": "X", "prediction": "X"},
        {"name": "C", "gold": "X", "prediction": "Z"}]})
    table = report.stored_vs_answered(pre, pf)
    assert table.loc["recovered by the probe", "question answered"] == 1  # B
    assert table.loc["recovered by the probe", "question missed"] == 1  # A
    assert table.loc["not recovered", "question missed"] == 1  # C
    assert table.loc["not recovered", "question answered"] == 0
    assert table.loc["total", "total"] == 3


def test_figures_draw_what_the_logs_hold(scratch):
    stored_but_not_extracted()
    record = json.loads((results_root() / "mini" / "finetune-vanilla-seed0.json").read_text())
    log = report.metrics_log(record)
    fig = figures.training(log, "t")
    loss_line = fig.axes[0].lines[0]
    assert list(loss_line.get_ydata()) == [row["loss"] for row in log]
    fig = figures.panels({"a": {"seed 0": log}, "b": {}}, "t", key="lr")
    assert len(fig.axes) == 2 and list(fig.axes[0].lines[0].get_ydata()) == [1.0] * 3
    assert fig.axes[0].get_ylabel() == "learning rate (× 1e-3)"  # the unit is in the label
    fig = figures.panels({"a": {"seed 0": log}, "b": {}, "c": {}}, "t")
    shown = [ax for ax in fig.axes if ax.get_visible()]  # two to a row: the fourth is hidden
    assert [ax.get_title() for ax in shown] == ["a", "b", "c"] and len(fig.axes) == 4
    assert fig.get_size_inches()[0] < 10  # legible at the page's width


@pytest.fixture
def committed(monkeypatch):
    monkeypatch.setenv("BOOK_RESULTS", str(REPO / "results"))


def test_tables_from_the_committed_smoke_records(committed):
    from lib.runs.records import load_records

    runs = {r["run_id"]: r for r in load_records("smoke")}
    london = report.prediction_rows(runs["london"])
    assert len(london) == 20 and set(london["prediction"]) == {"London"}
    sample = report.sample_predictions(report.prediction_rows(runs["finetune-vanilla-seed0"]), 2, 3)
    assert list(sample.columns) == ["name", "gold", "prediction", "correct"] and len(sample) == 3
    assert list(sample["correct"]) == ["yes" if g == p else "no"
                                       for g, p in zip(sample["gold"], sample["prediction"],
                                                       strict=True)]
    assert list(report.probe_table(runs["pretrain-vanilla-seed0"])["own birthplace"]) == ["0/20 = 0.0 %"] * 2
    snaps = report.snapshot_table(runs["pretrain_finetune-vanilla-seed0"])
    assert list(snaps["pretraining epoch"]) == [2, 3]
    places = report.predicted_places(runs["finetune-vanilla-seed0"])
    assert set(places["questions"]) == {"dev", "strangers"}
    examples = report.probe_examples(runs["pretrain-vanilla-seed0"], n=20)
    assert list(examples.columns) == ["name", "place", "name probe completion", "name probe right",
                                      "biography probe completion", "biography probe right"]
    assert set(examples["name probe right"]) <= {"yes", "no"}
    assert set(examples["biography probe right"]) <= {"yes", "no", "not asked"}
    # The pages' tables: no row numbers, shares as the book prints percentages.
    html = report.page_table(places, shares=["share"]).to_html()
    assert f">{report.percent(places['share'].iloc[0])}<" in html
    assert "row0_col0" in html and "level0_row0" not in html
    view = report.snapshot_view(runs["pretrain-vanilla-seed0"]).to_html()
    first = report.snapshot_table(runs["pretrain-vanilla-seed0"]).head(1).to_dict("records")[0]
    assert f">{first['tokens']:,}<" in view and f">{report.percent(first['bio probe, own'])}<" in view
    sources = report.answers_from_train(runs["finetune-vanilla-seed0"])
    assert list(sources["answers"]) == [20, 300]


def test_snapshot_figures_plot_each_run_and_skip_runs_without_snapshots():
    def snap(epoch: int, name_gold: int, correct: int) -> dict:
        return {"epoch": epoch, "step": 10 * epoch, "tokens": 1000 * epoch,
                "probe": probe(name_gold, 1), "dev": dev(correct)}

    runs = {"seed 0": {"metrics": {"snapshots": [snap(1, 10, 2), snap(2, 40, 5)]}},
            "seed 1": {"metrics": {}}}
    name_panel, bio_panel = figures.probe_snapshots(runs, "t").axes
    assert [name_panel.get_title(), bio_panel.get_title()] == ["name probe", "biography probe"]
    assert [line.get_label() for line in name_panel.lines] == ["seed 0: own place", "seed 0: control"]
    assert list(name_panel.lines[0].get_ydata()) == [10.0, 40.0]
    assert list(name_panel.lines[1].get_ydata()) == [1.0, 1.0]
    assert list(bio_panel.lines[0].get_ydata()) == [0.0, 0.0]
    assert name_panel.get_ylim() == (0.0, 44.0)
    accuracy = figures.accuracy_snapshots(runs, "t").axes[0]
    (points,) = accuracy.containers  # one run drawn, the run without snapshots skipped
    assert list(points.lines[0].get_ydata()) == [2.0, 5.0]
    assert accuracy.get_ylabel() == "dev accuracy (%), exact 95 % interval"
    # Each point carries its exact interval: 2/100 reaches from 0.24 % to 7.04 %.
    (bars,) = accuracy.collections
    low, high = bars.get_segments()[0][:, 1]
    assert (round(low, 2), round(high, 2)) == (0.24, 7.04)


def test_seed_spread_flags_variation_beyond_counting_noise():
    runs = [{"seed": s, "metrics": {"probe": probe(h, 0)}} for s, h in enumerate([23, 12, 28])]
    text = report.seed_spread(runs)
    assert "23, 12, 28 of 100 people (seeds 0, 1, 2)" in text
    assert "standard deviation of 8.2 people against 4.1" in text
    assert "wider than counting noise" in text
    assert report.seed_spread(runs[:1]) is None


def test_chapters_read_a_whole_data_profile_once_it_answers_the_exercise(scratch):
    stored_but_not_extracted("mini")
    # The cpu32 profile as it grows: London and the cheap finetunes first, pretraining later.
    add("cpu32", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed in (0, 1):
        add("cpu32", "finetune", seed, {"dev": dev(3, 500)}, whole_data=True)
    add("cpu32", "pretrain", 0, {"probe": probe(40, 5)}, whole_data=True)
    add("cpu32", "pretrain_finetune", 0, {"dev": dev(80, 500)}, whole_data=True)
    assert report.chapter_profile() == "mini"  # 2(c) needs every seed's finetune
    add("cpu32", "finetune", 2, {"dev": dev(3, 500)}, whole_data=True)
    assert report.answers_exercise("cpu32")
    assert report.chapter_profile() == report.essay_profile() == "cpu32"
    assert [r.id for r in report.pending_runs("cpu32")] == ["pretrain-vanilla-seed1", "pretrain_finetune-vanilla-seed1",
                                                          "pretrain-vanilla-seed2",
                                                          "pretrain_finetune-vanilla-seed2"]
    assert report.findings("cpu32")["pending"].startswith(
        "Not finished yet under this profile: pretraining and pretrain + finetune for seeds 1 and 2.")
    for seed in (1, 2):
        add("cpu32", "pretrain", seed, {"probe": probe(40, 5)}, whole_data=True)
        add("cpu32", "pretrain_finetune", seed, {"dev": dev(70, 500)}, whole_data=True)
    assert report.chapter_profile() == "cpu32" and report.pending_runs("cpu32") == []
    assert "pending" not in report.findings("cpu32")
    # The whole data trained as the classic code trains: listed first on the results page as
    # soon as it has a record, read by the chapters only once it answers the exercise.
    add("cpu32-classic", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed in (0, 1, 2):
        add("cpu32-classic", "finetune", seed, {"dev": dev(4, 500)}, whole_data=True)
    assert report.profiles_with_records()[:2] == ["cpu32-classic", "cpu32"]
    assert report.chapter_profile() == "cpu32"
    # The answers page reads one profile for 2(c), 2(d) and 2(f): the chapters'.
    assert report.answer_line("finetune").startswith("profile `cpu32-classic`")  # the first with it
    assert report.answer_line("finetune", prefer="cpu32").startswith("profile `cpu32`")
    assert report.answer_line("pretrain_finetune", prefer="cpu32-classic").startswith("profile `cpu32`")
    add("cpu32-classic", "pretrain", 0, {"probe": probe(60, 5)}, whole_data=True)
    add("cpu32-classic", "pretrain_finetune", 0, {"dev": dev(110, 500)}, whole_data=True)
    assert report.chapter_profile() == report.essay_profile() == "cpu32-classic"
    # A GPU call cut short: pretraining without its pretrain + finetune, one seed's finetune.
    add("full", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    add("full", "pretrain", 0, {"probe": probe(60, 5)}, whole_data=True)
    add("full", "finetune", 0, {"dev": dev(3, 500)}, whole_data=True)
    assert report.chapter_profile() == "cpu32-classic"
    add("full", "pretrain_finetune", 0, {"dev": dev(110, 500)}, whole_data=True)
    assert report.chapter_profile() == "cpu32-classic"  # seeds 1 and 2 of finetuning alone are missing
    for seed in (1, 2):
        add("full", "finetune", seed, {"dev": dev(3, 500)}, whole_data=True)
    assert report.chapter_profile() == "full"
    caption = report.caption("cpu32")
    assert caption.endswith("(not the classic recipe: the results page lists how it departs)")
    assert caption.count("whole data") == 1, caption  # the world says it once


def test_the_landing_page_summary_gives_every_seed_and_its_verdict(scratch):
    # Synthetic answers: each run is right for the first k people, so against London's 25 a
    # run with 4 has 0 vs 21 discordant people (below), one with 110 has 85 vs 0 (above).
    assert report.part2_summary(None) is None
    add("cpu32", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed, hits in enumerate((4, 25, 4)):
        add("cpu32", "finetune", seed, {"dev": dev(hits, 500)}, whole_data=True)
    assert report.part2_summary("cpu32") is None  # no pretrain + finetune yet
    add("cpu32", "pretrain_finetune", 0, {"dev": dev(110, 500)}, whole_data=True)
    text = report.part2_summary("cpu32")
    assert text.startswith("On the 500 dev questions of the whole data (profile `cpu32`), always "
                           "answering London scores 25/500 = 5.0 % (95 % CI 3.3-7.3 %). ")
    assert ("4/500 = 0.8 % (95 % CI 0.2-2.0 %) in seed 0, 25/500 = 5.0 % (95 % CI 3.3-7.3 %) in "
            "seed 1 and 4/500 = 0.8 % (95 % CI 0.2-2.0 %) in seed 2 (below London in 2 and not "
            "separated from London in 1 of 3 seeds)") in text
    assert "it answers 110/500 = 22.0 % (95 % CI 18.4-25.9 %) in seed 0, above London (published" in text
    add("cpu32", "pretrain_finetune", 1, {"dev": dev(110, 500)}, whole_data=True)
    assert "in seed 1, above London in both seeds (published" in report.part2_summary("cpu32")
    # A mini world is not the published setting: no published figures beside its numbers.
    stored_but_not_extracted("mini")
    mini = report.part2_summary("mini")
    assert mini.startswith("On the 100 dev questions of the mini world") and "published" not in mini


def test_a_superseded_profile_is_compared_on_the_results_page_only(scratch):
    stored_but_not_extracted("mini")
    add("cpu", "london", 0, {"dev": dev(25, 500)}, whole_data=True)
    for seed in (0, 1, 2):
        add("cpu", "pretrain", seed, {"probe": probe(1, 0, n=500)}, whole_data=True)
        add("cpu", "pretrain_finetune", seed, {"dev": dev(6, 500)}, whole_data=True)
        add("cpu", "finetune", seed, {"dev": dev(10, 500)}, whole_data=True)
    assert report.answers_exercise("cpu")
    assert report.chapter_profile() == report.essay_profile() == "mini"
    assert report.answer_line("pretrain_finetune").startswith("profile `mini`")
    assert "cpu" in report.profiles_with_records()
    assert "cpu (whole data)" in set(report.side_by_side()["profile"])


def _answers(profile: str, record: dict, right: list[bool]) -> None:
    """A details file: the same ten people for every run, right where `right` says so."""
    rows = [{"name": f"person {i}", "gold": "Paris", "prediction": "Paris" if ok else "London"}
            for i, ok in enumerate(right)]
    atomic_write_json(results_root() / profile / record["files"]["details"], {"dev": rows})


def test_side_by_side_lists_whole_data_first_seed_by_seed_with_paired_tests(scratch):
    london = add("mini", "london", 0, {"dev": dev(1, 10)})
    _answers("mini", london, [True] + [False] * 9)
    ft = add("mini", "finetune", 0, {"dev": dev(0, 10)})
    _answers("mini", ft, [False] * 10)
    cpu_london = add("cpu", "london", 0, {"dev": dev(0, 10)}, whole_data=True)
    _answers("cpu", cpu_london, [False] * 10)
    for seed, hits in ((1, 9), (0, 8)):
        run = add("cpu", "pretrain_finetune", seed, {"dev": dev(hits, 10)}, whole_data=True)
        _answers("cpu", run, [True] * hits + [False] * (10 - hits))
    add("smoke", "london", 0, {"dev": dev(1, 10)})  # smoke is left out once real runs exist

    assert report.profiles_with_records() == ["cpu", "mini"]
    rows = report.side_by_side().to_dict("records")
    assert [(r["profile"], r["configuration"], r["seed"]) for r in rows] == [
        ("cpu (whole data)", "London baseline", ""),
        ("cpu (whole data)", "pretrain, then finetune", "0"),
        ("cpu (whole data)", "pretrain, then finetune", "1"),
        ("mini (mini world)", "London baseline", ""),
        ("mini (mini world)", "finetune only", "0"),
    ]
    # 8 of 10 against 0 of 10 on the same people: 8 discordant pairs, all one way,
    # p = 2 / 2**8 = 0.0078 (McNemar's exact test).
    assert rows[1]["dev accuracy (exact 95 % CI)"] == "8/10 = 80.0 % (44.4-97.5)"
    versus = "against London: people right only here vs only there"
    assert rows[1][versus] == "above: 8 vs 0, p = 0.0078"
    assert rows[4][versus] == "not separated: 0 vs 1, p = 1.00"
    fig = figures.accuracy_by_profile(report.accuracy_points(), "test")
    assert len(fig.legends[0].get_texts()) == 3  # two profiles and the published crosses
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["London baseline", "finetune only",
                                                                     "pretrain, then finetune"]


def test_the_answer_after_pretraining_is_compared_with_london_and_finetuning_alone(scratch):
    london = add("mini", "london", 0, {"dev": dev(1, 10)})
    _answers("mini", london, [True] + [False] * 9)
    for seed, alone_hits, hits in ((0, 1, 9), (1, 0, 2)):
        ft = add("mini", "finetune", seed, {"dev": dev(alone_hits, 10)})
        _answers("mini", ft, [True] * alone_hits + [False] * (10 - alone_hits))
        run = add("mini", "pretrain_finetune", seed, {"dev": dev(hits, 10)})
        _answers("mini", run, [True] * hits + [False] * (10 - hits))
    line = report.answer_line("pretrain_finetune")
    # Seed 0: 9 of 10 against finetuning alone's 1 (the same first person): 8 vs 0 people,
    # p = 2 / 2**8; against London likewise. Seed 1: 2 against 0, p = 0.5.
    assert "seed 0: 9/10" in line
    assert ("above London (McNemar p = 0.0078) and above finetuning alone of the same seed "
            "(McNemar p = 0.0078)") in line
    assert "not separated from finetuning alone of the same seed (McNemar p = 0.50)" in line
    assert "finetuning alone" not in report.answer_line("finetune")


def test_the_vanilla_chapters_read_vanilla_runs_only_in_seed_order(scratch):
    for seed in (2, 0, 1):
        add("mini", "pretrain", seed, {"probe": probe(1, 0)})
    add("mini", "pretrain", 0, {"probe": probe(1, 0)}, variant="bigbird")  # sorts first by name
    assert [(r["variant"], r["seed"]) for r in report.vanilla_runs("mini", "pretrain")] == [
        ("vanilla", 0), ("vanilla", 1), ("vanilla", 2)]


def test_people_table_lists_every_person_with_each_runs_answer_and_probes(scratch):
    stored_but_not_extracted()  # seeds 0-2: finetune 2, 1, 3 right; pretrain, finetune 4, 6, 5
    assert report.people_profile() == "mini"
    table = report.people_table("mini")
    assert len(table) == 100 and list(table.columns[:3]) == ["person", "born in", "written"]
    assert list(table.columns[3:]) == ["finetune only", "pretrain, finetune", "name probe", "bio probe"]
    per_seed = table["pretrain, finetune"].str.split(" · ")
    assert per_seed.map(len).eq(3).all()  # one answer per seed, in seed order
    right = per_seed.str[1].str.startswith("✓ ")
    assert right.sum() == 6 and right[:6].all()  # the synthetic runs get the first k people right
    assert table["finetune only"].str.split(" · ").str[2].str.startswith("✓ ").sum() == 3
    assert (table["name probe"].str[0] == "✓").sum() == 60
    assert (table["bio probe"].str[2] == "✓").sum() == 31
    assert table["name probe"].str.len().eq(3).all()
    html = report.searchable_html(table.head(3))
    assert 'id="people-search"' in html and "<script>" in html and "Bryan" not in html
    assert "http" not in html.replace("http-equiv", "")  # nothing fetched: works offline
    assert html.count("<tr") == 4  # the header and three people


def test_records_by_seed_keeps_one_configuration_in_seed_order(tmp_path):
    from lib.runs.records import records_by_seed

    for variant, seed in (("rope", 2), ("vanilla", 1), ("rope", 0), ("rope", 1)):
        write_record({"run_id": f"pretrain-{variant}-seed{seed}", "kind": "pretrain",
                      "profile": "p", "variant": variant, "seed": seed, "metrics": {}}, tmp_path)
    write_record({"run_id": "finetune-rope-seed3", "kind": "finetune", "profile": "p",
                  "variant": "rope", "seed": 3, "metrics": {}}, tmp_path)
    found = records_by_seed("p", "pretrain", "rope", tmp_path)
    assert list(found) == [0, 1, 2]
    assert [r["run_id"] for r in found.values()] == [f"pretrain-rope-seed{s}" for s in (0, 1, 2)]
    assert records_by_seed("p", "pretrain", "linformer", tmp_path) == {}
    assert records_by_seed("absent", "pretrain", "rope", tmp_path) == {}


def test_epoch_curve_averages_each_epochs_lines_and_keeps_its_last_rate():
    from lib.report.reading import epoch_curve

    rows = [{"epoch": 1, "loss": 3.0, "lr": 1e-3}, {"epoch": 1, "loss": 2.0, "lr": 2e-3},
            {"epoch": 2, "loss": 1.5, "lr": 3e-3}, {"epoch": 3, "loss": 1.0, "lr": 4e-3}]
    assert epoch_curve(rows) == {"loss": [2.5, 1.5, 1.0], "lr": [2e-3, 3e-3, 4e-3]}
    # A log cut off part-way through its last epoch: that epoch is dropped.
    assert epoch_curve(rows, complete_only=True) == {"loss": [2.5, 1.5], "lr": [2e-3, 3e-3]}
    with pytest.raises(ValueError, match="skips epochs"):
        epoch_curve([rows[0], rows[3]])


def test_training_time_bridges_a_restarted_clock_and_is_tabled_per_cpu_pretraining(scratch):
    # Two processes: the first logged epochs 1-2 (10 s each), the second, resumed before the
    # trainer carried its clock over, started again at zero for epochs 3-4 (20 s, then 40 s).
    log = [{"epoch": 1, "time": 4.0}, {"epoch": 1, "time": 10.0}, {"epoch": 2, "time": 20.0},
           {"epoch": 3, "time": 5.0}, {"epoch": 3, "time": 20.0}, {"epoch": 4, "time": 60.0}]
    assert report.reading.log_clock(log) == [4.0, 10.0, 20.0, 25.0, 40.0, 80.0]
    assert report.reading.epoch_seconds(log) == [10.0, 10.0, 20.0, 40.0]
    record = add("cpu32", "pretrain", 0, {"probe": probe(1, 0)}, whole_data=True)
    rows = [{**row, "step": i, "tokens": i, "loss": 1.0, "lr": 1e-3} for i, row in enumerate(log)]
    atomic_write_text(results_root() / "cpu32" / record["files"]["metrics_log"],
                      "".join(json.dumps(row) + "\n" for row in rows))
    record.update(device="cpu", train_time=60.5, git_commit="abcdef0123",
                  torch_version="2.13.0+cpu",
                  config={"mini_world": None, "pretrain": {"length_grouped": False,
                                                           "shuffle": False, "cpu_bf16": False}})
    write_record(record)
    assert report.reading.trained_seconds(record) == (80.0, True)  # the record counts 60.5
    assert "80 s of training (summed over its processes" in report.provenance_line(record)
    add("cpu32", "finetune", 0, {"dev": dev(1)}, whole_data=True)  # its clock never restarts
    finetuned = {**report.vanilla_runs("cpu32", "finetune")[0], "train_time": 3.5}
    assert report.reading.trained_seconds(finetuned) == (3.5, False)
    add("mini", "pretrain", 0, {"probe": probe(1, 0)})  # a mini world: not listed
    gpu = add("full", "pretrain", 0, {"probe": probe(1, 0)}, whole_data=True)
    write_record({**gpu, "device": "cuda"})  # not a CPU: not listed
    table = report.pretraining_times()
    assert table.to_dict("records") == [{
        "run": "cpu32 vanilla seed 0", "batches, precision": "file order, float32", "epochs": 4,
        "hours": "0.0", "s/epoch, median": "15", "s/epoch, 10th pct.": "10", "commit": "abcdef0"}]
    assert report.pretraining_epoch_seconds() == {"cpu32 vanilla seed 0": [10.0, 10.0, 20.0, 40.0]}


def test_a_variant_is_compared_with_vanilla_seed_by_seed_on_one_profile(scratch):
    add("cpu32", "pretrain_finetune", 0, {"dev": dev(118, 500)}, whole_data=True)
    add("cpu32", "pretrain_finetune", 0, {"dev": dev(198, 500)}, variant="rope", whole_data=True)
    add("cpu32", "pretrain_finetune", 1, {"dev": dev(120, 500)}, variant="rope", whole_data=True)
    line = report.variant_comparison("rope", "cpu32")
    # Only seed 0 has both; the synthetic people make the 80 extra answers the discordant pairs.
    assert line.startswith("profile `cpu32` (whole data): seed 0: 198/500 = 39.6 %")
    assert "against vanilla's 118/500, above vanilla (McNemar p < 0.001)" in line
    assert "seed 1" not in line
    assert report.variant_comparison("synthesizer", "cpu32") is None
    assert report.variant_answer_line("rope") == line
