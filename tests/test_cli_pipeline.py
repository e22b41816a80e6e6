"""The CLI and the run pipeline end to end on the real data at the smoke profile."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from lib import pipeline as P
from lib.evaluate import read_predictions
from lib.records import load_records
from tests.conftest import REPO


def cli(*args, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", *args], cwd=REPO, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def test_london_reports_five_percent():
    out = cli("london")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "London baseline: 25/500 = 5.0 %"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "finetune", "--profile", "tiny"], "unknown profile 'tiny'"),
        (["run", "finetune", "--variant", "performer"], "unknown attention variant 'performer'"),
        (["run", "finetune", "--seed", "-3"], "non-negative integer"),
        (["run", "finetune", "--seed", "abc"], "non-negative integer"),
        (["run", "finetune", "--device", "cuda:0" if False else "tpu"], "device"),
        (["finetune", "--writing-params-path", "x", "--reading-params-path", "missing.params"], "does not exist"),
        (["evaluate", "--reading-params-path", "pyproject.toml"], "required"),
    ],
)
def test_bad_arguments_fail_before_any_work(args, message):
    out = cli(*args)
    assert out.returncode == 2
    assert message in out.stderr


def test_missing_data_folder_message(tmp_path):
    out = cli("london", env={"BIRTHPLACE_DATA": str(tmp_path / "none")})
    assert out.returncode == 2 and "BIRTHPLACE_DATA" in out.stderr


def test_classic_workflow_pretrain_finetune_evaluate(tmp_path):
    """pretrain -> finetune -> evaluate through the CLI (smoke profile, real data)."""
    pre, fine, preds = tmp_path / "pre.params", tmp_path / "fine.params", tmp_path / "dev.predictions"
    data = os.environ["BIRTHPLACE_DATA"]
    steps = [
        ["pretrain", "--profile", "smoke", "--writing-params-path", str(pre), "--no-progress"],
        ["finetune", "--profile", "smoke", "--reading-params-path", str(pre), "--writing-params-path",
         str(fine), "--finetune-corpus-path", f"{data}/birth_places_train.tsv", "--no-progress"],
        ["evaluate", "--profile", "smoke", "--reading-params-path", str(fine), "--eval-corpus-path",
         f"{data}/birth_dev.tsv", "--outputs-path", str(preds), "--no-progress"],
    ]
    for args in steps:
        out = cli(*args)
        assert out.returncode == 0, out.stderr[-2000:]
    assert "Correct:" in out.stdout and "out of 500" in out.stdout
    assert len(preds.read_text(encoding="utf-8").split("\n")) == 501
    test_out = cli("evaluate", "--profile", "smoke", "--reading-params-path", str(fine), "--eval-corpus-path",
                   f"{data}/birth_test_inputs.tsv", "--outputs-path", str(tmp_path / "test.predictions"))
    assert test_out.returncode == 0 and "437 predictions" in test_out.stdout
    wrong = cli("evaluate", "--variant", "synthesizer", "--reading-params-path", str(fine),
                "--eval-corpus-path", f"{data}/birth_dev.tsv", "--outputs-path", str(preds))
    assert wrong.returncode == 2 and "holds a 'vanilla' model" in wrong.stderr


def test_pipeline_records_and_skipping(scratch):
    first = P.run("pretrain_finetune", "smoke", progress=False)
    records = {r["run_id"]: r for r in load_records("smoke")}
    assert set(records) == {"pretrain-vanilla-seed0", "pretrain_finetune-vanilla-seed0"}
    rec = records["pretrain_finetune-vanilla-seed0"]
    for key in ("config", "metrics", "wall_time", "device_name", "torch_version", "git_commit",
                "dataset_checksums", "created", "seed", "variant", "profile", "kind"):
        assert key in rec, key
    assert rec["metrics"]["dev"]["total"] == 20 and rec["pretrain_run"] == "pretrain-vanilla-seed0"
    assert len(rec["metrics"]["snapshots"]) == 2
    details = json.loads((scratch / "results/smoke/pretrain_finetune-vanilla-seed0.details.json").read_text())
    assert len(details["dev"]) == 20 and len(details["strangers"]) == P.STRANGERS
    # The exercise's submission: one answer per line of the unlabelled test file, in order.
    test_answers = scratch / "results/smoke" / rec["files"]["test_predictions"]
    assert len(read_predictions(test_answers)) == 437
    # A finished run is skipped: the same record comes back without training again.
    again = P.run("pretrain_finetune", "smoke", progress=False)
    assert again == first


def test_git_commit_is_dirty_for_code_changes_but_not_for_new_results(tmp_path, monkeypatch):
    import subprocess

    from lib import records

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "lib").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "lib" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "log.jsonl").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(records, "REPO_ROOT", tmp_path)
    monkeypatch.delenv("BOOK_GIT_COMMIT", raising=False)
    clean = records.git_commit()
    assert len(clean) == 40
    (tmp_path / "results" / "log.jsonl").write_text("{}\n{}\n")  # a run appending to its log
    assert records.git_commit() == clean
    (tmp_path / "lib" / "code.py").write_text("x = 2\n")
    assert records.git_commit() == clean + "+dirty"


def test_the_gpu_scripts_settings_reach_every_training_snapshot_finetunes_included(scratch, monkeypatch):
    """`BOOK_CUDA_GRAPHS=1` and `BOOK_EPOCH_CHECKPOINTS=0` (what `make gpu-run` sets on a GPU)
    reach the pretraining, the finetune and each snapshot's finetune: one step for all of
    them, and no training state written between epochs."""
    import lib.train

    real_train, seen, states = P.train, [], []
    monkeypatch.setattr(P, "train", lambda *a, **k: seen.append(k) or real_train(*a, **k))
    monkeypatch.setattr(lib.train, "_save_state", lambda *a, **k: states.append(a[0]))
    monkeypatch.setenv("BOOK_CUDA_GRAPHS", "1")
    monkeypatch.setenv("BOOK_EPOCH_CHECKPOINTS", "0")
    record = P.run("pretrain_finetune", "smoke", device="cpu", progress=False)
    snapshots = len(record["metrics"]["snapshots"])
    assert snapshots == 2 and len(seen) == 2 + snapshots  # pretrain, finetune, snapshot finetunes
    assert all(k["cuda_graphs"] is True and k["epoch_checkpoints"] is False for k in seen)
    assert states == []
