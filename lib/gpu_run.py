"""`make gpu-run`: the whole experiment matrix of a profile on one machine, as fast as it allows.

Runs the London baseline, then every (kind, variant, seed) job as its own process,
several at once (small models leave a large GPU mostly idle, so concurrent processes
overlap their kernel launches). Needs only torch and `lib`: no Jupyter, no papermill;
the stored notebooks are rendered from the records afterwards. Results land exactly
where the CPU path writes them. On a machine without CUDA it runs the same jobs on the
CPU, which is how the tests exercise it with the smoke profile.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from lib.atomic import atomic_write_json
from lib.profiles import PROFILES, get_profile
from lib.records import REPO_ROOT, read_record, record_path, results_root


def jobs_for(profile: str, variants: list[str], seeds: list[int], variant_seeds: list[int]) -> list[tuple]:
    """(kind, variant, seed) jobs: vanilla over all seeds first, research variants after."""
    jobs = []
    for seed in seeds:
        jobs.append(("pretrain_finetune", "vanilla", seed))
        jobs.append(("finetune", "vanilla", seed))
    for variant in variants:
        if variant != "vanilla":
            jobs += [("pretrain_finetune", variant, seed) for seed in variant_seeds]
    return jobs


def run_job(job: tuple, profile: str, device: str, log_dir: Path, force: bool, compile_model: bool) -> dict:
    kind, variant, seed = job
    rid = f"{kind}-{variant}-seed{seed}"
    log = log_dir / f"{rid}.log"
    cmd = [sys.executable, "-m", "lib", "run", kind, "--profile", profile, "--variant", variant,
           "--seed", str(seed), "--device", device, "--no-progress"]
    if force:
        cmd.append("--force")
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    if compile_model:
        env["BOOK_COMPILE"] = "1"
    started = time.time()
    with open(log, "w") as handle:
        code = subprocess.run(cmd, cwd=REPO_ROOT, stdout=handle, stderr=subprocess.STDOUT,
                              env=env).returncode
    status = {"run_id": rid, "returncode": code, "seconds": round(time.time() - started, 1),
              "log": str(log)}
    print(f"  {'done' if code == 0 else 'FAILED'}: {rid} in {status['seconds']} s", flush=True)
    if code:
        print("".join(log.read_text().splitlines(keepends=True)[-15:]), flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    import torch

    from lib.attention import available_variants
    from lib.pipeline import resolve_device, run_london, summary_line

    ap = argparse.ArgumentParser(prog="python -m lib.gpu_run", description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=sorted(PROFILES), default="full")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--jobs", type=int, default=None, help="concurrent processes (default: 6 on "
                    "CUDA, 1 on CPU)")
    ap.add_argument("--seeds", type=int, nargs="+", default=None)
    ap.add_argument("--variants", nargs="+", default=None, help="default: every registered variant")
    ap.add_argument("--variant-seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--force", action="store_true")
    ap.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    args = ap.parse_args(argv)

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
    n_jobs = args.jobs if args.jobs is not None else (6 if device.type == "cuda" else 1)
    if n_jobs <= 0:
        ap.error("--jobs must be positive")
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
    print(f"gpu-run: profile {profile.name} on {name}, {n_jobs} concurrent jobs", flush=True)
    started = time.time()
    log_dir = results_root() / profile.name / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    run_london(profile, force=args.force)
    jobs = jobs_for(profile.name, variants, seeds, args.variant_seeds)
    with ThreadPoolExecutor(max_workers=n_jobs) as pool:
        statuses = list(pool.map(lambda j: run_job(j, profile.name, str(device), log_dir,
                                                   args.force, args.compile), jobs))
    wall = time.time() - started
    failed = [s for s in statuses if s["returncode"]]
    atomic_write_json(results_root() / profile.name / "gpu_run.json", {
        "profile": profile.name, "device_name": name, "jobs": n_jobs, "wall_time": wall,
        "torch_version": torch.__version__, "runs": statuses})
    print(f"\nsummary ({wall:.0f} s wall):")
    for rid in ["london"] + [s["run_id"] for s in statuses]:
        path = record_path(profile.name, rid)
        if path.exists():
            print("  " + summary_line(read_record(path)))
            if rid.startswith("pretrain_finetune"):
                pre = record_path(profile.name, rid.replace("pretrain_finetune", "pretrain"))
                if pre.exists():
                    print("  " + summary_line(read_record(pre)))
    if failed:
        print(f"{len(failed)} job(s) failed: {', '.join(s['run_id'] for s in failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
