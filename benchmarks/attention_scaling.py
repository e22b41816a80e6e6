"""How the time and memory of one attention layer grow with the sequence length, per variant.

    python benchmarks/attention_scaling.py --out results/benchmarks/attention_scaling_cpu.json

For each registered variant (plus the non-causal naive Linformer as a reference) and each
length n, one layer with n_embd 256, 8 heads and block_size = n runs forward + backward on
a batch of one sequence, in training mode with dropout 0 (the same arithmetic as eval, plus
the saved activations that backward needs). Reported per (variant, n):

- time: median (and min) over `repeats` timed runs after `warmup` untimed ones;
- memory: the extra memory one forward + backward needs above what was live before it
  (gradients of the parameters and input included, since they are freed beforehand).
  On CUDA: `torch.cuda.max_memory_allocated()` minus the allocation before the step.
  On the CPU: the peak of live tensor bytes during the step, replayed from the allocation
  and free events of `torch.profiler`'s memory profile; that counts the same thing as the
  CUDA number (tensors, including activations saved for backward), not allocator caches
  or library scratch. As a cross-check, `rss_bytes` records the rise of the process's peak
  resident set size (Linux VmHWM, reset through /proc/self/clear_refs after `malloc_trim`):
  everything the step made resident, in pages, which glibc's reuse of freed memory and
  library scratch make noisier.
- the CPU runs on `--threads` threads (default 1): on a small shared machine, a thread
  pool waiting at barriers for a descheduled thread measures the neighbours, not the
  layer. The load average at start and end is recorded beside the times.

Slopes are least-squares fits of log(time) and log(memory) against log(n) over the
lengths >= `fit_from`, where fixed per-call costs no longer dominate; ratios divide each
variant's numbers by vanilla's at the same n, measured in the same run with the timed
repeats interleaved across variants.

Importable: `run_benchmark(...)` returns the record that the command writes as JSON, and
`load(path)` reads one back.
"""

from __future__ import annotations

import argparse
import ctypes
import datetime as dt
import functools
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # running as a script from anywhere
    sys.path.insert(0, str(REPO))

from lib.core.attention import (  # noqa: E402
    AttentionSpec,
    NaiveLinformerAttention,  # noqa: E402
    available_variants,
    build_attention,
)

N_EMBD, N_HEAD = 256, 8
REFERENCE = "linformer_naive"  # not causal: shown for what compression costs without causality


def build_layer(name: str, n: int, device: str) -> nn.Module:
    spec = AttentionSpec(n_embd=N_EMBD, n_head=N_HEAD, block_size=n)
    layer = NaiveLinformerAttention(spec) if name == REFERENCE else build_attention(name, spec)
    return layer.to(device).train()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> None:
    _clear_grads(layer, x)
    layer(x).backward(grad)


def time_step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, device: str,
              warmup: int, repeats: int) -> list[float]:
    """Wall-clock seconds of `repeats` forward + backward passes, after `warmup` ones."""
    for _ in range(warmup):
        _step(layer, x, grad)
    _sync(device)
    return _timed(lambda: _step(layer, x, grad), device, repeats)


def _timed(fn, device: str, repeats: int) -> list[float]:
    """Wall-clock seconds of each of `repeats` calls, waiting for the device after each."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


_KIB = 1024


def _vm_kib(field: str) -> int:
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.M).group(1))


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _clear_grads(layer: nn.Module, x: torch.Tensor) -> None:
    for p in layer.parameters():
        p.grad = None
    x.grad = None


def peak_memory(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor, device: str) -> dict:
    """Bytes one forward + backward needs above what was live before it (see module doc).

    Returns {"tensor_bytes": ..., "rss_bytes": ...}; a measure this platform lacks is None.
    """
    _step(layer, x, grad)  # warm: lazy initialisation is not part of the step
    _clear_grads(layer, x)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        layer(x).backward(grad)
        torch.cuda.synchronize()
        return {"tensor_bytes": torch.cuda.max_memory_allocated() - before, "rss_bytes": None}
    return {"tensor_bytes": _cpu_tensor_peak(layer, x, grad), "rss_bytes": _cpu_rss_peak(
        layer, x, grad)}


def _cpu_tensor_peak(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> int | None:
    """Peak bytes of live tensors during the step, from the profiler's allocation events.

    Uses `torch.profiler`'s memory profile (a private API); None if this torch lacks it.
    """
    try:
        from torch.profiler import ProfilerActivity, profile
        from torch.profiler._memory_profiler import Action
    except ImportError:
        return None
    _clear_grads(layer, x)
    try:
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True,
                     record_shapes=True, with_stack=True) as prof:
            layer(x).backward(grad)
        live = peak = 0
        for _, action, _, size in prof._memory_profile().timeline:
            if action == Action.CREATE:
                live += size
            elif action == Action.DESTROY:
                live -= size
            peak = max(peak, live)
    except Exception:  # noqa: BLE001 - a private API: its absence is not the benchmark's failure
        return None
    return peak


def _cpu_rss_peak(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> int | None:
    """Rise of the peak resident set size (Linux VmHWM) during the step."""
    if not sys.platform.startswith("linux"):
        return None
    _clear_grads(layer, x)
    _malloc_trim()
    if not _reset_peak_rss():
        return None
    before = _vm_kib("VmRSS")
    layer(x).backward(grad)
    return (_vm_kib("VmHWM") - before) * _KIB


def fit_slope(lengths: list[int], values: list[float]) -> float | None:
    """Least-squares slope of log(value) against log(length); None with fewer than 2 points."""
    pairs = [(math.log(n), math.log(v)) for n, v in zip(lengths, values, strict=True) if v > 0]
    if len(pairs) < 2:
        return None
    mx = statistics.fmean(p[0] for p in pairs)
    my = statistics.fmean(p[1] for p in pairs)
    sxx = sum((p[0] - mx) ** 2 for p in pairs)
    return sum((p[0] - mx) * (p[1] - my) for p in pairs) / sxx


def machine_info(device: str) -> dict:
    info = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "device": device,
        "device_name": torch.cuda.get_device_name(device) if device.startswith("cuda")
        else _cpu_model(),
    }
    return info


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.M)
    return match.group(1).strip() if match else platform.machine()


def _load_average() -> list[float] | None:
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


def run_benchmark(
    lengths: list[int],
    variants: list[str],
    device: str = "cpu",
    warmup: int = 1,
    repeats: int = 5,
    fit_from: int = 512,
    max_seconds_per_step: float = 20.0,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict:
    """Measure every variant at every length and summarise; see the module doc.

    At each length the timed runs are interleaved (repeat 1 of every variant, then repeat
    2, ...), so a burst of load from elsewhere falls on all variants alike rather than on
    whichever happened to run then; this keeps the ratios against vanilla fair.
    """
    results: dict[str, dict] = {
        v: {"lengths": [], "time_s": [], "time_min_s": [], "memory_bytes": [], "rss_bytes": [],
            "skipped": []}
        for v in variants
    }
    too_slow: set[str] = set()
    load_start = _load_average()
    wall = time.perf_counter()
    for n in lengths:
        cases = {}
        for name in variants:
            if name in too_slow:
                results[name]["skipped"].append(n)
                continue
            torch.manual_seed(seed)
            layer = build_layer(name, n, device)
            x = torch.randn(1, n, N_EMBD, device=device, requires_grad=True)
            grad = torch.randn(1, n, N_EMBD, device=device)
            cases[name] = (layer, x, grad, time_step(layer, x, grad, device, warmup, 0))
        for _ in range(repeats):
            for layer, x, grad, times in cases.values():
                times.extend(time_step(layer, x, grad, device, 0, 1))
        for name, (layer, x, grad, times) in cases.items():
            memory = peak_memory(layer, x, grad, device)
            entry = results[name]
            entry["lengths"].append(n)
            entry["time_s"].append(statistics.median(times))
            entry["time_min_s"].append(min(times))
            entry["memory_bytes"].append(memory["tensor_bytes"])
            entry["rss_bytes"].append(memory["rss_bytes"])
            log(f"{name:>16} n={n:5d}  {1e3 * statistics.median(times):9.2f} ms  "
                f"tensors {_mib(memory['tensor_bytes'])}  rss {_mib(memory['rss_bytes'])}")
            if statistics.median(times) > max_seconds_per_step:
                too_slow.add(name)
        del cases
    summary = _summarise(results, fit_from)
    return {
        "benchmark": "attention_scaling",
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": machine_info(device),
        "settings": {
            "n_embd": N_EMBD, "n_head": N_HEAD, "batch": 1, "dtype": "float32",
            "mode": "train, dropout 0", "warmup": warmup, "repeats": repeats,
            "fit_from": fit_from, "seed": seed, "lengths": lengths,
            "memory_measure": "torch.cuda.max_memory_allocated rise" if device.startswith("cuda")
            else "peak live tensor bytes (torch.profiler memory profile)",
            "rss_measure": None if device.startswith("cuda")
            else "rise of peak resident set size (VmHWM, reset via /proc/self/clear_refs)",
            "time_measure": "median wall-clock seconds of forward+backward",
        },
        "load_average": {"start": load_start, "end": _load_average()},
        "wall_seconds": time.perf_counter() - wall,
        "variants": results,
        "summary": summary,
    }


def _mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:8.1f} MiB"


def _summarise(results: dict[str, dict], fit_from: int) -> dict:
    base = results.get("vanilla")
    summary = {}
    for name, entry in results.items():
        fit = [i for i, n in enumerate(entry["lengths"]) if n >= fit_from]
        lengths = [entry["lengths"][i] for i in fit]
        mems = [entry["memory_bytes"][i] for i in fit]
        item = {
            "fit_lengths": lengths,
            "time_slope": fit_slope(lengths, [entry["time_s"][i] for i in fit]),
            "memory_slope": None if None in mems else fit_slope(lengths, mems),
        }
        if base is not None:
            time_ratio, mem_ratio = {}, {}
            for i, n in enumerate(entry["lengths"]):
                if n in base["lengths"]:
                    j = base["lengths"].index(n)
                    time_ratio[str(n)] = entry["time_s"][i] / base["time_s"][j]
                    m, mb = entry["memory_bytes"][i], base["memory_bytes"][j]
                    mem_ratio[str(n)] = m / mb if m is not None and mb else None
            item["time_ratio_vs_vanilla"] = time_ratio
            item["memory_ratio_vs_vanilla"] = mem_ratio
        summary[name] = item
    return summary


# ----------------------------------------------------------------- flex attention check


def flex_attention_check(lengths: list[int], device: str = "cpu", repeats: int = 5) -> dict:
    """Can BigBird's mask run through `flex_attention` here, and does it skip masked blocks?

    Times forward passes only (no grad) of the attention core on the same q, k, v: flex
    attention with BigBird's block mask, flex attention with the dense causal mask, our
    gathered BigBird core (`BigBirdAttention.attend`), and causal SDPA; and records whether
    flex attention's backward runs on this device.
    """
    from lib.core.attention import BigBirdAttention, bigbird_key_blocks

    try:
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
    except ImportError as error:
        return {"available": False, "error": str(error)}
    out: dict = {"available": True, "device": device, "lengths": [], "forward_ms": {}}
    compiled = torch.compile(flex_attention)
    start = time.perf_counter()
    for n in lengths:
        torch.manual_seed(0)
        spec = AttentionSpec(n_embd=N_EMBD, n_head=N_HEAD, block_size=n)
        bird = BigBirdAttention(spec).to(device).eval()
        b = bird.block_len
        n_blocks = n // b
        index, valid = bigbird_key_blocks(n_blocks, bird.window, bird.n_global,
                                          bird.random_blocks)
        allowed = torch.zeros(n_blocks, n_blocks, dtype=torch.bool, device=device)
        for j in range(n_blocks):
            allowed[j, index[j][valid[j]]] = True

        flat = allowed.flatten()  # 2-D indexing inside a mask_mod miscompiled on CPU here

        def bigbird_mask(batch, head, q, k, flat=flat, b=b, n_blocks=n_blocks):
            return (k <= q) & flat[(q // b) * n_blocks + k // b]

        def causal_mask(batch, head, q, k):
            return k <= q

        sparse = create_block_mask(bigbird_mask, None, None, n, n, device=device, BLOCK_SIZE=b)
        dense = create_block_mask(causal_mask, None, None, n, n, device=device, BLOCK_SIZE=b)
        q, k, v = (torch.randn(1, N_HEAD, n, N_EMBD // N_HEAD, device=device) for _ in range(3))
        candidates = {
            "flex_bigbird_mask": partial(compiled, block_mask=sparse),
            "flex_causal_mask": partial(compiled, block_mask=dense),
            "gather_bigbird": bird.attend,
            "sdpa_causal": partial(F.scaled_dot_product_attention, is_causal=True),
        }
        out["lengths"].append(n)
        with torch.no_grad():
            for label, fn in candidates.items():
                try:
                    fn(q, k, v)
                except Exception as error:  # noqa: BLE001 - a failed compile is a finding
                    out.setdefault("errors", {})[f"{label}@{n}"] = _first_line(error)
                    out["forward_ms"].setdefault(label, []).append(None)
                    continue
                _sync(device)
                times = _timed(functools.partial(fn, q, k, v), device, repeats)
                out["forward_ms"].setdefault(label, []).append(1e3 * statistics.median(times))
        out.setdefault("bigbird_block_sparsity_percent", []).append(float(sparse.sparsity()))
    qg = torch.randn(1, N_HEAD, 256, 32, device=device, requires_grad=True)
    try:
        compiled(qg, qg, qg).sum().backward()
        out["backward_supported"] = True
    except Exception as error:  # noqa: BLE001 - any failure means "not usable here"
        out["backward_supported"] = False
        out["backward_error"] = _first_line(error)
    out["wall_seconds_including_compile"] = time.perf_counter() - start
    return out


def _first_line(error: Exception) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def load(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="JSON file to write")
    parser.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    parser.add_argument("--lengths", type=int, nargs="+", default=None,
                        help="sequence lengths (default: 128..4096 on CPU, ..16384 on CUDA)")
    parser.add_argument("--variants", nargs="+", default=None,
                        help=f"default: every registered variant plus {REFERENCE}")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--fit-from", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1; see the module doc)")
    parser.add_argument("--no-flex-check", action="store_true",
                        help="skip the flex-attention comparison (it compiles, ~1 minute)")
    args = parser.parse_args(argv)
    device = args.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(args.threads)
    top = 4096 if device == "cpu" else 16384
    lengths = args.lengths or [2**i for i in range(7, int(math.log2(top)) + 1)]
    variants = args.variants or [*available_variants(), REFERENCE]
    record = run_benchmark(lengths, variants, device, args.warmup, args.repeats, args.fit_from)
    if not args.no_flex_check:
        flex_lengths = [n for n in (1024, 2048, 4096) if n <= max(lengths)]
        record["flex_attention"] = flex_attention_check(flex_lengths, device)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    for name, item in record["summary"].items():
        print(f"{name:>16}: time slope {item['time_slope']}, memory slope {item['memory_slope']}")
    print(f"wrote {out} after {record['wall_seconds']:.0f} s of measurements")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
