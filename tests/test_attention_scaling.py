"""benchmarks/attention_scaling.py: a tiny run writes a record with slopes and ratios."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks import attention_scaling
from tests.conftest import REPO


def test_tiny_benchmark_writes_slopes_and_ratios_for_every_variant(tmp_path, one_thread):
    out = tmp_path / "scaling.json"
    code = attention_scaling.main(["--out", str(out), "--device", "cpu", "--lengths", "64", "128",
                                   "--repeats", "2", "--fit-from", "64", "--no-flex-check"])
    assert code == 0
    record = json.loads(out.read_text())
    from lib.core.attention import available_variants

    assert set(record["summary"]) == {*available_variants(), attention_scaling.REFERENCE}
    for name, item in record["variants"].items():
        assert item["lengths"] == [64, 128]
        assert len(item["time_s"]) == 2 and all(t > 0 for t in item["time_s"]), name
    assert record["summary"]["vanilla"]["time_ratio_vs_vanilla"] == {"64": 1.0, "128": 1.0}
    assert "flex_attention" not in record


def test_timed_calls_the_function_once_per_repeat():
    calls = []
    times = attention_scaling._timed(lambda: calls.append(1), "cpu", 3)
    assert len(calls) == 3 and len(times) == 3 and all(t >= 0 for t in times)


def test_cpu_bf16_benchmark_writes_a_record(tmp_path, one_thread):
    from benchmarks import cpu_bf16

    out = tmp_path / "bf16.json"
    assert cpu_bf16.main(["--quick", "--profile", "smoke", "--rounds", "1", "--steps", "1",
                          "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert set(record["median_seconds"]) == {"float32", "bf16"}
    assert record["speedup"] == record["median_seconds"]["float32"] / record["median_seconds"]["bf16"]
    busy = record["cpu_busy_before"]  # was the machine shared?
    assert record["cpus"] >= 1 and (busy is None or 0 <= busy <= 1)


@pytest.mark.slow
def test_cpu_compile_benchmark_writes_a_record(tmp_path):
    """Run as its own process: compiling leaves inductor's worker pool and TORCHINDUCTOR_*
    variables behind, which every later test and its child processes would inherit."""
    out = tmp_path / "compile.json"
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "cpu_compile.py"), "--quick",
                           "--profile", "smoke", "--rounds", "1", "--steps", "1", "--out", str(out)],
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    record = json.loads(out.read_text())
    assert set(record["median_seconds"]) == {"eager", "compiled"}
    assert len(record["seconds"]["compiled"]) == 1 and record["threads"] == 1
    assert record["compiled_speed_vs_eager"] == (record["median_seconds"]["eager"]
                                                 / record["median_seconds"]["compiled"])
    assert record["other_width"] < record["batch"][1]
    assert "TORCHINDUCTOR_FORCE_DISABLE_CACHES" not in os.environ


def test_bf16_plateau_gradient_cosines_are_one_in_float32(one_thread):
    """The measurement behind `gpu_bf16` off: float32 gradients agree with float64 ones, so a
    low bf16 cosine is bf16's doing, not the method's."""
    import torch

    from benchmarks.bf16_plateau import gradient_cosines
    from lib.core.model import GPT, GPTConfig

    config = GPTConfig(vocab_size=20, block_size=16, n_layer=2, n_head=2, n_embd=16,
                       dropout=0.0, attn_dropout=0.0)

    def model_for():
        torch.manual_seed(0)
        return GPT(config)

    x = torch.randint(2, 20, (4, 15))
    cosines = gradient_cosines(model_for, x, x.roll(-1, dims=1))
    assert set(cosines) == {"float32", "bf16"}
    assert "tok_emb.weight" in cosines["float32"] and "blocks.3.attn.qkv.weight" not in cosines["float32"]
    assert all(c > 0.9999 for c in cosines["float32"].values())


def test_thread_layout_benchmark_times_each_layout_in_its_own_processes(tmp_path):
    from benchmarks import thread_layout

    out = tmp_path / "layout.json"
    assert thread_layout.main(["--quick", "--profile", "smoke", "--rounds", "1", "--steps", "2",
                               "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    (layouts,) = record["rounds"]
    assert {name: item["threads"] for name, item in layouts.items()} == thread_layout.LAYOUTS
    for item in layouts.values():  # one list of step times per process
        assert [len(s) for s in item["seconds"]] == [2] * len(item["threads"])
        assert item["batch"][0] == 8
    assert record["throughput_vs_two_threads"]["one process, 2 threads"] == [1.0]
    two = layouts["two processes, 1 thread each"]
    assert two["steps_per_second"] == sum(1 / m for m in two["median_seconds_per_step"])
