"""The code stays ruff clean (configuration in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_clean():
    out = subprocess.run([sys.executable, "-m", "ruff", "check", "lib", "tests", "benchmarks"],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_book_pages_hold_no_control_characters():
    """A tab or backspace in a page is a LaTeX command eaten by a string escape
    (`\\tilde` written through Python becomes a tab and `ilde`); none belongs in the prose."""
    import re

    bad = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]|\t")
    found = [f"{page.relative_to(REPO)}:{n}" for page in sorted((REPO / "book").rglob("*.md"))
             for n, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1)
             if bad.search(line)]
    assert not found, found
