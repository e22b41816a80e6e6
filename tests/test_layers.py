"""The package's shape: layers whose imports point one way, no import cycle, the reading side
free of the trainer, and modules and functions a reader can hold in their head."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

LIB = REPO / "lib"
# What each layer may import from lib (itself included); `cli` may import anything.
ALLOWED = {
    "core": {"core"},
    "demos": {"core", "demos"},
    "runs": {"core", "runs"},
    "report": {"core", "runs", "report"},
}
# The trainer and the runs modules that call it. The reading side may import the other runs
# modules (profiles, the matrix, records) and training's settings (`lib.core.train.config`,
# which profiles are made of), never these.
TRAINING = {"lib.core.train.loop", "lib.core.train.graphed_step", "lib.core.train.state",
            "lib.runs.pipeline", "lib.runs.experiments", "lib.runs.gpu_run"}
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# Written as a comment in the first lines of a module or function that is longer on purpose.
WHY_LONG = "# long on purpose:"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def lib_imports(path: Path) -> set[str]:
    """Every lib module a file imports, at module level or inside functions."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("lib.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("lib"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
    return {name for name in found if name in MODULES and name != "lib"}


GRAPH = {name: lib_imports(path) for name, path in MODULES.items()}


def layer(name: str) -> str:
    return name.split(".")[1] if name.count(".") else "lib"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) in ALLOWED))
def test_imports_point_down_the_layers(name):
    upward = sorted(dep for dep in GRAPH[name] if layer(dep) not in ALLOWED[layer(name)])
    assert not upward, f"{name} imports a layer above it: {upward}"


@pytest.mark.parametrize("name", sorted(n for n in MODULES if layer(n) == "report"))
def test_the_reading_side_never_imports_the_trainer(name):
    trainer = sorted(dep for dep in GRAPH[name] if dep in TRAINING)
    assert not trainer, f"{name} imports training code: {trainer}"


def test_importing_the_pages_modules_loads_no_training_code():
    code = ("import sys, pkgutil, importlib, lib.report as r\n"
            "for m in pkgutil.iter_modules(r.__path__): importlib.import_module('lib.report.' + m.name)\n"
            f"print(sorted(set(sys.modules) & {TRAINING!r}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_no_import_cycle():
    """Depth-first search over every lib import, function-level ones included."""
    state: dict[str, str] = {}

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for dep in sorted(GRAPH[name]):
            # A package's __init__ importing its own submodules is how registration works.
            if dep.startswith(name + "."):
                continue
            if state.get(dep) == "open":
                cycle = path[path.index(dep):] + [dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep, path + [dep])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def _explained(lines: list[str], first: int) -> bool:
    return any(WHY_LONG in line for line in lines[first:first + 6])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_modules_and_functions_stay_short(name):
    lines = MODULES[name].read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_MODULE_LINES or _explained(lines, 0), \
        f"{name} has {len(lines)} lines (at most {MAX_MODULE_LINES}, or say why)"
    for node in ast.walk(ast.parse("\n".join(lines))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            length = node.end_lineno - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES or _explained(lines, node.lineno - 1), \
                f"{name}.{node.name} has {length} lines (at most {MAX_FUNCTION_LINES}, or say why)"


def test_the_layers_are_folders():
    assert {p.name for p in LIB.iterdir() if p.is_dir() and (p / "__init__.py").exists()} == {*ALLOWED, "cli"}
    assert sorted(p.name for p in LIB.glob("*.py")) == ["__init__.py", "__main__.py"]
