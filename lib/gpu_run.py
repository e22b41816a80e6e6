"""`make gpu-run`: the whole experiment matrix of a profile on one machine, as fast as it allows.

Runs the London baseline, then every (kind, variant, seed) job as its own process, a few at
once, longest first. A model this small leaves the GPU waiting on the host that launches
its kernels, so a second and third process fill those gaps; the GPU runs one process's
kernels at a time, though, so many processes only add switching. Each process gets an
equal share of the CPU threads. Needs only torch and `lib`: no Jupyter, no papermill; the
stored notebooks are rendered from the records afterwards. Results land exactly where the
CPU path writes them. On a machine without CUDA it runs the same jobs on the CPU, which is
how the tests exercise it with the smoke profile.

A lent machine is lent for minutes, so `--deadline` ends the run in time (unfinished jobs
are stopped; their records are not written, their checkpoints stay) and `--pack` puts
every record, log and the run's own summary, with each job's training speed, into one
archive, finished or not.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from lib.atomic import atomic_write_json
from lib.pipeline import RunPaths, resolve_device, run_id, run_london, summary_line
from lib.profiles import PROFILES, get_profile
from lib.records import REPO_ROOT, read_record, results_root


def jobs_for(profile: str, variants: list[str], seeds: list[int], variant_seeds: list[int]) -> list[tuple]:
    """(kind, variant, seed) jobs, longest first: vanilla pretrain + finetune over all seeds,
    then the research variants', then the short finetunes without pretraining."""
    jobs = [("pretrain_finetune", "vanilla", seed) for seed in seeds]
    for variant in variants:
        if variant != "vanilla":
            jobs += [("pretrain_finetune", variant, seed) for seed in variant_seeds]
    jobs += [("finetune", "vanilla", seed) for seed in seeds]
    return jobs


def threads_per_job(n_jobs: int, cpus: int | None = None) -> int:
    """An equal share of the CPU for each concurrent process (at least one thread): left to
    themselves, every process starts a thread per core and they crowd each other out."""
    return max(1, (cpus or os.cpu_count() or 1) // n_jobs)


def phases(job: tuple) -> dict[str, str]:
    """The training phases of a (kind, variant, seed) job and the run id of each (pretrain +
    finetune has two, each with its own record and metrics log)."""
    kind, variant, seed = job
    if kind == "pretrain_finetune":
        return {"pretrain": run_id("pretrain", variant, seed), "finetune": run_id(kind, variant, seed)}
    return {kind: run_id(kind, variant, seed)}


def training_speed(profile: str, job: tuple) -> dict[str, float]:
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
        # Between the first and last log lines: a resumed run's clock restarts, its step count
        # does not.
        if last["time"] > first["time"]:
            speed[phase] = round((last["step"] - first["step"]) / (last["time"] - first["time"]), 1)
    return speed


def graph_use(profile: str, job: tuple) -> dict[str, dict]:
    """Each finished training phase's CUDA-graph summary (replayed steps, capture failure)."""
    use = {}
    for phase, rid in phases(job).items():
        path = RunPaths.of(profile, rid).record
        if path.exists():
            use[phase] = read_record(path).get("cuda_graphs")
    return use


class Deadline:
    """Wall-clock seconds from now; None means no limit."""

    def __init__(self, seconds: float | None) -> None:
        self.at = None if seconds is None else time.time() + seconds

    def left(self) -> float | None:
        return None if self.at is None else self.at - time.time()

    def passed(self) -> bool:
        left = self.left()
        return left is not None and left <= 0


def run_job(job: tuple, profile: str, device: str, log_dir: Path, force: bool, compile_model: bool,
            threads: int = 1, deadline: Deadline | None = None, cuda_graphs: bool = False) -> dict:
    kind, variant, seed = job
    rid = run_id(kind, variant, seed)
    deadline = deadline or Deadline(None)
    if deadline.passed():
        print(f"  not started (deadline): {rid}", flush=True)
        return {"run_id": rid, "returncode": None, "status": "not started", "seconds": 0.0}
    log = log_dir / f"{rid}.log"
    cmd = [sys.executable, "-m", "lib", "run", kind, "--profile", profile, "--variant", variant,
           "--seed", str(seed), "--device", device, "--no-progress"]
    if force:
        cmd.append("--force")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    if compile_model:
        env["BOOK_COMPILE"] = "1"
    env["BOOK_CUDA_GRAPHS"] = "1" if cuda_graphs else "0"
    started = time.time()
    with open(log, "w") as handle:
        proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT, env=env)
        try:
            code = proc.wait(timeout=deadline.left())
            status = "done" if code == 0 else "failed"
        except subprocess.TimeoutExpired:
            # Stopped, not failed: the training state stays on disk for a later attempt.
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            code, status = None, "stopped at the deadline"
    result = {"run_id": rid, "returncode": code, "status": status,
              "seconds": round(time.time() - started, 1), "log": str(log),
              "steps_per_second": training_speed(profile, job), "cuda_graphs": graph_use(profile, job)}
    print(f"  {status}: {rid} in {result['seconds']} s", flush=True)
    if status == "failed":
        print("".join(log.read_text().splitlines(keepends=True)[-15:]), flush=True)
    return result


def pack(profile: str, archive: Path) -> Path:
    """Every file under results/<profile> (records, predictions, metrics and job logs, the
    run's summary) in one gzipped tar, paths relative to the repository root."""
    folder = results_root() / profile
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=str(Path("results") / profile / path.relative_to(folder)))
    partial.replace(archive)
    return archive


def main(argv: list[str] | None = None) -> int:
    from lib.attention import available_variants

    ap = argparse.ArgumentParser(prog="python -m lib.gpu_run", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=None, help="concurrent processes (default: 3 on "
                    "CUDA, 1 on CPU)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--variants", nargs="+", default=None, help="default: every registered variant")
    ap.add_argument("--variant-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    ap.add_argument("--no-cuda-graphs", dest="cuda_graphs", action="store_false",
                    help="launch every kernel from Python instead of replaying each full-batch "
                    "training step as a CUDA graph (the default on a GPU)")
    ap.add_argument("--deadline", type=float, default=None, metavar="SECONDS",
                    help="stop unfinished jobs after this many seconds (their records are not "
                    "written; a later run resumes them from their checkpoints)")
    ap.add_argument("--pack", type=Path, default=None, metavar="ARCHIVE.tgz",
                    help="afterwards, put results/<profile> (records, logs, summary) in one archive")
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
    seeds = args.seeds if args.seeds is not None else list(profile.seeds)
    if any(seed < 0 for seed in seeds + args.variant_seeds):
        ap.error("seeds must be non-negative integers")
    n_jobs = args.jobs if args.jobs is not None else (3 if device.type == "cuda" else 1)
    if n_jobs <= 0:
        ap.error("--jobs must be positive")
    threads = threads_per_job(n_jobs)
    graphs = args.cuda_graphs and device.type == "cuda"
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    print(f"gpu-run: profile {profile.name} on {name}, {n_jobs} concurrent jobs, {threads} CPU "
          f"thread(s) each, CUDA graphs {'on' if graphs else 'off'}"
          + (f", deadline {args.deadline:.0f} s" if args.deadline else ""), flush=True)
    started = time.time()
    deadline = Deadline(args.deadline)
    log_dir = results_root() / profile.name / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    run_london(profile, force=args.force)
    jobs = jobs_for(profile.name, variants, seeds, args.variant_seeds)
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        statuses = list(pool.map(lambda j: run_job(j, profile.name, str(device), log_dir,
                                                   args.force, args.compile, threads, deadline,
                                                   graphs),
                                 jobs))
    wall = time.time() - started
    unfinished = [s for s in statuses if s["status"] != "done"]
    atomic_write_json(results_root() / profile.name / "gpu_run.json", {
        "profile": profile.name, "device_name": name, "jobs": n_jobs, "threads_per_job": threads,
        "cuda_graphs": graphs,
        "deadline": args.deadline, "wall_time": wall, "torch_version": torch.__version__,
        "runs": statuses})
    print(f"\nsummary ({wall:.0f} s wall):")
    for s in statuses:
        speed = ", ".join(f"{phase} {v} steps/s" for phase, v in s.get("steps_per_second", {}).items())
        print(f"  {s['run_id']:<40} {s['status']:<24} {s['seconds']:>7.0f} s  {speed}")
    finished = [run_id("london")] + [rid for job in jobs for rid in phases(job).values()]
    for rid in finished:
        path = RunPaths.of(profile.name, rid).record
        if path.exists():
            print("  " + summary_line(read_record(path)))
    if args.pack is not None:
        print(f"packed: {pack(profile.name, args.pack)}")
    if unfinished:
        print(f"{len(unfinished)} job(s) unfinished: "
              + ", ".join(f"{s['run_id']} ({s['status']})" for s in unfinished))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
