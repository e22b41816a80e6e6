"""bf16 autocast against float32 for one training step of a profile's model on the CPU.

    python benchmarks/cpu_bf16.py                 # the `cpu` profile's model, batch 128
    python benchmarks/cpu_bf16.py --quick         # a tiny model and a few steps (tests)

Whether bf16 pays depends on the processor: with AVX512-BF16 or AMX the matrix products
run natively, without them autocast only adds casts. So the profile's choice is measured on
the machine that trains, and the record says which flags the CPU had. The two modes
alternate on the same batch of pretraining examples, so background load hits both alike.
Writes `results/benchmarks/cpu_bf16.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.core import data as D  # noqa: E402
from lib.core import datasets as DS  # noqa: E402
from lib.core.atomic import atomic_write_json  # noqa: E402
from lib.core.model import GPT, GPTConfig  # noqa: E402
from lib.core.train.config import make_optimizer  # noqa: E402
from lib.runs.pipeline import model_config  # noqa: E402
from lib.runs.profiles import get_profile, world_for  # noqa: E402
from lib.runs.records import git_commit  # noqa: E402


def cpu_flags() -> list[str]:
    """The bf16-related instruction sets the CPU reports (Linux only; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines()
                  if line.startswith("flags")), [])
    return sorted(f for f in flags if "bf16" in f or f.startswith("amx") or f == "avx512f")


def busy_share(seconds: float = 2.0) -> float | None:
    """The share of all CPUs' time spent busy over the next `seconds` (from /proc/stat; None
    where there is none). Unlike the load average, which lags by a minute, it says whether
    other work runs now."""
    def times() -> tuple[int, int]:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
        return sum(fields), fields[3] + fields[4]  # all jiffies, idle + iowait

    try:
        total0, idle0 = times()
        time.sleep(seconds)
        total1, idle1 = times()
    except (OSError, ValueError, IndexError):
        return None
    total = total1 - total0
    return 1 - (idle1 - idle0) / total if total > 0 else None


def step_seconds(model: GPT, x: torch.Tensor, y: torch.Tensor, bf16: bool, optimizer) -> float:
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        logits, _ = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), y.reshape(-1),
                               ignore_index=D.PAD_ID)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return time.perf_counter() - started


def typical_batch(profile, data: D.BirthplaceData, config: GPTConfig,
                  batch: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A full batch of the examples nearest the median length of one pretraining epoch, cut
    to its longest, as length grouping forms batches."""
    dataset = DS.SpanCorruptionDataset(world_for(profile, data).corpus, data.vocab, config.block_size)
    x, y = dataset.epoch(torch.Generator().manual_seed(0))
    lengths = (x != D.PAD_ID).sum(1)
    rows = torch.argsort((lengths - lengths.median()).abs(), stable=True)[:batch]
    width = int(lengths[rows].max())
    return x[rows, :width], y[rows, :width]


def training_setup(profile_name: str, quick: bool = False):
    """The profile's model (a tiny one with `quick`, for the tests), its optimizer and a
    typical batch: what the step benchmarks time."""
    profile = get_profile(profile_name)
    data = D.load()
    config = model_config(profile, len(data.vocab), "vanilla")
    batch = profile.pretrain.batch_size
    if quick:
        config = GPTConfig(**{**config.to_dict(), "n_layer": 1, "n_embd": 32, "n_head": 2})
        batch = 8
    xb, yb = typical_batch(profile, data, config, batch)
    torch.manual_seed(0)
    model = GPT(config)
    return model, make_optimizer(model, profile.pretrain), xb, yb


def alternate(steps: dict[str, Callable[[], float]], rounds: int,
              per_round: int) -> dict[str, list[float]]:
    """Seconds of each mode's timed step, `per_round` steps of each mode in turn for `rounds`
    rounds, so background load falls on every mode alike."""
    times: dict[str, list[float]] = {mode: [] for mode in steps}
    for _ in range(rounds):
        for mode, step in steps.items():
            times[mode] += [step() for _ in range(per_round)]
    return times


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="cpu")
    ap.add_argument("--rounds", type=int, default=4, help="alternations of the two modes")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per mode and round")
    ap.add_argument("--quick", action="store_true", help="a tiny model, for the tests")
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/cpu_bf16.json")
    args = ap.parse_args(argv)
    if args.rounds <= 0 or args.steps <= 0:
        ap.error("--rounds and --steps must be positive")
    # Whether other work shared the cores: the ratio measured beside a training job may
    # differ from an idle machine's, so the record keeps how busy the CPUs were just before.
    busy_before = busy_share()
    model, optimizer, xb, yb = training_setup(args.profile, args.quick)
    for bf16 in (False, True):  # warm-up, untimed
        step_seconds(model, xb, yb, bf16, optimizer)
    times = alternate({mode: partial(step_seconds, model, xb, yb, mode == "bf16", optimizer)
                       for mode in ("float32", "bf16")}, args.rounds, args.steps)
    median = {mode: statistics.median(t) for mode, t in times.items()}
    record = {
        "what": "seconds per training step (forward, backward, AdamW), float32 against bf16 "
                "autocast, alternating on one batch",
        "profile": args.profile, "quick": args.quick, "batch": list(xb.shape),
        "threads": torch.get_num_threads(), "cpu_flags": cpu_flags(),
        "cpu_busy_before": busy_before, "cpus": os.cpu_count(),
        "machine": platform.machine(), "processor": platform.processor(),
        "torch_version": torch.__version__, "git_commit": git_commit(),
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "median_seconds": median, "speedup": median["float32"] / median["bf16"],
        "seconds": times,
    }
    atomic_write_json(args.out, record)
    print(f"{args.profile}: float32 {median['float32']:.3f} s/step, bf16 {median['bf16']:.3f} s/step, "
          f"bf16 is {record['speedup']:.2f} times as fast ({torch.get_num_threads()} threads; "
          f"CPU flags {', '.join(record['cpu_flags']) or 'none'})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
