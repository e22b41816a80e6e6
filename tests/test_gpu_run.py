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
from itertools import pairwise

import pytest

from lib.runs import experiments as E
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
    assert "-m lib.runs.gpu_run --profile smoke --variants vanilla" in proc.stdout
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
# Order and scheduling: what finishes first on a short lease
# --------------------------------------------------------------------------------------
def test_jobs_run_most_valuable_first():
    from lib.runs.gpu_plan import jobs_for

    jobs = jobs_for(["bigbird", "vanilla", "linformer", "synthesizer", "rope"], [0, 1, 2], [0])
    assert [(job.kind, job.variant, job.seed) for job in jobs] == [("pretrain_finetune", "vanilla", 0), ("finetune", "vanilla", 0),
                    ("finetune", "vanilla", 1), ("finetune", "vanilla", 2),
                    ("pretrain_finetune", "rope", 0),
                    ("pretrain_finetune", "vanilla", 1), ("pretrain_finetune", "vanilla", 2),
                    ("pretrain_finetune", "synthesizer", 0),
                    ("pretrain_finetune", "linformer", 0), ("pretrain_finetune", "bigbird", 0)]


def test_recipes_run_their_first_seed_before_vanillas_other_seeds_under_their_own_profile():
    from lib.runs.gpu_plan import jobs_for, parse_recipe

    recipes = [parse_recipe("mixed+crop:rope"), parse_recipe("mixed"), parse_recipe("crop:synthesizer")]
    assert recipes == [(("mixed", "crop"), "rope"), (("mixed",), "vanilla"), (("crop",), "synthesizer")]
    jobs = jobs_for(["vanilla", "rope"], [0, 1], [0, 1], recipes)
    assert [(j.key, j.profile("full")) for j in jobs if j.kind == "pretrain_finetune"] == [
        ("pretrain_finetune-vanilla-seed0", "full"), ("pretrain_finetune-rope-seed0", "full"),
        ("mixed+crop/pretrain_finetune-rope-seed0", "full+mixed+crop"),
        ("mixed/pretrain_finetune-vanilla-seed0", "full+mixed"),
        ("pretrain_finetune-vanilla-seed1", "full"), ("pretrain_finetune-rope-seed1", "full"),
        ("mixed+crop/pretrain_finetune-rope-seed1", "full+mixed+crop"),
        ("mixed/pretrain_finetune-vanilla-seed1", "full+mixed")]  # no synthesizer asked for
    for bad in ("crop+mixed", "bogus", "mixed+mixed"):
        with pytest.raises(ValueError):
            parse_recipe(bad)


def test_without_a_rope_variant_the_order_goes_on_without_it_and_new_variants_come_last():
    from lib.runs.gpu_plan import jobs_for
    from lib.runs.matrix import Run

    jobs = jobs_for(["performer", "bigbird", "synthesizer", "vanilla"], [0], [0, 1])
    assert [(j.variant, j.seed) for j in jobs if j.kind == "pretrain_finetune"] == [
        ("vanilla", 0), ("synthesizer", 0), ("synthesizer", 1), ("bigbird", 0), ("bigbird", 1),
        ("performer", 0), ("performer", 1)]
    assert jobs_for(["synthesizer"], [0, 1], [0]) == [Run("pretrain_finetune", "synthesizer", 0)]


def test_each_process_gets_an_equal_share_of_the_cpu():
    from lib.runs.gpu_run import threads_per_job

    assert [threads_per_job(n, cpus=16) for n in (1, 2, 3, 6, 16, 40)] == [16, 8, 5, 2, 1, 1]


def test_the_jobs_stop_early_enough_to_pack():
    from lib.runs.gpu_run import packing_reserve

    assert packing_reserve(540) == 20 and packing_reserve(2) == pytest.approx(0.2)


# A stand-in for `python -m lib run`: sleeps, then writes a record, for each (seconds, path).
FAKE_RUN = """
import pathlib, sys, time
args = sys.argv[1:]
for seconds, path in zip(args[::2], args[1::2]):
    time.sleep(float(seconds))
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(path).write_text("{}")
"""


def fake_matrix(tmp_path, monkeypatch, jobs, slots, seconds, **options):
    """A Matrix whose jobs only sleep and write their records: (pretraining, rest) seconds
    for a pretrain + finetune, (finetune,) for a finetune alone."""
    from lib.runs.gpu_schedule import Matrix
    from lib.runs.matrix import RunPaths, run_id

    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BOOK_CHECKPOINTS", str(tmp_path / "checkpoints"))

    class Fake(Matrix):
        def command(self, job):
            timeline = []
            if job.kind == "pretrain_finetune":
                timeline += [seconds[job.kind][0], RunPaths.of("smoke", run_id("pretrain", job.variant,
                                                                                job.seed)).record]
            timeline += [seconds[job.kind][-1], RunPaths.of("smoke", job.id).record]
            return [sys.executable, "-c", FAKE_RUN, *map(str, timeline)]

    return Fake("smoke", jobs, slots, "cpu", dict(os.environ), poll=0.05, **options)


def test_one_pretraining_at_a_time_beside_short_finetunes(tmp_path, monkeypatch):
    """Two slots: vanilla seed 0 pretrains beside the finetunes alone; each next pretraining
    starts only when the one before has finished pretraining, never together with it."""
    from lib.runs.gpu_plan import jobs_for

    jobs = jobs_for(["vanilla", "synthesizer"], [0, 1], [0])
    entries = fake_matrix(tmp_path, monkeypatch, jobs, 2,
                          {"pretrain_finetune": (1.5, 1.0), "finetune": (0.4,)}).run()
    assert [e["run_id"] for e in entries] == [j.key for j in jobs]
    assert {e["status"] for e in entries} == {"done"}
    by_start = sorted(entries, key=lambda e: e["started_s"])
    assert [e["run_id"] for e in by_start] == [j.key for j in jobs]  # started in value order
    pretraining = sorted((e["started_s"], e["started_s"] + e["pretrained_after_s"])
                         for e in entries if e["kind"] == "pretrain_finetune")
    assert len(pretraining) == 3
    assert all(end <= next_start + 0.1 for (_, end), (next_start, _) in pairwise(pretraining))
    first = entries[0]  # vanilla seed 0 with pretraining: only finetunes beside it
    beside = [e for e in entries[1:] if e["started_s"] < first["started_s"] + first["pretrained_after_s"]]
    assert {e["kind"] for e in beside} == {"finetune"}
    assert entries[1]["started_s"] < 0.5  # the second slot does not wait


def test_a_job_that_cannot_finish_before_the_deadline_is_not_started(tmp_path, monkeypatch):
    from lib.runs.matrix import Run

    jobs = [Run("finetune", "vanilla", seed) for seed in range(3)]
    entries = fake_matrix(tmp_path, monkeypatch, jobs, 1, {"finetune": (2.0,)},
                          stop_at=time.time() + 3.0).run()
    assert [e["status"] for e in entries] == ["done", "not started", "not started"]
    assert entries[1]["reason"].startswith("would not finish: a finetune job took 2")


def test_jobs_whose_records_exist_are_not_started_again(tmp_path, monkeypatch):
    from lib.runs.matrix import Run

    matrix = fake_matrix(tmp_path, monkeypatch, [Run("finetune", "vanilla", 0)], 1,
                         {"finetune": (0.0,)})
    record = tmp_path / "results" / "smoke" / "finetune-vanilla-seed0.json"
    record.parent.mkdir(parents=True)
    record.write_text("{}")
    assert [e["status"] for e in matrix.run()] == ["already done"]
    assert not (tmp_path / "results" / "smoke" / "logs").exists()


# --------------------------------------------------------------------------------------
# gpu_run.json across invocations, and the archive
# --------------------------------------------------------------------------------------
def test_a_later_invocation_updates_the_summary_without_losing_what_an_earlier_one_did():
    from lib.runs.gpu_summary import merge_runs

    earlier = [{"run_id": "a", "status": "done", "seconds": 90}, {"run_id": "b", "status": "stopped at the deadline"},
               {"run_id": "c", "status": "failed"}, {"run_id": "d", "status": "done"},
               {"run_id": "e", "status": "running"}]
    latest = [{"run_id": "a", "status": "already done"}, {"run_id": "b", "status": "done"},
              {"run_id": "c", "status": "already done"}, {"run_id": "e", "status": "not started"},
              {"run_id": "f", "status": "stopped at the deadline"}]
    merged = merge_runs(earlier, latest)
    assert [(r["run_id"], r["status"]) for r in merged] == [
        ("a", "done"), ("b", "done"), ("c", "already done"), ("e", "running"),
        ("f", "stopped at the deadline"), ("d", "done")]
    assert merged[0]["seconds"] == 90


def test_a_summary_from_before_merging_counts_as_one_invocation(tmp_path):
    from lib.runs.gpu_summary import read_summary

    path = tmp_path / "gpu_run.json"
    assert read_summary(path) == {"invocations": [], "runs": []}
    path.write_text(json.dumps({"profile": "full", "device_name": "NVIDIA H200", "jobs": 6,
                                "wall_time": 500.0, "runs": [{"run_id": "a", "status": "failed"}]}))
    summary = read_summary(path)
    assert summary["invocations"] == [{"device_name": "NVIDIA H200", "jobs": 6, "wall_time": 500.0}]
    assert summary["runs"] == [{"run_id": "a", "status": "failed"}]
    path.write_text("{ torn")
    assert read_summary(path) == {"invocations": [], "runs": []}


def test_the_archive_leaves_out_half_written_files_and_is_replaced_whole(tmp_path, monkeypatch):
    import tarfile

    from lib.runs.gpu_summary import pack

    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path / "results"))
    folder = tmp_path / "results" / "smoke"
    (folder / "logs").mkdir(parents=True)
    (folder / "london.json").write_text("{}")
    (folder / "logs" / "a.log").write_text("log")
    (folder / ".london.json.x1y2.tmp").write_text("{ half")
    (tmp_path / "results" / "smoke+mixed").mkdir()
    (tmp_path / "results" / "smoke+mixed" / "pretrain-vanilla-seed0.json").write_text("{}")
    (tmp_path / "results" / "smokey").mkdir()  # another profile's folder stays out
    (tmp_path / "results" / "smokey" / "london.json").write_text("{}")
    archive = pack("smoke", tmp_path / "out" / "smoke.tgz")
    with tarfile.open(archive) as tar:
        assert sorted(tar.getnames()) == ["results/smoke+mixed/pretrain-vanilla-seed0.json",
                                          "results/smoke/logs/a.log", "results/smoke/london.json"]
    assert [p.name for p in archive.parent.iterdir()] == ["smoke.tgz"]


def test_a_deadline_stops_the_matrix_and_the_archive_still_holds_what_finished(tmp_path):
    """A run out of time ends on its own, says which jobs did not finish, writes no record
    or other file for them, and packs everything there is into one archive. Its profile is
    `smoke` with a pretraining far longer than the deadline, so the deadline falls inside
    it on a machine of any speed."""
    import tarfile
    from dataclasses import replace

    from lib.runs.profiles import get_profile

    smoke = get_profile("smoke")
    endless = smoke.with_changes(name="smoke-endless", description="smoke, pretrained for ever",
                                 pretrain=replace(smoke.pretrain, epochs=10**6, final_epochs=10**6))
    profiles = tmp_path / "profiles.json"
    profiles.write_text(json.dumps([endless.to_dict()]))
    env = {**os.environ, "BOOK_RESULTS": str(tmp_path / "results"),
           "BOOK_CHECKPOINTS": str(tmp_path / "checkpoints"), "BOOK_EXTRA_PROFILES": str(profiles)}
    archive = tmp_path / "out" / "smoke-endless.tgz"
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", "lib.runs.gpu_run", "--profile", "smoke-endless",
                           "--variants", "vanilla", "--device", "cpu", "--deadline", "4",
                           "--pack", str(archive)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert time.time() - started < 120, "the deadline did not stop the jobs"
    assert proc.returncode == 1, proc.stdout + proc.stderr
    folder = tmp_path / "results" / "smoke-endless"
    summary = json.loads((folder / "gpu_run.json").read_text())
    statuses = {r["run_id"]: r["status"] for r in summary["runs"]}
    assert statuses == {"pretrain_finetune-vanilla-seed0": "stopped at the deadline",
                        "finetune-vanilla-seed0": "not started"}
    assert "2 job(s) unfinished" in proc.stdout
    # A metrics log of the stopped pretraining may stay (a rerun resumes it); nothing else.
    files = {p.name for p in folder.iterdir() if p.is_file() and p.suffix != ".jsonl"}
    assert files == {"london.json", "london.predictions.txt", "gpu_run.json"}
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert {"results/smoke-endless/london.json", "results/smoke-endless/gpu_run.json",
            "results/smoke-endless/logs/pretrain_finetune-vanilla-seed0.log"} <= names
    assert not list(archive.parent.glob("*.partial"))


def archive_members(archive) -> dict[str, bytes]:
    import tarfile

    try:
        with tarfile.open(archive) as tar:
            return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    except (FileNotFoundError, tarfile.ReadError, EOFError):
        return {}


@pytest.fixture(scope="module")
def killed_then_resumed(tmp_path_factory):
    """The GPU script killed (SIGKILL, its job with it) once the first job has finished, as
    an outer time limit would, then started again in the same folders to finish. Returns the
    folder, the archive as the kill left it, the records on disk at the kill, and the
    second invocation's completed process."""
    root = tmp_path_factory.mktemp("killed")
    env = {**os.environ, "BOOK_RESULTS": str(root / "results"),
           "BOOK_CHECKPOINTS": str(root / "checkpoints")}
    archive = root / "out" / "smoke.tgz"
    command = [sys.executable, "-m", "lib.runs.gpu_run", "--profile", "smoke", "--variants", "vanilla",
               "--device", "cpu", "--pack", str(archive)]
    first = "results/smoke/pretrain_finetune-vanilla-seed0.json"
    with open(root / "killed.log", "w") as log:
        proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        try:
            give_up = time.time() + 600
            while first not in archive_members(archive):
                assert proc.poll() is None, (root / "killed.log").read_text()
                assert time.time() < give_up, "the first job never reached the archive"
                time.sleep(0.2)
        finally:
            os.killpg(proc.pid, 9)  # the script and the job it was running
            proc.wait()
    at_kill = archive_members(archive)
    on_disk = {p.name for p in (root / "results" / "smoke").glob("*.json")} - {"gpu_run.json"}
    again = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return root, at_kill, on_disk, again


def test_a_killed_run_leaves_an_archive_with_every_finished_record(killed_then_resumed):
    _, at_kill, on_disk, _ = killed_then_resumed
    assert {"london.json", "pretrain-vanilla-seed0.json", "pretrain_finetune-vanilla-seed0.json"} <= on_disk
    assert {f"results/smoke/{name}" for name in on_disk} <= set(at_kill)
    # The archive was brought up to date when the first job ended, while the next one ran.
    summary = json.loads(at_kill["results/smoke/gpu_run.json"])
    assert {r["run_id"]: r["status"] for r in summary["runs"]} == {
        "pretrain_finetune-vanilla-seed0": "done", "finetune-vanilla-seed0": "running"}
    assert summary["invocations"][-1]["state"] == "running"


def test_a_second_invocation_finishes_the_rest_and_merges_the_summary(killed_then_resumed):
    root, at_kill, _, again = killed_then_resumed
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    summary = json.loads((root / "results" / "smoke" / "gpu_run.json").read_text())
    assert [i["state"] for i in summary["invocations"]] == ["running", "finished"]
    runs = {r["run_id"]: r for r in summary["runs"]}
    before = {r["run_id"]: r for r in json.loads(at_kill["results/smoke/gpu_run.json"])["runs"]}
    # Finished in the first invocation: its entry (time, speed) is kept, not "already done".
    assert runs["pretrain_finetune-vanilla-seed0"] == before["pretrain_finetune-vanilla-seed0"]
    assert runs["finetune-vanilla-seed0"]["status"] == "done"
    assert runs["finetune-vanilla-seed0"]["invocation"] == 1
    assert summary["wall_time"] == pytest.approx(sum(i["wall_time"] for i in summary["invocations"]), abs=0.2)
    finished = archive_members(root / "out" / "smoke.tgz")
    assert {"results/smoke/finetune-vanilla-seed0.json", "results/smoke/london.json",
            "results/smoke/pretrain_finetune-vanilla-seed0.json"} <= set(finished)


def test_a_later_invocation_plans_by_what_earlier_ones_took_on_the_same_device():
    from lib.runs.gpu_summary import earlier_durations

    summary = {"invocations": [{"device_name": "NVIDIA H200"}, {"device_name": "cpu"}],
               "runs": [{"kind": "pretrain_finetune", "status": "done", "seconds": 200.0, "invocation": 0},
                        {"kind": "finetune", "status": "done", "seconds": 30.0, "invocation": 1},
                        {"kind": "finetune", "status": "stopped at the deadline", "seconds": 9.0,
                         "invocation": 0}]}
    assert earlier_durations(summary, "NVIDIA H200") == {"pretrain_finetune": [200.0]}
    assert earlier_durations({"invocations": [], "runs": []}, "cpu") == {}


def test_the_data_is_read_from_the_repositorys_data_folder_when_it_holds_the_files(tmp_path, monkeypatch):
    """Nothing outside the repository travels to a lent GPU: data/ comes first."""
    from lib.runs import gpu_run

    monkeypatch.setattr(gpu_run, "REPO_ROOT", tmp_path)
    monkeypatch.setenv("BIRTHPLACE_DATA", str(tmp_path / "elsewhere"))
    assert gpu_run.default_data_folder() == (tmp_path / "elsewhere").resolve()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "wiki.txt").write_text("")
    assert gpu_run.default_data_folder() == tmp_path / "data"


def test_a_data_folder_without_the_files_is_refused_before_any_work(tmp_path, capsys):
    from lib.runs import gpu_run

    with pytest.raises(SystemExit) as exit_:
        gpu_run.main(["--profile", "smoke", "--data", str(tmp_path / "nowhere")])
    assert exit_.value.code == 2 and "does not exist" in capsys.readouterr().err


def test_the_jobs_are_told_the_data_the_commit_and_to_skip_epoch_checkpoints(tmp_path, monkeypatch):
    from lib.runs.gpu_run import job_environment

    monkeypatch.delenv("BOOK_GIT_COMMIT", raising=False)
    env = job_environment(8, tmp_path / "data", "abc123", cuda_graphs=True, epoch_checkpoints=False,
                          compile_model=False)
    assert (env["BIRTHPLACE_DATA"], env["BOOK_GIT_COMMIT"]) == (str(tmp_path / "data"), "abc123")
    assert (env["BOOK_CUDA_GRAPHS"], env["BOOK_EPOCH_CHECKPOINTS"], env["BOOK_COMPILE"]) == ("1", "0", "0")
    assert env["OMP_NUM_THREADS"] == "8"
    assert "BOOK_GIT_COMMIT" not in job_environment(1, tmp_path, "unknown", cuda_graphs=False,
                                                    epoch_checkpoints=True, compile_model=False)


def test_a_recipe_job_writes_under_its_own_profile_and_comes_back_in_the_archive(tmp_path):
    env = {**os.environ, "BOOK_RESULTS": str(tmp_path / "results"),
           "BOOK_CHECKPOINTS": str(tmp_path / "checkpoints")}
    archive = tmp_path / "out" / "smoke.tgz"
    base = [sys.executable, "-m", "lib.runs.gpu_run", "--profile", "smoke", "--variants", "vanilla",
            "--device", "cpu", "--seeds", "0"]
    bad = subprocess.run(base + ["--recipes", "crop+mixed"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "write recipe options in this order: mixed+crop" in bad.stderr
    proc = subprocess.run(base + ["--recipes", "mixed", "--pack", str(archive)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    members = archive_members(archive)
    assert "results/smoke+mixed/pretrain_finetune-vanilla-seed0.json" in members
    assert "results/smoke/logs/mixed/pretrain_finetune-vanilla-seed0.log" in members
    summary = json.loads((tmp_path / "results" / "smoke" / "gpu_run.json").read_text())
    entry = next(e for e in summary["runs"] if e["run_id"] == "mixed/pretrain_finetune-vanilla-seed0")
    assert entry["status"] == "done" and entry["recipe"] == ["mixed"]
    record = json.loads((tmp_path / "results" / "smoke+mixed" / "pretrain-vanilla-seed0.json").read_text())
    assert record["config"]["recipe"] == ["mixed"]
