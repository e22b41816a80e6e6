"""torch.compile against eager for one float32 training step of a profile's model on the CPU.

    python benchmarks/cpu_compile.py              # the `cpu32` model, its batch of 128
    python benchmarks/cpu_compile.py --quick      # a tiny model and a few steps (tests)

The CPU profiles cut each length-grouped batch to its longest example, so a compiled model
meets a new shape at almost every step; it is compiled with dynamic shapes, and the record
keeps what the first step (compilation) and the first step at a second width cost besides
the steady-state speed, with inductor's on-disk caches off so that a rerun measures the
compilation again rather than a cache hit. Two copies of one model, eager and compiled,
take turns on the same batch (`cpu_bf16.training_setup`, `cpu_bf16.alternate`), so
background load hits both alike.
Writes `results/benchmarks/cpu_compile.json`.
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import os
import platform
import statistics
import sys
from functools import partial
from pathlib import Path

os.environ.setdefault("TORCHINDUCTOR_FORCE_DISABLE_CACHES", "1")  # before inductor loads

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.cpu_bf16 import alternate, step_seconds, training_setup  # noqa: E402
from lib.core.atomic import atomic_write_json  # noqa: E402
from lib.core.train.config import make_optimizer  # noqa: E402
from lib.runs.profiles import get_profile  # noqa: E402
from lib.runs.records import git_commit  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu32")
    ap.add_argument("--rounds", type=int, default=4, help="alternations of the two modes")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per mode and round")
    ap.add_argument("--quick", action="store_true", help="a tiny model, for the tests")
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/cpu_compile.json")
    args = ap.parse_args(argv)
    if args.rounds <= 0 or args.steps <= 0:
        ap.error("--rounds and --steps must be positive")
    eager, eager_opt, xb, yb = training_setup(args.profile, args.quick)
    twin = copy.deepcopy(eager)
    compiled = torch.compile(twin, dynamic=True)
    compiled_opt = make_optimizer(twin, get_profile(args.profile).pretrain)
    narrower = max(2, xb.shape[1] - 5)
    first = step_seconds(compiled, xb, yb, False, compiled_opt)  # compiles
    new_width = step_seconds(compiled, xb[:, :narrower], yb[:, :narrower], False, compiled_opt)
    step_seconds(eager, xb, yb, False, eager_opt)  # warm-up, untimed
    step_seconds(compiled, xb, yb, False, compiled_opt)
    times = alternate({"eager": partial(step_seconds, eager, xb, yb, False, eager_opt),
                       "compiled": partial(step_seconds, compiled, xb, yb, False, compiled_opt)},
                      args.rounds, args.steps)
    median = {mode: statistics.median(t) for mode, t in times.items()}
    record = {
        "what": "seconds per float32 training step (forward, backward, AdamW), eager against "
                "torch.compile with dynamic shapes, alternating on one batch",
        "profile": args.profile, "quick": args.quick, "batch": list(xb.shape),
        "threads": torch.get_num_threads(), "machine": platform.machine(),
        "torch_version": torch.__version__, "git_commit": git_commit(),
        "inductor_caches_disabled": os.environ["TORCHINDUCTOR_FORCE_DISABLE_CACHES"] == "1",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "first_compiled_step_seconds": first,
        "first_step_at_another_width_seconds": new_width, "other_width": narrower,
        "median_seconds": median, "compiled_speed_vs_eager": median["eager"] / median["compiled"],
        "seconds": times,
    }
    atomic_write_json(args.out, record)
    print(f"{args.profile}: eager {median['eager']:.3f} s/step, compiled {median['compiled']:.3f} "
          f"s/step ({record['compiled_speed_vs_eager']:.2f} times the eager speed); first "
          f"compiled step {first:.1f} s, first at width {narrower} {new_width:.1f} s "
          f"({torch.get_num_threads()} threads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
