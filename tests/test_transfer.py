"""Importing finished runs from a worktree: whole runs only, never over a different record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lib.cli import main
from lib.runs.transfer import describe, import_runs


def _run(folder: Path, run_id: str, files: dict[str, str], missing: tuple[str, ...] = (),
         note: str = "") -> None:
    """A record naming `files` (kind -> file name), each written unless listed in `missing`."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in files.values():
        if name not in missing:
            (folder / name).write_text(f"{name} {note}\n")
    (folder / f"{run_id}.json").write_text(json.dumps({"run_id": run_id, "variant": "vanilla",
                                                       "note": note, "files": files}))


def _finetune_files(run_id: str) -> dict[str, str]:
    return {kind: f"{run_id}.{suffix}" for kind, suffix in
            (("details", "details.json"), ("metrics_log", "metrics.jsonl"),
             ("predictions", "predictions.txt"), ("test_predictions", "test_predictions.txt"))}


@pytest.fixture
def worktree(tmp_path) -> Path:
    src = tmp_path / "worktree" / "results" / "smoke"
    _run(src, "london", {"predictions": "london.predictions.txt"})
    _run(src, "finetune-vanilla-seed0", _finetune_files("finetune-vanilla-seed0"))
    _run(src, "finetune-vanilla-seed1", _finetune_files("finetune-vanilla-seed1"),
         missing=("finetune-vanilla-seed1.details.json",))
    _run(src, "finetune-vanilla-seed2", _finetune_files("finetune-vanilla-seed2"), note="there")
    (src / "pretrain-vanilla-seed0.metrics.jsonl").write_text("{}\n")  # still training
    return tmp_path / "worktree"


def test_only_whole_finished_runs_come_over_and_no_record_is_replaced(worktree, tmp_path):
    here = tmp_path / "repo" / "results"
    _run(here / "smoke", "finetune-vanilla-seed2", _finetune_files("finetune-vanilla-seed2"),
         note="here")
    before = {p.name: p.read_bytes() for p in (here / "smoke").iterdir()}

    done = import_runs(worktree / "results", "smoke", here)
    assert done.copied == ["finetune-vanilla-seed0", "london"]
    assert done.conflicting == ["finetune-vanilla-seed2"]
    assert done.incomplete == ["finetune-vanilla-seed1"]
    assert done.unfinished == ["pretrain-vanilla-seed0"]
    assert done.copied_variants == {"vanilla"}
    names = {p.name for p in (here / "smoke").iterdir()}
    assert {"london.json", "london.predictions.txt"} <= names
    assert {f"finetune-vanilla-seed0.{s}" for s in ("json", "details.json", "metrics.jsonl",
                                                    "predictions.txt", "test_predictions.txt")} <= names
    assert not any(n.startswith(("finetune-vanilla-seed1", "pretrain-")) for n in names)
    for name, content in before.items():  # the conflicting run is left exactly as it was
        assert (here / "smoke" / name).read_bytes() == content

    again = import_runs(worktree / "results", "smoke", here)
    assert again.copied == [] and again.already_here == ["finetune-vanilla-seed0", "london"]
    text = describe(again, "smoke")
    assert "smoke: already here (identical): finetune-vanilla-seed0, london" in text
    assert "NOT copied, a different record is already here: finetune-vanilla-seed2" in text


def test_the_command_reports_what_it_did_and_fails_when_a_run_cannot_come_over(worktree, tmp_path, monkeypatch,
                                                                 capsys):
    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path / "repo" / "results"))
    assert main(["import-runs", str(worktree), "--profile", "smoke", "--no-render"]) == 1
    out = capsys.readouterr().out
    assert "smoke: copied: finetune-vanilla-seed0, finetune-vanilla-seed2, london" in out
    assert "NOT copied, a file its record names is missing: finetune-vanilla-seed1" in out
    assert "not finished (no record yet), left where it is: pretrain-vanilla-seed0" in out
    assert main(["import-runs", str(tmp_path / "nowhere"), "--profile", "smoke"]) == 2
    assert "no results of profile 'smoke'" in capsys.readouterr().err
