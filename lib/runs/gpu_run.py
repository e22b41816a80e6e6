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
import os
import platform
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from lib.core import data as D
from lib.core.atomic import atomic_write_json
from lib.runs.gpu_plan import (
    RECIPES,
    jobs_for,
    parse_recipe,
    phases,
)
from lib.runs.gpu_schedule import Matrix
from lib.runs.gpu_summary import earlier_durations, merged_summary, pack, read_summary
from lib.runs.matrix import Run, RunPaths, run_id
from lib.runs.pipeline import resolve_device, run_london, summary_line
from lib.runs.profiles import PROFILES, Profile, get_profile
from lib.runs.records import REPO_ROOT, git_commit, read_record, results_root

# Seconds kept free before the deadline to stop the jobs and pack (at most a tenth of it).
PACKING_RESERVE_S = 20.0


def threads_per_job(n_jobs: int, cpus: int | None = None) -> int:
    """An equal share of the CPU for each concurrent process (at least one thread): left to
    themselves, every process starts a thread per core and they crowd each other out."""
    return max(1, (cpus or os.cpu_count() or 1) // n_jobs)


def packing_reserve(deadline: float) -> float:
    """Seconds before the deadline at which jobs are stopped, to stop them and pack in time."""
    return min(PACKING_RESERVE_S, 0.1 * deadline)


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


def _arguments() -> argparse.ArgumentParser:
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
    return ap


@dataclass
class Plan:
    """The checked arguments: what runs where, on which data."""

    device: torch.device
    profile: Profile
    jobs: list[Run]
    n_jobs: int
    data_folder: Path
    data: D.BirthplaceData


def _plan(ap: argparse.ArgumentParser, args: argparse.Namespace) -> Plan:
    """Every argument checked (a bad one ends here with its reason), the data loaded."""
    from lib.core.attention import available_variants

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
    return Plan(device, profile, jobs_for(variants, seeds, args.variant_seeds, recipes), n_jobs,
                data_folder, data)


def _report(entries: list[dict], plan: Plan, state: str, wall: float) -> int:
    """The summary table and each record's line; 1 when a job did not finish."""
    print(f"\nsummary ({wall:.0f} s wall):")
    for entry in entries:
        speed = ", ".join(f"{phase} {v} steps/s" for phase, v in entry.get("steps_per_second", {}).items())
        print(f"  {entry['run_id']:<40} {entry['status']:<24} {entry['seconds']:>7.0f} s  {speed}")
    base = plan.profile.name
    for where, rid in [(base, run_id("london"))] + [
            (job.profile(base), rid) for job in plan.jobs for rid in phases(job).values()]:
        path = RunPaths.of(where, rid).record
        if path.exists():
            print("  " + summary_line(read_record(path)))
    unfinished = [e for e in entries if e["status"] not in ("done", "already done")]
    if unfinished or state != "finished":
        print(f"{len(unfinished)} job(s) unfinished: "
              + ", ".join(f"{e['run_id']} ({e['status']})" for e in unfinished))
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the planned jobs to the deadline, packing every finished record as it goes."""
    started = time.time()  # the deadline counts from here: loading the data is part of it
    ap = _arguments()
    args = ap.parse_args(argv)
    plan = _plan(ap, args)
    profile, device = plan.profile, plan.device
    threads = threads_per_job(plan.n_jobs)
    on_gpu = device.type == "cuda"
    graphs = args.cuda_graphs and on_gpu
    epoch_checkpoints = not on_gpu if args.epoch_checkpoints is None else args.epoch_checkpoints
    name = torch.cuda.get_device_name(device) if on_gpu else "cpu"
    commit = git_commit()
    print(f"gpu-run: profile {profile.name} on {name}, {plan.n_jobs} concurrent job(s) (one "
          f"pretraining at a time), {threads} CPU thread(s) each, CUDA graphs "
          f"{'on' if graphs else 'off'}, epoch checkpoints {'on' if epoch_checkpoints else 'off'}"
          + (f", deadline {args.deadline:.0f} s" if args.deadline else ""), flush=True)
    print(f"data: {plan.data_folder}; commit: {commit}", flush=True)
    if commit == "unknown":
        print("warning: the records will name the commit 'unknown'; set BOOK_GIT_COMMIT where "
              "the repository travels without its git folder", flush=True)

    stop_at = (None if args.deadline is None
               else started + args.deadline - packing_reserve(args.deadline))
    summary_path = results_root() / profile.name / "gpu_run.json"
    earlier = read_summary(summary_path)
    data_folder = plan.data_folder
    invocation = {
        "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "state": "running",
        "device_name": name, "torch_version": torch.__version__,
        "python_version": platform.python_version(), "git_commit": commit, "jobs": plan.n_jobs,
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
    matrix = Matrix(profile.name, plan.jobs, plan.n_jobs, str(device), env, stop_at=stop_at,
                    force=args.force, changed=save, started=started)
    matrix.durations = earlier_durations(earlier, name)
    previous_handler = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        run_london(profile, data=plan.data, force=args.force)
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
    return _report(entries, plan, invocation["state"], time.time() - started)


if __name__ == "__main__":
    raise SystemExit(main())
