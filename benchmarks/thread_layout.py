"""Two cores, two ways to use them: one training process with two threads, or two
single-thread processes side by side (two seeds at once). Which trains more steps per second?

    python benchmarks/thread_layout.py              # the cpu32 profile's model, float32
    python benchmarks/thread_layout.py --quick      # a tiny model and a few steps (tests)

Matrix products rarely scale perfectly over threads, while two processes share nothing but
memory bandwidth, so the second layout can win in throughput even though each of its runs
takes longer. Each layout times the same training step (forward, backward, AdamW on one
full batch of the examples nearest the median length) in fresh processes. The layouts take
turns, round after round, on an otherwise idle machine, so a slow spell of a shared host
shows up as spread between rounds rather than as a difference between layouts. Writes
`results/benchmarks/thread_layout_cpu.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

LAYOUTS = {"one process, 2 threads": [2], "one process, 1 thread": [1],
           "two processes, 1 thread each": [1, 1]}


def worker(profile_name: str, steps: int, quick: bool) -> list[float]:
    """Seconds per training step in this process (threads set by the caller's environment)."""
    from benchmarks.cpu_bf16 import step_seconds, training_setup

    model, optimizer, xb, yb = training_setup(profile_name, quick)
    print(json.dumps({"batch": list(xb.shape)}))
    step_seconds(model, xb, yb, False, optimizer)  # warm-up, untimed
    return [step_seconds(model, xb, yb, False, optimizer) for _ in range(steps)]


def run_layout(threads: list[int], profile: str, steps: int, quick: bool) -> list[dict]:
    """Start one worker per entry of `threads` at once; each one's batch shape and step times."""
    procs = []
    for n in threads:
        env = dict(os.environ, OMP_NUM_THREADS=str(n), MKL_NUM_THREADS=str(n))
        cmd = [sys.executable, __file__, "--worker", "--profile", profile, "--steps", str(steps)]
        procs.append(subprocess.Popen(cmd + (["--quick"] if quick else []), env=env,
                                      stdout=subprocess.PIPE, text=True))
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"a worker failed (exit {p.returncode})")
        lines = [json.loads(line) for line in stdout.strip().splitlines()]
        out.append({"batch": lines[0]["batch"], "seconds": lines[-1]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu32")
    ap.add_argument("--rounds", type=int, default=3, help="turns of the three layouts")
    ap.add_argument("--steps", type=int, default=8, help="timed steps per process and turn")
    ap.add_argument("--quick", action="store_true", help="a tiny model, for the tests")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/thread_layout_cpu.json")
    args = ap.parse_args(argv)
    if args.steps <= 0 or args.rounds <= 0:
        ap.error("--rounds and --steps must be positive")
    if args.worker:
        print(json.dumps(worker(args.profile, args.steps, args.quick)))
        return 0

    from lib.core.atomic import atomic_write_json
    from lib.runs.records import git_commit

    rounds = []
    for _ in range(args.rounds):
        layouts = {}
        for name, threads in LAYOUTS.items():
            runs = run_layout(threads, args.profile, args.steps, args.quick)
            medians = [statistics.median(r["seconds"]) for r in runs]
            layouts[name] = {"threads": threads, "batch": runs[0]["batch"],
                             "median_seconds_per_step": medians,
                             "steps_per_second": sum(1 / m for m in medians),
                             "seconds": [r["seconds"] for r in runs]}
            print(f"{name}: {', '.join(f'{m:.3f}' for m in medians)} s/step, "
                  f"{layouts[name]['steps_per_second']:.3f} steps/s in all", flush=True)
        rounds.append(layouts)
    ratios = {name: [r[name]["steps_per_second"] / r["one process, 2 threads"]["steps_per_second"]
                     for r in rounds] for name in LAYOUTS}
    record = {
        "what": "training steps per second on two cores: one process with two threads against "
                "two single-thread processes at once (float32, one batch of the median length)",
        "profile": args.profile, "quick": args.quick, "cpu_count": os.cpu_count(),
        "git_commit": git_commit(), "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "rounds": rounds,
        "throughput_vs_two_threads": ratios,
    }
    atomic_write_json(args.out, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
