"""Does bf16 autocast hold the whole-data model on its plateau? Two measurements on the CPU.

    python benchmarks/bf16_plateau.py --snapshot PATH [--epochs 12]

PATH: the weights of a `cpu`-profile vanilla model part-way through pretraining (a
pretraining snapshot, `<checkpoints>/cpu/pretrain-vanilla-seed0/snapshots/epoch0200.safetensors`),
where the loss has sat near the data's bigram entropy for a hundred epochs.

1. Gradients: one batch of span-corruption examples, the loss's gradient computed in float64
   (the truth), float32 and under bf16 autocast, in eval mode so every pass sees the same
   network; the cosine of each parameter's gradient with the truth.
2. Training: from the same weights, `--epochs` epochs of the profile's pretraining at a
   fixed rate, once under bf16 autocast and once in float32 (same seed, same draws and batch
   order, a fresh optimizer each); the per-epoch mean loss of both.

Writes `results/benchmarks/bf16_plateau_cpu.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.core import data as D  # noqa: E402
from lib.core import datasets as DS  # noqa: E402
from lib.core.atomic import atomic_write_json  # noqa: E402
from lib.core.metrics_log import read_log  # noqa: E402
from lib.core.model import GPT  # noqa: E402
from lib.core.train.loop import train  # noqa: E402
from lib.runs.pipeline import model_config  # noqa: E402
from lib.runs.profiles import get_profile, world_for  # noqa: E402
from lib.runs.records import git_commit  # noqa: E402

WATCHED = ("tok_emb.weight", "pos_emb", "blocks.0.attn.qkv.weight", "blocks.0.mlp.fc.weight",
           "blocks.1.attn.qkv.weight", "blocks.2.attn.qkv.weight", "blocks.3.attn.qkv.weight",
           "head.weight")


def gradient_cosines(model_for, x, y) -> dict[str, dict[str, float]]:
    def grads(mode: str) -> dict[str, torch.Tensor]:
        model = model_for()
        model.eval()
        if mode == "float64":
            model = model.double()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "bf16"):
            logits, _ = model(x)
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).double(), y.reshape(-1),
                                   ignore_index=D.PAD_ID)
        loss.backward()
        return {n: p.grad.detach().double().flatten() for n, p in model.named_parameters()}

    truth = grads("float64")
    out = {}
    for mode in ("float32", "bf16"):
        got = grads(mode)
        out[mode] = {n: round(float(F.cosine_similarity(truth[n], got[n], dim=0)), 4)
                     for n in WATCHED if n in truth}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--snapshot", required=True, type=Path)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--learning-rate", type=float, default=5e-3)
    ap.add_argument("--out", type=Path, default=ROOT / "results/benchmarks/bf16_plateau_cpu.json")
    args = ap.parse_args()
    if not args.snapshot.is_file():
        raise SystemExit(f"no snapshot at {args.snapshot}")
    profile = get_profile("cpu")
    data = D.load()
    world = world_for(profile, data)
    dataset = DS.pretraining_dataset(world, data.vocab, profile.block_size)
    config = model_config(profile, len(data.vocab), "vanilla")
    weights = load_file(args.snapshot)

    def model_for() -> GPT:
        torch.manual_seed(0)
        model = GPT(config)
        model.load_state_dict(weights)
        return model

    x_all, y_all = dataset.epoch(torch.Generator().manual_seed(0))
    cosines = gradient_cosines(model_for, x_all[:48], y_all[:48])
    print(json.dumps(cosines, indent=1), flush=True)

    losses = {}
    for mode in ("bf16", "float32"):
        cfg = replace(profile.pretrain, epochs=args.epochs, learning_rate=args.learning_rate,
                      warmup_tokens=0, clamp_schedule=True, final_epochs=1e6,
                      cpu_bf16=mode == "bf16", snapshots=0)
        with tempfile.TemporaryDirectory() as scratch:
            log = Path(scratch) / "log.jsonl"
            train(model_for(), dataset, cfg, seed=0, state_path=Path(scratch) / "state",
                  log_path=log, description=mode, epoch_checkpoints=False)
            rows = read_log(log)
        by_epoch: dict[int, list[float]] = {}
        for row in rows:
            by_epoch.setdefault(row["epoch"], []).append(row["loss"])
        losses[mode] = [round(sum(v) / len(v), 4) for _, v in sorted(by_epoch.items())]
        print(mode, losses[mode], flush=True)

    atomic_write_json(args.out, {
        "what": __doc__.split("\n\n")[0], "snapshot": str(args.snapshot.name),
        "snapshot_sha256": hashlib.sha256(args.snapshot.read_bytes()).hexdigest(),
        "profile": "cpu", "epochs": args.epochs, "learning_rate": args.learning_rate,
        "gradient_cosine_with_float64": cosines, "epoch_loss": losses,
        "threads": torch.get_num_threads(), "torch_version": torch.__version__,
        "processor": platform.processor() or platform.machine(),
        "git_commit": git_commit(), "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    })
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
