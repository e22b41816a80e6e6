"""`make gpu-run`: a profile's experiment matrix on one GPU that is lent for minutes.

The lease this is planned for: one H200 for 15 minutes of device time in all, start-up
included, one command of at most 10 minutes, and only the files written under one output
folder come back (a handful, so one archive). Only the repository's working tree travels
there: no git folder, no virtual environment, no network. So the script needs only torch
and `lib`, reads the data from the repository's `data/`, takes the commit from
`BOOK_GIT_COMMIT`, and the stored notebooks are rendered afterwards from the records
(`python -m lib experiments --profile full --render-only`). Without CUDA it runs the same
jobs on the CPU, which is how the tests exercise it with the smoke profile.

Order by value. London first, in this process (no training). Then vanilla seed 0 with
pretraining and without (the book's main comparison) and the other vanilla seeds' finetunes
without pretraining (short). Then the first seed of RoPE and of each pretraining recipe
(`--recipes`, default `RECIPES`: the options that did best on the CPU testbed, see the
recipes chapter), each a configuration the book has not measured on the whole data; then
the other vanilla seeds with pretraining (the seed-to-seed spread), then the other research
variants: the synthesizer, then Linformer and BigBird. A recipe's runs go to
results/<profile>+<options>, as `python -m lib run --profile full+mixed` would write them.

Who runs when, and what finishes first. Each training step is one CUDA-graph launch, so a
training process keeps the GPU busy; two processes share it by time slicing and each trains
at about half speed. Three pretrainings started together would all finish together, at
three times the time of one, and a deadline would cut off all three (an early attempt, six
eager processes at once, finished nothing in 500 s; with this plan, on an H200 a vanilla
pretraining and its finetune took 167 s beside the three short finetunes, attention
dropout on the unfused path: results/benchmarks/bf16_h200/full/gpu_run.json). So:

- at most one job is in its pretraining phase at any time (`may_start`);
- two jobs run at once on a GPU: while vanilla seed 0 pretrains, the second slot takes
  the short finetune-only jobs (vanilla seed 0, then the other seeds); the next
  pretraining starts only once seed 0's pretraining record exists, and overlaps seed 0's
  remaining finetunes and evaluations (short, and heavier on the host than on the GPU);
- with a deadline, a job is not started when a finished job of its kind took longer than
  the time left: it would be stopped anyway, and would slow down its companion.

What finishes first: vanilla seed 0 without pretraining (about a twenty-fifth of the
steps of the job beside it), then vanilla seed 0 with pretraining, which shared the GPU
only with short finetunes; then each further pretraining in turn, in the order above. A
deadline cuts off at most one pretraining and the finetunes beside it.

What comes back. After London and after every job that starts or ends, `gpu_run.json`
(merged with the one earlier invocations left, not overwritten) is rewritten and
results/<profile> is packed into the `--pack` archive (a temporary file, then a rename), so
a command killed at its limit still returns every record finished before. The deadline
stops the jobs a little before it (`packing_reserve`), leaving time to stop them and pack.
Per-epoch training checkpoints are not written on a GPU (`BOOK_EPOCH_CHECKPOINTS=0` for the
job processes): they never come back, and each costs a copy of the model and optimizer.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import glob
import json
import os
import platform
import signal
import subprocess
import sys
import tarfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import torch

from lib.core import data as D
from lib.core.atomic import atomic_write_json
from lib.runs.matrix import Run, RunPaths, run_id
from lib.runs.pipeline import resolve_device, run_london, summary_line
from lib.runs.profiles import PROFILES, get_profile
from lib.runs.records import REPO_ROOT, git_commit, read_record, results_root

# Research variants in order of value; registered variants not named here come last.
VARIANT_ORDER = ("vanilla", "rope", "synthesizer", "linformer", "bigbird")
# Variants whose first seed runs before vanilla's other seeds with pretraining.
EARLY_VARIANTS = ("rope",)
# Pretraining recipes the full matrix includes, as OPTIONS[:VARIANT] (`parse_recipe`). On the
# mini-world testbed (recipes chapter, seed 0) rope stored more and mixed answered a larger
# share of what was stored, while crop stored far less: so mixed with rope, without crop.
RECIPES = ("mixed:rope",)
# Seconds kept free before the deadline to stop the jobs and pack (at most a tenth of it).
PACKING_RESERVE_S = 20.0
STOP_GRACE_S = 10.0  # after SIGTERM, before SIGKILL
POLL_S = 0.5
# Statuses of jobs that did no work in an invocation: they never replace an earlier entry
# of gpu_run.json (except "already done" replacing one that was not).
NOT_ATTEMPTED = ("not started", "already done")


def parse_recipe(spec: str) -> tuple[tuple[str, ...], str]:
    """'mixed+crop:rope' -> (('mixed', 'crop'), 'rope'); the variant defaults to vanilla.
    Options are checked as profiles check them (known, distinct, in `lib.core.data.RECIPES` order)."""
    options, _, variant = spec.partition(":")
    parsed = tuple(options.split("+")) if options else ()
    from lib.runs.profiles import with_recipe

    with_recipe(PROFILES["smoke"], parsed)  # raises ValueError with the valid choices
    return parsed, variant or "vanilla"


def variant_rank(variant: str) -> tuple[int, str]:
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def jobs_for(variants: list[str], seeds: list[int], variant_seeds: list[int],
             recipes: Sequence[tuple[tuple[str, ...], str]] = ()) -> list[Run]:
    """Jobs, most valuable first (see the module's docstring): vanilla seed 0 with and without
    pretraining and the other seeds' finetunes without it; the first of `variant_seeds` of
    RoPE and of each recipe; the other vanilla seeds with pretraining; then the rest of
    RoPE's and the recipes' seeds and the other research variants over `variant_seeds`.
    A recipe runs only when its variant is among `variants`."""
    first_jobs: list[Run] = []
    later: list[Run] = []
    if "vanilla" in variants and seeds:
        first, *others = seeds
        first_jobs += [Run("pretrain_finetune", "vanilla", first), Run("finetune", "vanilla", first)]
        first_jobs += [Run("finetune", "vanilla", seed) for seed in others]
        later += [Run("pretrain_finetune", "vanilla", seed) for seed in others]
    researched = sorted(set(variants) - {"vanilla"}, key=variant_rank)
    early = [(variant, ()) for variant in researched if variant in EARLY_VARIANTS]
    early += [(variant, tuple(options)) for options, variant in recipes if variant in variants]
    for variant, recipe in early:
        runs = [Run("pretrain_finetune", variant, seed, recipe) for seed in variant_seeds]
        first_jobs += runs[:1]
        later += runs[1:]
    for variant in researched:
        if variant not in EARLY_VARIANTS:
            later += [Run("pretrain_finetune", variant, seed) for seed in variant_seeds]
    return first_jobs + later


def threads_per_job(n_jobs: int, cpus: int | None = None) -> int:
    """An equal share of the CPU for each concurrent process (at least one thread): left to
    themselves, every process starts a thread per core and they crowd each other out."""
    return max(1, (cpus or os.cpu_count() or 1) // n_jobs)


def packing_reserve(deadline: float) -> float:
    """Seconds before the deadline at which jobs are stopped, to stop them and pack in time."""
    return min(PACKING_RESERVE_S, 0.1 * deadline)


def phases(job: Run) -> dict[str, str]:
    """The training phases of a (kind, variant, seed) job and the run id of each (pretrain +
    finetune has two, each with its own record and metrics log)."""
    kind, variant, seed = job.kind, job.variant, job.seed
    if kind == "pretrain_finetune":
        return {"pretrain": run_id("pretrain", variant, seed), "finetune": run_id(kind, variant, seed)}
    return {kind: run_id(kind, variant, seed)}


def finished_before(profile: str, job: Run) -> bool:
    """Every record of the job exists: a run without --force would only read them back."""
    return all(RunPaths.of(profile, rid).record.exists() for rid in phases(job).values())


def needs_pretraining(profile: str, job: Run, force: bool) -> bool:
    """Whether the job will pretrain (the finetune redoes a pretraining whose weights are
    missing, as on a fresh GPU machine that holds only the committed records)."""
    kind, variant, seed = job.kind, job.variant, job.seed
    if kind != "pretrain_finetune":
        return False
    pre = RunPaths.of(profile, run_id("pretrain", variant, seed))
    return force or not (pre.record.exists() and pre.weights.exists())


def training_speed(profile: str, job: Run) -> dict[str, float]:
    """Steps per second of each training phase a job went through, from its metrics logs
    (what the next attempt needs to plan by, also when this one ran out of time)."""
    speed = {}
    for phase, rid in phases(job).items():
        log = RunPaths.of(profile, rid).metrics
        try:
            lines = log.read_text().splitlines()
            first, last = json.loads(lines[0]), json.loads(lines[-1])
        except (OSError, IndexError, json.JSONDecodeError):
            continue
        # Between the first and last log lines (a resumed run's clock continues from the time
        # its log recorded, as its step count does).
        if last["time"] > first["time"]:
            speed[phase] = round((last["step"] - first["step"]) / (last["time"] - first["time"]), 1)
    return speed


def graph_use(profile: str, job: Run) -> dict[str, dict]:
    """Each finished training phase's CUDA-graph summary (replayed steps, capture failure)."""
    use = {}
    for phase, rid in phases(job).items():
        path = RunPaths.of(profile, rid).record
        if path.exists():
            use[phase] = read_record(path).get("cuda_graphs")
    return use


@dataclass
class Running:
    """A job's process while it runs."""

    job: Run
    process: subprocess.Popen
    log: IO
    started: float
    pretraining: bool
    pretrained_at: float | None = None


@dataclass
class Matrix:
    """Runs jobs as processes, at most `slots` at once and one pretraining at a time, in
    the order given; calls `changed` with every job's entry so far whenever one starts or ends."""

    profile: str
    jobs: list[Run]
    slots: int
    device: str
    environment: dict[str, str]
    stop_at: float | None = None
    force: bool = False
    changed: Callable[[list[dict]], None] = lambda entries: None
    poll: float = POLL_S
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.pending: list[Run] = list(self.jobs)
        self.running: list[Running] = []
        self.entries: dict[str, dict] = {}
        self.durations: dict[str, list[float]] = {}
        self.log_dir = results_root() / self.profile / "logs"

    def command(self, job: Run) -> list[str]:
        cmd = [sys.executable, "-m", "lib", "run", job.kind, "--profile", job.profile(self.profile),
               "--variant", job.variant, "--seed", str(job.seed), "--device", self.device,
               "--no-progress"]
        return cmd + (["--force"] if self.force else [])

    def run(self) -> list[dict]:
        """Every job's entry (status, seconds, speed...), in the order of `jobs`."""
        try:
            for job in list(self.pending):
                if not self.force and finished_before(job.profile(self.profile), job):
                    self.pending.remove(job)
                    self._note(job, "already done")
            while self.pending or self.running:
                events = self._reap()
                self._notice_pretrainings_done()
                if self.stop_at is not None and time.time() >= self.stop_at:
                    self._stop_all("stopped at the deadline")
                    self._give_up_pending("the deadline came")
                    events = True
                events |= self._start_what_may()
                if events:
                    self.changed(self.entries_in_order())
                if self.pending or self.running:
                    time.sleep(self.poll)
        finally:
            if self.running or self.pending:  # interrupted: leave no process behind
                self._stop_all("stopped (interrupted)")
                self._give_up_pending("interrupted")
        return self.entries_in_order()

    def entries_in_order(self) -> list[dict]:
        now = time.time()
        for running in self.running:
            self._note(running.job, "running", started=running.started, ended=now,
                       pretrained_at=running.pretrained_at)
        return [self.entries[job.key] for job in self.jobs if job.key in self.entries]

    def may_start(self, job: Run) -> bool:
        """A job that will pretrain waits while another job pretrains."""
        return not (needs_pretraining(job.profile(self.profile), job, self.force)
                    and any(r.pretraining for r in self.running))

    def estimate(self, job: Run) -> float | None:
        """Seconds the job should take: the longest finished job of its kind (in this
        invocation, or in earlier ones on the same device), if any."""
        return max(self.durations.get(job.kind, []), default=None)

    def _start_what_may(self) -> bool:
        started = False
        while len(self.running) < self.slots:
            job = next((j for j in self.pending if self.may_start(j)), None)
            if job is None:
                break
            self.pending.remove(job)
            started = True
            left = None if self.stop_at is None else self.stop_at - time.time()
            needed = self.estimate(job)
            if left is not None and needed is not None and needed > left:
                self._note(job, "not started",
                           reason=f"would not finish: a {job.kind} job took {needed:.0f} s, "
                                  f"{left:.0f} s were left")
                print(f"  not started (would not finish in time): {job.key}", flush=True)
                continue
            self.running.append(self._start(job))
        return started

    def _start(self, job: Run) -> Running:
        path = self.log_dir / f"{job.key}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "w")  # closed when reaped or stopped
        pretraining = needs_pretraining(job.profile(self.profile), job, self.force)
        process = subprocess.Popen(self.command(job), cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env=self.environment)
        print(f"  started: {job.key}" + (" (pretraining)" if pretraining else ""), flush=True)
        return Running(job, process, log, time.time(), pretraining)

    def _notice_pretrainings_done(self) -> None:
        for running in self.running:
            if not running.pretraining:
                continue
            record = RunPaths.of(running.job.profile(self.profile),
                                 run_id("pretrain", running.job.variant, running.job.seed)).record
            try:
                done = record.stat().st_mtime >= running.started
            except FileNotFoundError:
                done = False
            if done:
                running.pretraining, running.pretrained_at = False, time.time()

    def _reap(self) -> bool:
        ended = [r for r in self.running if r.process.poll() is not None]
        for running in ended:
            self.running.remove(running)
            running.log.close()
            code = running.process.returncode
            status = "done" if code == 0 else "failed"
            entry = self._note(running.job, status, returncode=code, started=running.started,
                               ended=time.time(), pretrained_at=running.pretrained_at)
            if status == "done":
                self.durations.setdefault(running.job.kind, []).append(entry["seconds"])
            else:
                tail = (self.log_dir / f"{running.job.key}.log").read_text().splitlines()[-15:]
                print("\n".join(tail), flush=True)
        return bool(ended)

    def _stop_all(self, status: str) -> None:
        """Stopped, not failed: no record is written for these jobs."""
        for running in list(self.running):
            running.process.terminate()
        for running in list(self.running):
            try:
                running.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
            running.log.close()
            self.running.remove(running)
            self._note(running.job, status, started=running.started, ended=time.time(),
                       pretrained_at=running.pretrained_at)

    def _give_up_pending(self, reason: str) -> None:
        for job in self.pending:
            self._note(job, "not started", reason=reason)
            print(f"  not started ({reason}): {job.key}", flush=True)
        self.pending = []

    def _note(self, job: Run, status: str, returncode: int | None = None,
              started: float | None = None, ended: float | None = None,
              pretrained_at: float | None = None, reason: str | None = None) -> dict:
        entry = {"run_id": job.key, "kind": job.kind, "variant": job.variant, "seed": job.seed,
                 "status": status, "returncode": returncode, "seconds": 0.0}
        if job.recipe:
            entry["recipe"] = list(job.recipe)
        if started is not None:
            entry.update(started_s=round(started - self.started, 1),
                         seconds=round((ended or time.time()) - started, 1),
                         log=f"logs/{job.key}.log",
                         steps_per_second=training_speed(job.profile(self.profile), job),
                         cuda_graphs=graph_use(job.profile(self.profile), job))
        if pretrained_at is not None:
            entry["pretrained_after_s"] = round(pretrained_at - started, 1)
        if reason is not None:
            entry["reason"] = reason
        self.entries[job.key] = entry
        if status not in ("running", "not started"):
            took = f" in {entry['seconds']} s" if started is not None else ""
            print(f"  {status}: {job.key}{took}", flush=True)
        return entry


# --------------------------------------------------------------------------------------
# gpu_run.json across invocations, and the archive
# --------------------------------------------------------------------------------------
INVOCATION_KEYS = ("device_name", "jobs", "threads_per_job", "cuda_graphs", "deadline",
                   "wall_time", "torch_version")


def read_summary(path: Path) -> dict:
    """The summary earlier invocations left (an empty one if none, or if it is unreadable)."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"invocations": [], "runs": []}
    except (OSError, json.JSONDecodeError) as error:
        print(f"warning: {path} is unreadable ({error}); starting a new summary", flush=True)
        return {"invocations": [], "runs": []}
    if "invocations" not in summary:  # written by one invocation, before summaries merged
        summary = {"invocations": [{k: summary[k] for k in INVOCATION_KEYS if k in summary}],
                   "runs": summary.get("runs", [])}
    return summary


def supersedes(new: dict, old: dict) -> bool:
    """Whether this invocation's entry replaces an earlier one: an attempt always does; a
    job not started never does; "already done" does where the earlier entry was no success."""
    if new["status"] == "not started":
        return False
    if new["status"] == "already done":
        return old["status"] not in ("done", "already done")
    return True


def merge_runs(earlier: list[dict], latest: list[dict]) -> list[dict]:
    """Earlier invocations' entries updated by the latest one's, in the latest one's order
    (then the earlier entries it did not touch)."""
    merged = {entry["run_id"]: entry for entry in earlier}
    for entry in latest:
        old = merged.get(entry["run_id"])
        if old is None or supersedes(entry, old):
            merged[entry["run_id"]] = entry
    order = [entry["run_id"] for entry in latest]
    order += [rid for rid in merged if rid not in order]
    return [merged[rid] for rid in order]


def earlier_durations(summary: dict, device_name: str) -> dict[str, list[float]]:
    """Seconds of each job kind finished by earlier invocations on the same kind of device:
    a second lease knows from the first which jobs cannot finish in the time it has."""
    devices = [i.get("device_name") for i in summary["invocations"]]
    durations: dict[str, list[float]] = {}
    for entry in summary["runs"]:
        index = entry.get("invocation")
        same_device = isinstance(index, int) and index < len(devices) and devices[index] == device_name
        if entry.get("status") == "done" and same_device and entry.get("kind"):
            durations.setdefault(entry["kind"], []).append(entry["seconds"])
    return durations


def merged_summary(profile: str, earlier: dict, invocation: dict, entries: list[dict]) -> dict:
    """gpu_run.json: every invocation, every job's latest entry, and at the top the latest
    invocation's settings with the wall time of all of them together."""
    index = len(earlier["invocations"])
    invocations = earlier["invocations"] + [invocation]
    return {
        "profile": profile,
        **{key: invocation[key] for key in INVOCATION_KEYS if key != "wall_time"},
        "wall_time": round(sum(i.get("wall_time") or 0.0 for i in invocations), 1),
        "invocations": invocations,
        "runs": merge_runs(earlier["runs"], [{**e, "invocation": index} for e in entries]),
    }


def pack(profile: str, archive: Path) -> Path:
    """Every file under results/<profile> and its recipes' results/<profile>+<options>
    (records, predictions, metrics and job logs, the run's summary) in one gzipped tar, paths
    relative to the repository root; written beside the archive and renamed over it, so the
    archive is always a whole one."""
    root = results_root()
    folders = [root / profile] + sorted(root.glob(glob.escape(profile) + "+*"))
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    try:
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for path in sorted(p for folder in folders for p in folder.rglob("*")):
                # Skip half-written files of atomic writes (a record appears by a rename).
                if path in (archive, partial) or (path.name.startswith(".") and path.suffix == ".tmp"):
                    continue
                try:
                    if path.is_file():
                        tar.add(path, arcname=str(Path("results") / path.relative_to(root)))
                except FileNotFoundError:  # renamed away while we packed
                    continue
        partial.replace(archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return archive


def default_data_folder() -> Path:
    """The repository's data/ when it holds the files (nothing outside the repository travels
    to a lent GPU machine), else where the rest of the project looks (`$BIRTHPLACE_DATA`, the
    shared copy beside the clone)."""
    local = REPO_ROOT / "data"
    if (local / D.FILES["wiki"]).is_file():
        return local
    return D.data_dir().resolve()


def job_environment(threads: int, data_folder: Path, commit: str, *, cuda_graphs: bool,
                    epoch_checkpoints: bool, compile_model: bool) -> dict[str, str]:
    """What each job process is told: its share of the CPU, the data folder, the commit
    (its records must name the same one), and how to train (`lib.runs.pipeline.run` reads it)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               BIRTHPLACE_DATA=str(data_folder), BOOK_CUDA_GRAPHS="1" if cuda_graphs else "0",
               BOOK_EPOCH_CHECKPOINTS="1" if epoch_checkpoints else "0",
               BOOK_COMPILE="1" if compile_model else "0")
    if commit != "unknown":
        env["BOOK_GIT_COMMIT"] = commit
    return env


class Interrupted(Exception):
    """SIGTERM (an outer time limit, say): stop the jobs, write the summary, pack, end."""


def _raise_interrupted(signum, frame) -> None:
    raise Interrupted(signal.Signals(signum).name)


def main(argv: list[str] | None = None) -> int:
    started = time.time()  # the deadline counts from here: loading the data is part of it
    from lib.core.attention import available_variants

    ap = argparse.ArgumentParser(prog="python -m lib.runs.gpu_run", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=None, help="concurrent processes, at most one of "
                    "them pretraining (default: 2 on CUDA, 1 on CPU)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--variants", nargs="+", default=None, help="default: every registered variant")
    ap.add_argument("--variant-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--recipes", nargs="*", default=list(RECIPES), metavar="OPTIONS[:VARIANT]",
                    help="pretraining recipes to run over --variant-seeds when their variant is among "
                    "--variants, e.g. mixed:rope "
                    f"(default: {' '.join(RECIPES)}; none: --recipes with no value)")
    ap.add_argument("--data", type=Path, default=None, metavar="FOLDER",
                    help="the data folder (default: the repository's data/ when it holds the "
                    "files, else $BIRTHPLACE_DATA)")
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    ap.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                    help="launch every kernel from Python instead of replaying each training "
                    "step as a CUDA graph (the default on a GPU)")
    ap.add_argument("--epoch-checkpoints", action=argparse.BooleanOptionalAction, default=None,
                    help="write resumable training states between epochs (default: on a CPU "
                    "only; a lent GPU's files never come back)")
    ap.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                    help="end within this many seconds, packing included: jobs still running "
                    "a little before are stopped (no record is written for them)")
    ap.add_argument("--pack", type=Path, default=None, metavar="ARCHIVE.tgz",
                    help="keep results/<profile> (records, logs, summary) packed in this archive, "
                    "updated after every job")
    args = ap.parse_args(argv)
    if args.deadline is not None and args.deadline <= 0:
        ap.error("--deadline must be a positive number of seconds")

    try:
        device = resolve_device(args.device)
    except ValueError as error:
        ap.error(str(error))
    profile = get_profile(args.profile)
    variants = args.variants or available_variants()
    unknown = set(variants) - set(available_variants())
    if unknown:
        ap.error(f"unknown variants {sorted(unknown)}; choose from {available_variants()}")
    try:
        recipes = [parse_recipe(spec) for spec in args.recipes]
    except ValueError as error:
        ap.error(f"--recipes: {error}")
    unknown = {variant for _, variant in recipes} - set(available_variants())
    if unknown:
        ap.error(f"--recipes: unknown variants {sorted(unknown)}; choose from {available_variants()}")
    seeds = args.seeds if args.seeds is not None else list(profile.seeds)
    if any(seed < 0 for seed in seeds + args.variant_seeds):
        ap.error("seeds must be non-negative integers")
    n_jobs = args.jobs if args.jobs is not None else (2 if device.type == "cuda" else 1)
    if n_jobs <= 0:
        ap.error("--jobs must be positive")
    data_folder = (args.data or default_data_folder()).resolve()
    try:
        data = D.load(data_folder)
    except D.DataError as error:
        ap.error(str(error))

    threads = threads_per_job(n_jobs)
    on_gpu = device.type == "cuda"
    graphs = args.cuda_graphs and on_gpu
    epoch_checkpoints = not on_gpu if args.epoch_checkpoints is None else args.epoch_checkpoints
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    commit = git_commit()
    print(f"gpu-run: profile {profile.name} on {name}, {n_jobs} concurrent job(s) (one pretraining "
          f"at a time), {threads} CPU thread(s) each, CUDA graphs {'on' if graphs else 'off'}, "
          f"epoch checkpoints {'on' if epoch_checkpoints else 'off'}"
          + (f", deadline {args.deadline:.0f} s" if args.deadline else ""), flush=True)
    print(f"data: {data_folder}; commit: {commit}", flush=True)
    if commit == "unknown":
        print("warning: the records will name the commit 'unknown'; set BOOK_GIT_COMMIT where "
              "the repository travels without its git folder", flush=True)

    stop_at = (None if args.deadline is None
               else started + args.deadline - packing_reserve(args.deadline))
    folder = results_root() / profile.name
    summary_path = folder / "gpu_run.json"
    earlier = read_summary(summary_path)
    invocation = {
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "state": "running",
        "device_name": name, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "git_commit": commit, "jobs": n_jobs,
        "threads_per_job": threads, "cuda_graphs": graphs, "epoch_checkpoints": epoch_checkpoints,
        "compile": args.compile, "deadline": args.deadline, "wall_time": 0.0,
        "data": str(data_folder.relative_to(REPO_ROOT)) if data_folder.is_relative_to(REPO_ROOT)
        else str(data_folder),
    }

    def save(entries: list[dict]) -> None:
        """gpu_run.json merged with the earlier invocations', then the archive."""
        invocation["wall_time"] = round(time.time() - started, 1)
        atomic_write_json(summary_path, merged_summary(profile.name, earlier, invocation, entries))
        if args.pack is not None:
            pack(profile.name, args.pack)

    env = job_environment(threads, data_folder, commit, cuda_graphs=graphs,
                          epoch_checkpoints=epoch_checkpoints, compile_model=args.compile)
    jobs = jobs_for(variants, seeds, args.variant_seeds, recipes)
    matrix = Matrix(profile.name, jobs, n_jobs, str(device), env, stop_at=stop_at,
                    force=args.force, changed=save, started=started)
    matrix.durations = earlier_durations(earlier, name)
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        run_london(profile, data=data, force=args.force)
        save([])
        entries = matrix.run()
        invocation["state"] = "finished"
    except (Interrupted, KeyboardInterrupt) as why:
        entries = matrix.entries_in_order()
        invocation["state"] = f"interrupted ({why or 'keyboard'})"
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
    save(entries)
    if args.pack is not None:
        print(f"packed: {args.pack}", flush=True)

    wall = time.time() - started
    print(f"\nsummary ({wall:.0f} s wall):")
    for entry in entries:
        speed = ", ".join(f"{phase} {v} steps/s" for phase, v in entry.get("steps_per_second", {}).items())
        print(f"  {entry['run_id']:<40} {entry['status']:<24} {entry['seconds']:>7.0f} s  {speed}")
    for where, rid in [(profile.name, run_id("london"))] + [
            (job.profile(profile.name), rid) for job in jobs for rid in phases(job).values()]:
        path = RunPaths.of(where, rid).record
        if path.exists():
            print("  " + summary_line(read_record(path)))
    unfinished = [e for e in entries if e["status"] not in ("done", "already done")]
    if unfinished or invocation["state"] != "finished":
        print(f"{len(unfinished)} job(s) unfinished: "
              + ", ".join(f"{e['run_id']} ({e['status']})" for e in unfinished))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
