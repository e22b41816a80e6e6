"""The reliability record: what the fault-injection tests did, kept with provenance.

`python -m tools.reliability` runs `tests/test_reliability.py` once with the tests' ledger
switched on and writes `results/reliability/tests.json`: every test's outcome and duration,
the faults it injected (kills, crashes mid-write, non-finite losses), the bad inputs it
tried (damaged data files, code-running checkpoints, bad parameters), and how many
artefacts it checked after a fault and found lost or torn. The reliability appendix reads
the record and checks that it lists exactly the tests the module holds now, so its counts
are never those of an older test suite.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from lib.core.atomic import atomic_write_json
from lib.runs.records import REPO_ROOT, provenance, results_root

TEST_FILE = "tests/test_reliability.py"
LEDGER_ENV = "BOOK_RELIABILITY_LEDGER"
SCHEMA = 1


def record_path(root: Path | None = None) -> Path:
    return (root or results_root()) / "reliability" / "tests.json"


def load(path: str | os.PathLike | None = None) -> dict:
    """The stored record (by default `results/reliability/tests.json`)."""
    path = Path(path) if path is not None else record_path()
    if not path.exists():
        raise FileNotFoundError(f"no reliability record at {path}; write it with "
                                "`python -m tools.reliability`")
    return json.loads(path.read_text(encoding="utf-8"))


def collect(test_file: str = TEST_FILE) -> list[str]:
    """The ids of the tests the module holds now, as pytest collects them (nothing runs)."""
    out = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                          test_file], cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    ids = [line.strip() for line in out.stdout.splitlines() if line.startswith(f"{test_file}::")]
    if out.returncode != 0 or not ids:
        raise RuntimeError(f"pytest could not collect {test_file}:\n{out.stdout[-2000:]}{out.stderr[-2000:]}")
    return ids


def check_current(record: dict, ids: list[str]) -> None:
    """Fail loudly when the record describes another set of tests than the module's."""
    recorded = {t["id"] for t in record["tests"]}
    missing, new = sorted(recorded - set(ids)), sorted(set(ids) - recorded)
    if missing or new:
        raise RuntimeError(
            f"the reliability record is stale ({len(new)} tests not in it, {len(missing)} no longer "
            f"exist, e.g. {(new + missing)[:3]}); refresh it with `python -m tools.reliability`")


def guarantees(test_file: str = TEST_FILE) -> dict[str, dict]:
    """Per test class (one guarantee each): its docstring, and each test's docstring.

    A class docstring is a one-line title, then the guarantee in full. Read from the source,
    so that the appendix quotes the tests as they are written.
    """
    tree = ast.parse((REPO_ROOT / test_file).read_text(encoding="utf-8"))
    out = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            tests = {f.name: " ".join((ast.get_docstring(f) or "").split())
                     for f in node.body if isinstance(f, ast.FunctionDef) and f.name.startswith("test")}
            title, _, details = (ast.get_docstring(node) or "").partition("\n\n")
            out[node.name] = {"title": " ".join(title.split()).rstrip("."),
                              "guarantee": " ".join(details.split()), "tests": tests}
    return out


def _outcomes(junit: Path, test_file: str) -> dict[str, dict]:
    """Outcome and seconds per test id, from pytest's JUnit XML report."""
    stem = test_file.removesuffix(".py").replace("/", ".")
    out = {}
    for case in ET.parse(junit).getroot().iter("testcase"):
        owner = case.get("classname", "")
        parts = [test_file] + ([owner[len(stem) + 1:]] if owner != stem else []) + [case.get("name", "")]
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            if case.find(tag) is not None:
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[tag]
        out["::".join(parts)] = {"outcome": outcome, "seconds": round(float(case.get("time", 0)), 2)}
    return out


def totals(tests: list[dict]) -> dict:
    """The counts the appendix shows: tests, faults injected, bad inputs, artefacts lost."""
    faults, bad = Counter(), Counter()
    for t in tests:
        faults.update(t["faults"])
        bad.update(t["bad_inputs"])
    return {"tests": len(tests), "passed": sum(t["outcome"] == "passed" for t in tests),
            "seconds": round(sum(t["seconds"] for t in tests), 1),
            "faults_injected": sum(faults.values()), "faults_by_kind": dict(sorted(faults.items())),
            "bad_inputs_tried": sum(bad.values()), "bad_inputs_by_kind": dict(sorted(bad.items())),
            "artefacts_checked": sum(t["checked"] for t in tests),
            "artefacts_lost": sum(t["lost"] for t in tests)}


def run(test_file: str = TEST_FILE, pytest_args: tuple[str, ...] = ()) -> tuple[dict, int]:
    """Run the reliability tests once and build their record (not yet written)."""
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        ledger, junit = Path(tmp) / "ledger.json", Path(tmp) / "junit.xml"
        env = {**os.environ, LEDGER_ENV: str(ledger)}
        command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
                   test_file, *pytest_args]
        status = subprocess.run(command, cwd=REPO_ROOT, env=env).returncode
        outcomes = _outcomes(junit, test_file)
        ledgers = json.loads(ledger.read_text(encoding="utf-8")) if ledger.exists() else {}
    empty = {"faults": {}, "bad_inputs": {}, "checked": 0, "lost": 0, "notes": {}}
    tests = [{"id": nodeid, "class": nodeid.split("::")[1] if nodeid.count("::") > 1 else "",
              **outcome, **ledgers.get(nodeid, empty)} for nodeid, outcome in outcomes.items()]
    record = {"schema": SCHEMA, "kind": "reliability", "test_file": test_file,
              "command": "python -m tools.reliability", "pytest_status": status,
              "wall_time": round(time.time() - started, 1), "totals": totals(tests), "tests": tests,
              **provenance("cpu")}
    return record, status


# --------------------------------------------------------------------------------------
# Tables for the appendix (Markdown, so that the book renders them as its own tables)
# --------------------------------------------------------------------------------------
def split_id(test_id: str) -> tuple[str, str, str]:
    """(class, test function, parameter) of a test id; the parameter may be empty."""
    parts = test_id.split("::")
    name, _, param = parts[-1].partition("[")
    return (parts[1] if len(parts) > 2 else ""), name, param.removesuffix("]")


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c, "")) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _kinds(counts: dict) -> str:
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items())) or "none"


def guarantee_rows(record: dict, classes: dict[str, dict]) -> list[dict]:
    """One row per guarantee (test class): cases, outcomes, faults, bad inputs, losses, time."""
    rows = []
    for number, (cls, info) in enumerate(classes.items(), start=1):
        tests = [t for t in record["tests"] if t["class"] == cls]
        t = totals(tests)
        rows.append({"": number, "guarantee": info["title"],
                     "test cases": t["tests"], "passed": t["passed"],
                     "faults injected": t["faults_injected"], "bad inputs tried": t["bad_inputs_tried"],
                     "artefacts checked / lost": f"{t['artefacts_checked']} / {t['artefacts_lost']}",
                     "seconds": t["seconds"]})
    return rows


def test_list(record: dict, cls: str, classes: dict[str, dict]) -> str:
    """A Markdown list of a class's tests (parametrised cases taken together): name, what it
    does, and what the recorded run counted for it."""
    items = []
    for name, doc in classes[cls]["tests"].items():
        t = totals([t for t in record["tests"] if split_id(t["id"])[:2] == (cls, name)])
        counts = [f"{t['passed']} of {t['tests']} cases passed", f"{t['seconds']} s"]
        if t["faults_injected"]:
            counts.append(f"faults injected: {_kinds(t['faults_by_kind'])}")
        if t["bad_inputs_tried"]:
            counts.append(f"bad inputs tried: {_kinds(t['bad_inputs_by_kind'])}")
        if t["artefacts_checked"]:
            counts.append(f"artefacts checked / lost: {t['artefacts_checked']} / {t['artefacts_lost']}")
        items.append(f"- `{name}`: {doc} *({'; '.join(counts)})*")
    return "\n".join(items)


def case_rows(record: dict, cls: str, name: str, notes: tuple[str, ...] = ("message",)) -> list[dict]:
    """One row per parametrised case of a test, with the notes it recorded (messages seen...)."""
    rows = []
    for t in record["tests"]:
        owner, function, param = split_id(t["id"])
        if (owner, function) == (cls, name):
            rows.append({"case": param or function, "outcome": t["outcome"],
                         **{note: t["notes"].get(note, "") for note in notes}})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.reliability", description=__doc__.split("\n")[0])
    ap.add_argument("--output", type=Path, default=None, help="default: results/reliability/tests.json")
    args = ap.parse_args(argv)
    record, status = run()
    path = atomic_write_json(args.output or record_path(), record)
    t = record["totals"]
    print(f"{t['passed']}/{t['tests']} tests passed; {t['faults_injected']} faults injected, "
          f"{t['bad_inputs_tried']} bad inputs tried, {t['artefacts_lost']} of "
          f"{t['artefacts_checked']} artefacts lost; record in {path}")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
