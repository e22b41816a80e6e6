"""`make gpu-run`, exercised on the CPU with the smoke profile: the same script a GPU machine
runs, leaving the same files and numbers as the papermill path, rendered afterwards into
stored notebooks without training anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from lib import experiments as E
from tests.conftest import REPO
from tests.smoke_expected import EXPECTED, mismatches

pytestmark = pytest.mark.slow
NOT_RECORDS = {"gpu_run.json", "logs"}  # gpu-run's own summary and per-job logs


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory):
    """`make gpu-run GPU_PROFILE=smoke` into a scratch folder; (root, completed process, seconds)."""
    root = tmp_path_factory.mktemp("gpu-run")
    env = {**os.environ, "BOOK_RESULTS": str(root / "results"),
           "BOOK_CHECKPOINTS": str(root / "checkpoints")}
    started = time.time()
    proc = subprocess.run(["make", "--no-print-directory", "gpu-run", "GPU_PROFILE=smoke",
                           "GPU_ARGS=--variants vanilla"], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=900)
    return root, proc, time.time() - started


def test_make_gpu_run_finishes(gpu_run):
    root, proc, seconds = gpu_run
    print(f"make gpu-run GPU_PROFILE=smoke: {seconds:.0f} s")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "-m lib.gpu_run --profile smoke --variants vanilla" in proc.stdout
    summary = json.loads((root / "results" / "smoke" / "gpu_run.json").read_text())
    assert summary["profile"] == "smoke" and summary["device_name"] == "cpu"
    assert [r["returncode"] for r in summary["runs"]] == [0, 0]


def test_numbers_match_the_papermill_path(gpu_run):
    root, _, _ = gpu_run
    assert mismatches(root / "results") == []


def test_files_and_records_match_the_papermill_path(gpu_run, smoke_matrix):
    """Same machine, same seeds: the same files, fields and answers as `make experiments`."""
    root, _, _ = gpu_run
    ours = root / "results" / "smoke"
    reference = smoke_matrix / "results" / "smoke"
    assert {p.name for p in ours.iterdir()} - NOT_RECORDS == {p.name for p in reference.iterdir()}
    for rid in EXPECTED:
        got = json.loads((ours / f"{rid}.json").read_text())
        want = json.loads((reference / f"{rid}.json").read_text())
        assert set(got) == set(want), rid
        assert set(got["metrics"]) == set(want["metrics"]), rid
        assert got["config"] == want["config"] and got["world"] == want["world"], rid
        assert got["dataset_checksums"] == want["dataset_checksums"], rid
        for key in ("final_loss", "steps", "tokens", "dev", "train", "probe", "snapshots"):
            assert got["metrics"].get(key) == want["metrics"].get(key), (rid, key)
        for name in got["files"].values():
            if name.endswith((".details.json", ".predictions.txt")):
                assert (ours / name).read_text() == (reference / name).read_text(), (rid, name)


def test_layout_matches_the_committed_smoke_results(gpu_run):
    """The committed results/smoke were written by `make experiments PROFILE=smoke`."""
    root, _, _ = gpu_run
    ours = root / "results" / "smoke"
    assert {p.name for p in ours.iterdir()} - NOT_RECORDS == {p.name for p in (REPO / "results" / "smoke").iterdir()}


def test_its_records_render_into_stored_notebooks_without_training(gpu_run, monkeypatch):
    root, _, _ = gpu_run
    results = root / "results" / "smoke"
    before = {p.name: p.read_bytes() for p in results.glob("*.json")}
    monkeypatch.setenv("BOOK_RESULTS", str(root / "results"))
    # The weights stay on the GPU machine: rendering must not need (or make) any.
    monkeypatch.setenv("BOOK_CHECKPOINTS", str(root / "no-checkpoints"))
    monkeypatch.setenv("BOOK_RUNS", str(root / "runs"))
    started = time.time()
    statuses = E.run_matrix("smoke", render_only=True, log=lambda line: None)
    print(f"rendering {len(statuses)} stored notebooks: {time.time() - started:.0f} s")
    assert {s["status"] for s in statuses} == {"rendered"}
    assert {p.stem for p in (root / "runs" / "smoke").glob("*.ipynb")} == set(EXPECTED)
    assert not (root / "no-checkpoints").exists()
    assert {p.name: p.read_bytes() for p in results.glob("*.json")} == before


# --------------------------------------------------------------------------------------
# Scheduling, the deadline and the archive: what a short lease of a GPU depends on
# --------------------------------------------------------------------------------------
def test_jobs_run_longest_first():
    from lib.gpu_run import jobs_for

    jobs = jobs_for("full", ["bigbird", "vanilla", "synthesizer"], [0, 1, 2], [0])
    assert jobs == [("pretrain_finetune", "vanilla", 0), ("pretrain_finetune", "vanilla", 1),
                    ("pretrain_finetune", "vanilla", 2), ("pretrain_finetune", "bigbird", 0),
                    ("pretrain_finetune", "synthesizer", 0), ("finetune", "vanilla", 0),
                    ("finetune", "vanilla", 1), ("finetune", "vanilla", 2)]


def test_each_process_gets_an_equal_share_of_the_cpu():
    from lib.gpu_run import threads_per_job

    assert [threads_per_job(n, cpus=16) for n in (1, 3, 6, 16, 40)] == [16, 5, 2, 1, 1]


def test_training_speed_comes_from_the_metrics_logs(tmp_path, monkeypatch):
    from lib.gpu_run import training_speed

    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path))
    folder = tmp_path / "full"
    folder.mkdir()
    rows = {"pretrain-vanilla-seed0": [(10, 1.0), (1010, 6.0)],  # 1000 steps in 5 s
            "pretrain_finetune-vanilla-seed0": [(5, 0.5), (85, 2.5)]}  # 80 steps in 2 s
    for rid, points in rows.items():
        (folder / f"{rid}.metrics.jsonl").write_text("".join(
            json.dumps({"step": step, "time": t}) + "\n" for step, t in points))
    assert training_speed("full", ("pretrain_finetune", "vanilla", 0)) == {"pretrain": 200.0,
                                                                           "finetune": 40.0}
    assert training_speed("full", ("finetune", "vanilla", 0)) == {}  # no log (yet)


def test_a_deadline_stops_the_matrix_and_the_archive_still_holds_what_finished(tmp_path):
    """A run out of time ends on its own, says which jobs did not finish, writes no record
    for them, and packs everything there is into one archive."""
    import tarfile

    env = {**os.environ, "BOOK_RESULTS": str(tmp_path / "results"),
           "BOOK_CHECKPOINTS": str(tmp_path / "checkpoints")}
    archive = tmp_path / "out" / "smoke.tgz"
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "lib.gpu_run", "--profile", "smoke", "--variants",
                           "vanilla", "--device", "cpu", "--deadline", "2", "--pack", str(archive)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert time.time() - started < 120, "the deadline did not stop the jobs"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    summary = json.loads((tmp_path / "results" / "smoke" / "gpu_run.json").read_text())
    statuses = {r["run_id"]: r["status"] for r in summary["runs"]}
    assert statuses == {"pretrain_finetune-vanilla-seed0": "stopped at the deadline",
                        "finetune-vanilla-seed0": "not started"}
    assert "2 job(s) unfinished" in proc.stdout
    records = {p.name for p in (tmp_path / "results" / "smoke").glob("*.json")}
    assert records == {"london.json", "gpu_run.json"}
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"results/smoke/london.json", "results/smoke/gpu_run.json",
            "results/smoke/logs/pretrain_finetune-vanilla-seed0.log"} <= names
    assert not list(archive.parent.glob("*.partial"))
