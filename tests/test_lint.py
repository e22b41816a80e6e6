"""The code stays ruff clean (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "lib", "tests", "benchmarks"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
