"""The README's commands: CI runs exactly its test command, and `make test` installs the
system programs the tests need (Chromium, pdftotext) or says how, never silently skipping."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO

INSTALLER = REPO / "tools" / "ensure-test-tools"


def _readme_commands() -> list[str]:
    """Commands of the README's first code block (the two that matter), comments dropped."""
    block = re.search(r"```bash\n(.*?)```", (REPO / "README.md").read_text(encoding="utf-8"), re.S)
    return [line.split("#")[0].strip() for line in block.group(1).splitlines() if line.strip()]


def test_ci_runs_exactly_the_readmes_test_command():
    assert _readme_commands() == ["make book", "make test"]
    commands = [line.strip() for line in (REPO / ".ci" / "run").read_text().splitlines()
                if line.strip() and not line.lstrip().startswith("#")]
    assert commands[-1] == "exec make test"
    assert all(c.startswith(("set ", "cd ")) for c in commands[:-1]), commands


def test_make_test_installs_the_tools_first():
    makefile = (REPO / "Makefile").read_text()
    assert re.search(r"^test: setup test-tools$", makefile, re.M)
    assert re.search(r"^test-tools:\n\t@tools/ensure-test-tools$", makefile, re.M)
    assert re.search(r'^test-fast: setup\n\t\$\(BIN\)/python -m pytest -q -m "not slow and not book"$',
                     makefile, re.M)


def _fake_system(tmp_path: Path, uid: int) -> tuple[Path, Path]:
    """A PATH holding no Chromium and no pdftotext: `id` says `uid`, `apt-get` only logs."""
    bin_dir, log = tmp_path / "bin", tmp_path / "apt.log"
    bin_dir.mkdir()
    scripts = {
        "id": f"#!/bin/sh\necho {uid}\n",
        "apt-get": f'#!/bin/sh\necho "$DEBIAN_FRONTEND $*" >> {shlex.quote(str(log))}\n',
    }
    for name, text in scripts.items():
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    os.symlink("/usr/bin/env", bin_dir / "env")
    return bin_dir, log


def _run_installer(bin_dir: Path) -> subprocess.CompletedProcess:
    env = {"PATH": str(bin_dir), "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(["/bin/bash", str(INSTALLER)], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(not Path("/usr/bin/env").exists(), reason="needs /usr/bin/env")
def test_without_the_right_to_install_one_line_names_the_command(tmp_path):
    bin_dir, log = _fake_system(tmp_path, uid=1000)  # not root, and no sudo on PATH
    done = _run_installer(bin_dir)
    assert done.returncode == 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "sudo apt-get install -y chromium poppler-utils" in lines[0], lines
    assert not log.exists()


@pytest.mark.skipif(not Path("/usr/bin/env").exists(), reason="needs /usr/bin/env")
def test_as_root_the_missing_tools_are_installed_with_apt_get(tmp_path):
    bin_dir, log = _fake_system(tmp_path, uid=0)
    done = _run_installer(bin_dir)
    assert done.returncode == 0, done.stderr
    assert log.read_text().splitlines() == [" update -qq",
                                            "noninteractive install -y -qq chromium poppler-utils"]
