"""Training and decoding speed of `lib` against the plain reference, measured side by side.

    python benchmarks/performance.py                       # CPU: mini-profile and full-size models
    python benchmarks/performance.py --quick               # fewer steps (tests)

Writes `results/benchmarks/performance_<device>.json` and prints a table. Every ratio is
lib/reference measured in the same process, alternating the two, on the same examples.
On a CUDA machine it also measures bf16 training with and without torch.compile and the
model FLOPs utilisation.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from reference import as_reference, reference_decode, reference_epoch_batches, reference_train_steps  # noqa: E402

from lib.core import data as D  # noqa: E402
from lib.core import datasets as DS  # noqa: E402
from lib.core.atomic import atomic_write_json  # noqa: E402
from lib.core.evaluate import decode_batched, question_prompts  # noqa: E402
from lib.core.model import GPT  # noqa: E402
from lib.core.train.config import make_optimizer  # noqa: E402
from lib.core.train.loop import train  # noqa: E402
from lib.runs.pipeline import model_config  # noqa: E402
from lib.runs.profiles import get_profile, world_for  # noqa: E402
from lib.runs.records import git_commit  # noqa: E402

# Dense bf16 peak of known GPUs (vendor datasheets), for model FLOPs utilisation.
PEAK_BF16 = {"H100": 989e12, "H200": 989e12, "A100": 312e12, "L4": 121e12, "T4": 65e12}


class Subset:
    """The first `n` documents of a span-corruption dataset (fresh draws each epoch)."""

    def __init__(self, dataset: DS.SpanCorruptionDataset, n: int) -> None:
        self.dataset, self.n = dataset, n

    def __len__(self) -> int:
        return self.n

    def epoch(self, generator):
        x, y = self.dataset.epoch(generator)
        return x[: self.n], y[: self.n]


def training_case(name: str, profile_name: str, data: D.BirthplaceData, steps: int, repeats: int,
                  device: torch.device) -> dict:
    """Seconds per epoch of `steps` batches: lib's loop vs the reference loop, alternating."""
    profile = get_profile(profile_name)
    cfg = replace(profile.pretrain, epochs=1, checkpoint_every=0, snapshots=0)
    world = world_for(profile, data)
    dataset = DS.SpanCorruptionDataset(world.corpus, data.vocab, profile.block_size)
    n = min(len(dataset), steps * cfg.batch_size)
    subset = Subset(dataset, n)
    config = model_config(profile, len(data.vocab), "vanilla")
    lib_times, ref_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        # Round 0 warms both paths up (kernel selection, allocator) and is not counted.
        for r in range(repeats + 1):
            torch.manual_seed(r)
            model = GPT(config)
            started = time.perf_counter()
            train(model, subset, cfg, seed=r, state_path=Path(tmp) / "s", device=device, progress=False)
            lib_times.append(time.perf_counter() - started)

            torch.manual_seed(r)
            ref = as_reference(GPT(config)).to(device)
            g = torch.Generator().manual_seed(r)
            x, y = subset.epoch(g)
            batches = reference_epoch_batches(n, cfg.batch_size, g)
            opt = make_optimizer(ref, cfg)
            ref_times.append(reference_train_steps(ref, x.to(device), y.to(device), batches, opt))
    lib_times, ref_times = lib_times[1:], ref_times[1:]
    lib_s, ref_s = statistics.median(lib_times), statistics.median(ref_times)
    tokens = n * (profile.block_size - 1)
    return {"case": name, "profile": profile_name, "examples": n, "batch_size": cfg.batch_size,
            "length_grouped": cfg.length_grouped, "parameters": GPT(config).num_parameters(),
            "lib_seconds": lib_times, "reference_seconds": ref_times,
            "lib_tokens_per_s": tokens / lib_s, "reference_tokens_per_s": tokens / ref_s,
            "speedup": ref_s / lib_s}


def decoding_case(name: str, model: GPT, data: D.BirthplaceData, questions: int, weights: str,
                  reference_every: int = 1) -> dict:
    """Dev-set greedy decoding: batched with KV cache vs one at a time, recomputing.

    The reference decodes each question independently, so its time for the whole set is
    its time on every `reference_every`-th question times `reference_every` (recorded as
    such); 1 measures every question.
    """
    rows = data.dev[:questions]
    prompts = question_prompts(rows, data.vocab)
    started = time.perf_counter()
    fast = decode_batched(model, prompts)
    lib_s = time.perf_counter() - started
    sample = list(range(0, len(prompts), reference_every))
    started = time.perf_counter()
    slow = [reference_decode(model, prompts[i]) for i in sample]
    ref_sample_s = time.perf_counter() - started
    ref_s = ref_sample_s * len(prompts) / len(sample)
    same = sum(fast[i].ids == s for i, s in zip(sample, slow, strict=True))
    return {"case": name, "questions": len(rows), "weights": weights,
            "generated_chars": sum(len(f.ids) for f in fast), "lib_seconds": lib_s,
            "reference_seconds": ref_s, "reference_questions_timed": len(sample),
            "reference_seconds_timed": ref_sample_s, "speedup": ref_s / lib_s,
            "identical_answers": same, "compared_answers": len(sample)}


def gpu_cases(data: D.BirthplaceData, steps: int) -> list[dict]:
    """bf16 training tokens/s and MFU on CUDA, eager and compiled."""
    out = []
    profile = get_profile("full")
    device = torch.device("cuda")
    dataset = DS.SpanCorruptionDataset(data.corpus, data.vocab, profile.block_size)
    name = torch.cuda.get_device_name()
    peak = next((v for k, v in PEAK_BF16.items() if k in name), None)
    for compiled in (False, True):
        cfg = replace(profile.pretrain, epochs=2, checkpoint_every=0, snapshots=0)
        subset = Subset(dataset, min(len(dataset), steps * cfg.batch_size))
        torch.manual_seed(0)
        model = GPT(model_config(profile, len(data.vocab), "vanilla"))
        with tempfile.TemporaryDirectory() as tmp:
            result = train(model, subset, cfg, seed=0, state_path=Path(tmp) / "s", device=device,
                           progress=False, compile_model=compiled, log_path=Path(tmp) / "log.jsonl",
                           log_every=1)
            log = [json.loads(line) for line in (Path(tmp) / "log.jsonl").read_text().splitlines()]
        # Time the second epoch only: the first includes compilation and warm-up.
        first_epoch_end = max(r["time"] for r in log if r["epoch"] == 1)
        tokens = sum(1 for r in log if r["epoch"] == 2) * cfg.batch_size * (profile.block_size - 1)
        seconds = result.wall_time - first_epoch_end
        tps = tokens / seconds
        n_params = model.num_parameters()
        flops_per_token = 6 * n_params + 12 * profile.n_layer * profile.n_embd * profile.block_size
        out.append({"case": f"full-size bf16 training, {'compiled' if compiled else 'eager'}",
                    "device": name, "tokens_per_s": tps,
                    "mfu": None if peak is None else tps * flops_per_token / peak})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="few steps and questions (for tests)")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    ap.add_argument("--decode-weights", type=Path, default=ROOT / "checkpoints/mini/pretrain_finetune-vanilla-seed0/model.safetensors")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = D.load()
    device = torch.device("cpu")
    steps, repeats, questions = (2, 1, 20) if args.quick else (6, 3, 500)
    cases = [training_case("training, mini profile (mini world, 128-dim)", "mini", data, steps, repeats, device),
             training_case("training, full size (256-dim, batch 128)", "full", data, max(1, steps // 2), repeats, device)]
    torch.manual_seed(0)
    random_full = GPT(model_config(get_profile("full"), len(data.vocab), "vanilla")).eval()
    cases.append(decoding_case("decoding, full size, untrained (32 chars each)", random_full, data, questions,
                               "random initialisation", reference_every=1 if args.quick else 5))
    if args.decode_weights.exists():
        from lib.runs.pipeline import load_model

        cases.append(decoding_case("decoding, finetuned mini-profile model", load_model(args.decode_weights), data,
                                   questions, str(args.decode_weights.relative_to(ROOT))))
    if torch.cuda.is_available():
        cases += gpu_cases(data, 20 if args.quick else 60)
    report = {"created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
              "machine": f"{platform.machine()}, {torch.get_num_threads()} threads",
              "cpu": platform.processor() or platform.machine(), "torch_version": torch.__version__,
              "python_version": platform.python_version(), "git_commit": git_commit(),
              "quick": args.quick, "cases": cases,
              "targets": {"training_speedup": 1.5, "decoding_speedup": 30}}
    kind = "cuda" if torch.cuda.is_available() else "cpu"
    out = args.out or ROOT / "results" / "benchmarks" / f"performance_{kind}.json"
    atomic_write_json(out, report)
    print(f"{'case':<55} {'lib s':>9} {'ref s':>9} {'ratio':>7}")
    for c in cases:
        if "speedup" in c:
            lib_s = statistics.median(c["lib_seconds"]) if isinstance(c["lib_seconds"], list) else c["lib_seconds"]
            ref_s = (statistics.median(c["reference_seconds"]) if isinstance(c["reference_seconds"], list)
                     else c["reference_seconds"])
            print(f"{c['case']:<55} {lib_s:9.2f} {ref_s:9.2f} {c['speedup']:6.1f}x")
        else:
            print(f"{c['case']:<55} {c['tokens_per_s']:,.0f} tokens/s, MFU {c['mfu']}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
