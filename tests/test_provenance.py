"""lib.report.provenance: what a page says when the runs it shows come from several commits."""

from __future__ import annotations

import json

from lib.report.provenance import commit_note, mixed_commits
from lib.runs.records import write_record


def _check(root, old: str, new: str, alike: bool, worst: float = 0.0, variant: str | None = None) -> None:
    folder = root / "benchmarks"
    folder.mkdir(exist_ok=True)
    files = {"pretrain.metrics.jsonl": {"same steps and rates": alike,
                                        "largest relative loss difference": worst},
             "pretrain.details.json": {"name probe": 1.0 if alike else 0.9}}
    record = {"files (share of answers or completions that are identical)": files}
    suffix = f"_{variant}" if variant else ""  # a record without a variant ran vanilla
    (folder / f"same_arithmetic_{old}_{new}{suffix}.json").write_text(
        json.dumps(record | ({"variant": variant} if variant else {})))


def _at(commit: str) -> dict:
    return {"git_commit": commit + "0" * 33}


def test_one_commit_is_named_and_several_are_listed_with_what_links_them(tmp_path):
    assert commit_note({"a": _at("aaaaaaa"), "b": _at("aaaaaaa")}, tmp_path) == (
        "Every run compared here was made at commit aaaaaaa.")
    runs = {"seed 0": _at("aaaaaaa"), "seed 1": _at("ccccccc")}
    unlinked = commit_note(runs, tmp_path)
    assert unlinked.startswith("The runs come from different commits: seed 0 at commit aaaaaaa; "
                               "seed 1 at commit ccccccc.")
    assert "No recorded check that the code trains alike links commit ccccccc to aaaaaaa" in unlinked
    # Linked through a third commit; a check leading elsewhere is not quoted.
    _check(tmp_path, "aaaaaaa", "bbbbbbb", True, 2e-7)
    _check(tmp_path, "ccccccc", "bbbbbbb", True, 0.0)
    _check(tmp_path, "bbbbbbb", "ddddddd", True, 1e-3)
    linked = commit_note(runs, tmp_path)
    assert "run at aaaaaaa with bbbbbbb and ccccccc with bbbbbbb logged the same steps" in linked
    assert "relative 2e-07 at most" in linked and "ddddddd" not in linked
    assert "No recorded check" not in linked
    _check(tmp_path, "aaaaaaa", "ccccccc", False)
    assert "Run at aaaaaaa and ccccccc, the same small job did not train alike" in commit_note(
        runs, tmp_path)


def test_a_check_links_runs_of_its_own_variant_only(tmp_path):
    runs = {"vanilla seed 0": {**_at("aaaaaaa"), "variant": "vanilla"},
            "synthesizer seed 0": {**_at("bbbbbbb"), "variant": "synthesizer"},
            "synthesizer seed 1": {**_at("ccccccc"), "variant": "synthesizer"}}
    _check(tmp_path, "bbbbbbb", "ccccccc", True)  # vanilla: says nothing of the synthesizer's code
    assert commit_note(runs, tmp_path).endswith(
        "No recorded check that the code trains alike links commits bbbbbbb (synthesizer seed 0) "
        "and ccccccc (synthesizer seed 1) to aaaaaaa: whether the code in between could move "
        "these numbers is not measured.")
    _check(tmp_path, "aaaaaaa", "bbbbbbb", True)
    _check(tmp_path, "bbbbbbb", "ccccccc", True, 3e-7, variant="synthesizer")
    linked = commit_note(runs, tmp_path)
    assert ("The same small job of each variant (`benchmarks/same_arithmetic.py`: a small job) "
            "run at aaaaaaa with bbbbbbb (vanilla); bbbbbbb with ccccccc (synthesizer) logged the "
            "same steps and learning rates, losses equal to a relative 3e-07 at most") in linked
    assert "the training arithmetic of each variant did not change" in linked
    assert "No recorded check" not in linked


def test_mixed_commits_names_each_configuration_whose_seeds_differ(tmp_path):
    def add(kind: str, variant: str, seed: int, commit: str) -> None:
        write_record({"run_id": f"{kind}-{variant}-seed{seed}", "kind": kind, "profile": "p",
                      "variant": variant, "seed": seed, "metrics": {}, **_at(commit)}, tmp_path)

    for kind in ("pretrain", "pretrain_finetune"):
        add(kind, "vanilla", 0, "aaaaaaa")
        add(kind, "vanilla", 1, "aaaaaaa")
        add(kind, "bigbird", 0, "aaaaaaa")
        add(kind, "bigbird", 1, "ccccccc")
    add("finetune", "vanilla", 0, "aaaaaaa")
    add("finetune", "vanilla", 1, "ccccccc")
    notes = mixed_commits("p", tmp_path)
    assert [n.split(".**")[0] for n in notes] == [
        "**bigbird, pretraining and pretrain, then finetune", "**vanilla, finetune only"]
    assert notes[0].startswith("**bigbird, pretraining and pretrain, then finetune.** Its seeds "
                               "come from different commits: seed 0 at commit aaaaaaa; seed 1 at "
                               "commit ccccccc.")
    assert mixed_commits("empty", tmp_path) == []


def test_a_check_names_the_job_it_ran_including_changes_inside_a_phase():
    from lib.report.provenance import check_job

    assert check_job({}) == "a small job"
    assert check_job({"profile": "smoke", "changes": {"dropout": 0.1}}) == \
        "the smoke profile with dropout 0.1"
    assert check_job({"profile": "smoke", "changes": {
        "dropout": 0.1, "pretrain": {"epoch_token_mean": True, "length_grouped": True}}}) == (
        "the smoke profile with dropout 0.1, pretrain.epoch_token_mean True and "
        "pretrain.length_grouped True")
