"""Bringing finished runs into this repository from another copy of it.

A run that takes hours trains in a separate worktree at a fixed commit (its record then
names one commit), and its results land in that worktree's `results/PROFILE/`. Only runs
whose record exists are finished; their record and every file it names come over together,
and a half-finished run (a metrics log without a record) stays where it is. A record this
repository already holds is never replaced: an identical one is skipped, a different one is
reported as a conflict and left for a person to resolve.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from lib.runs.records import results_root


@dataclass
class Transfer:
    """What `import_runs` did, run id by run id."""

    copied: list[str] = field(default_factory=list)
    already_here: list[str] = field(default_factory=list)
    conflicting: list[str] = field(default_factory=list)  # a different record is already here
    incomplete: list[str] = field(default_factory=list)  # a file the record names is missing
    unfinished: list[str] = field(default_factory=list)  # files without a record: still training
    copied_variants: set[str] = field(default_factory=set)  # attention variants of `copied`


def run_files(record_path: Path, record: dict | None = None) -> list[Path]:
    """A record and the files it names (`files`), all in the record's folder. (`record` is
    the record's content when the caller has already read it.)"""
    if record is None:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    names = [name for name in record.get("files", {}).values() if name]
    return [record_path] + [record_path.with_name(name) for name in names]


def _is_record(path: Path) -> bool:
    return path.suffix == ".json" and path.name.count(".") == 1


def import_runs(source: Path, profile: str, destination: Path | None = None) -> Transfer:
    """Copy `profile`'s finished runs from the results folder `source` (a worktree's
    `results/`) into `destination` (this repository's results folder by default)."""
    src = Path(source) / profile
    if not src.is_dir():
        raise FileNotFoundError(f"no results of profile {profile!r} under {source}")
    dst = (destination or results_root()) / profile
    done = Transfer()
    records = sorted(p for p in src.iterdir() if _is_record(p))
    for record_path in records:
        run_id = record_path.stem
        here = dst / record_path.name
        if here.exists():
            same = here.read_bytes() == record_path.read_bytes()
            (done.already_here if same else done.conflicting).append(run_id)
            continue
        record = json.loads(record_path.read_text(encoding="utf-8"))
        files = run_files(record_path, record)
        if not all(f.is_file() for f in files):
            done.incomplete.append(run_id)
            continue
        dst.mkdir(parents=True, exist_ok=True)
        for f in files[1:]:  # the record last: a record here always has its files
            shutil.copy2(f, dst / f.name)
        shutil.copy2(record_path, here)
        done.copied.append(run_id)
        done.copied_variants.add(record["variant"])
    finished = {p.stem for p in records}
    done.unfinished = sorted({p.name.split(".", 1)[0] for p in src.iterdir() if p.is_file()}
                             - finished)
    return done


def describe(transfer: Transfer, profile: str) -> str:
    """One line per outcome that occurred, for the command line."""
    words = {"copied": "copied", "already_here": "already here (identical)",
             "conflicting": "NOT copied, a different record is already here",
             "incomplete": "NOT copied, a file its record names is missing",
             "unfinished": "not finished (no record yet), left where it is"}
    lines = [f"{profile}: {words[key]}: {', '.join(getattr(transfer, key))}"
             for key in words if getattr(transfer, key)]
    return "\n".join(lines) or f"{profile}: no runs found"
