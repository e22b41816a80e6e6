"""Is the whole-data loss plateau the schedule's or bf16's? Three pretraining curves side by side.

    python benchmarks/plateau_schedules.py STOPPED_LOG --commit COMMIT [--device NAME]

The whole-data pretraining runs with the classic model size sat near 2.4-2.5 nats per
character for hundreds of epochs. Two things differed from the classic code: bf16 autocast
and a stretched, clamped schedule (the cosine reaching its floor at the last epoch, 400,
instead of at epoch 200 and rising again). This puts three curves side by side:

- the `cpu` profile's seed 0 pretraining: bf16, the stretched clamped schedule (its record);
- a float32 run of that same schedule and model on the same CPU, stopped part-way
  (STOPPED_LOG: its metrics log, made at COMMIT; only its complete epochs are kept);
- the first `full` pretraining on the GPU: bf16, the classic schedule (its record, kept
  under `results/benchmarks/bf16_h200/`).

Writes `results/benchmarks/plateau_schedules.json`: per run, the mean logged loss and the
learning rate of every epoch, with each run's provenance.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.core.metrics_log import read_log  # noqa: E402
from lib.report.reading import epoch_curve  # noqa: E402
from lib.runs.records import records_by_seed, results_root  # noqa: E402


def _schedule(pretrain: dict) -> dict:
    keys = ("epochs", "final_epochs", "clamp_schedule", "learning_rate", "batch_size",
            "length_grouped", "cpu_bf16", "gpu_bf16")
    return {k: pretrain.get(k) for k in keys}


def _from_record(record: dict, log: Path, precision: str) -> dict:
    return {"precision": precision, "device": record["device_name"],
            "commit": record["git_commit"][:7], "stopped": False,
            "schedule": _schedule(record["config"]["pretrain"]),
            **epoch_curve(read_log(log))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stopped_log", type=Path, help="metrics log of the stopped float32 run")
    parser.add_argument("--commit", required=True, help="the commit that stopped run ran at")
    parser.add_argument("--device", default="cpu (x86_64, 2 cores, 2 threads)")
    args = parser.parse_args(argv)
    root = results_root()
    cpu = records_by_seed("cpu", "pretrain", "vanilla", root)[0]
    gpu_root = root / "benchmarks" / "bf16_h200"
    gpu = records_by_seed("full", "pretrain", "vanilla", gpu_root)[0]
    stopped = epoch_curve(read_log(args.stopped_log), complete_only=True)
    fp32_schedule = {**_schedule(cpu["config"]["pretrain"]), "cpu_bf16": False}
    out = {
        "what": "mean training loss per epoch of three whole-data pretrainings (classic model "
                "size, vanilla, seed 0): bf16 and float32 on the stretched clamped schedule, "
                "and bf16 on the classic schedule",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "runs": {
            "bf16, stretched clamped schedule (cpu)": _from_record(
                cpu, root / "cpu" / "pretrain-vanilla-seed0.metrics.jsonl", "bf16"),
            "float32, stretched clamped schedule (stopped)": {
                "precision": "float32", "device": args.device, "commit": args.commit,
                "stopped": True, "schedule": fp32_schedule, **stopped},
            "bf16, classic schedule (full, GPU)": _from_record(
                gpu, gpu_root / "full" / "pretrain-vanilla-seed0.metrics.jsonl", "bf16"),
        },
    }
    target = root / "benchmarks" / "plateau_schedules.json"
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
