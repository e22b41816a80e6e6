"""Data-parallel training under torchrun (2 CPU processes, gloo) matches one process.

Both runs see the same global batches (every rank draws the same epoch and takes its slice)
and each rank normalises its summed loss by the global target count, so the averaged
gradient is the single-process gradient up to floating-point summation order. The smoke
profile has no dropout, so nothing else differs. Over a few dozen steps such rounding
differences stay near float32 epsilon relative to the loss; 1e-4 relative is far above that
and far below any real discrepancy (a rank training on the wrong slice or a missing
all-reduce changes the loss in the second decimal).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from lib.core.metrics_log import read_log
from tests.conftest import REPO


def run(args: list[str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    return subprocess.run(args, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    common = ["pretrain", "--profile", "smoke", "--device", "cpu", "--no-progress", "--seed", "3"]
    single = run([sys.executable, "-m", "lib", *common, "--writing-params-path", str(tmp_path / "one.params")],
                 tmp_path)
    assert single.returncode == 0, single.stderr[-3000:]
    double = run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_port=29611",
                  "-m", "lib", *common, "--writing-params-path", str(tmp_path / "two.params")], tmp_path)
    assert double.returncode == 0, double.stderr[-3000:]
    one = read_log(tmp_path / "one.params.metrics.jsonl")
    two = read_log(tmp_path / "two.params.metrics.jsonl")
    assert [r["step"] for r in one] == [r["step"] for r in two] and len(one) >= 5
    for a, b in zip(one, two, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), (a, b)
        assert b["lr"] == a["lr"] and b["tokens"] == a["tokens"]
