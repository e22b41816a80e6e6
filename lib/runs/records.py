"""Result records: one JSON file per run with everything needed to trust and redo it.

`results/<profile>/<run-id>.json` holds the run id, kind, attention variant, profile, seed,
the full resolved configuration, metrics, wall time, device, torch version, git commit,
dataset checksums and creation time. Chapters read records through `load_records`.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from lib.core.atomic import atomic_write_json
from lib.core.data import REPO_ROOT

SCHEMA = 1


def results_root() -> Path:
    """Where records live: `$BOOK_RESULTS` if set (tests use a temporary folder), else results/."""
    return Path(os.environ.get("BOOK_RESULTS", REPO_ROOT / "results"))


OUTPUT_PATHS = ("results", "book/runs")


def git_commit() -> str:
    """The commit of the code that produced a result (`+dirty` for uncommitted changes to
    anything but the outputs under OUTPUT_PATHS).

    Where the code travels without its git folder (a rented GPU machine, say), the caller
    names the commit in `BOOK_GIT_COMMIT`.
    """
    if os.environ.get("BOOK_GIT_COMMIT"):
        return os.environ["BOOK_GIT_COMMIT"]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        # Outputs (records, logs, stored runs) change while runs go on; only code is "dirty".
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                ".", *(f":(exclude){p}" for p in OUTPUT_PATHS)],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout
        return commit + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# The code that runs is the code that was imported: take the commit now, not when a record
# is written (a long run would otherwise name whatever was checked out at its end).
_COMMIT_AT_IMPORT = git_commit()


def device_name(device: str | torch.device) -> str:
    """The GPU's name, or the CPU with its cores and threads: the speed, and on a CPU the
    order of floating-point sums, depend on them."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores, " \
           f"{torch.get_num_threads()} threads)"


def provenance(device: str | torch.device) -> dict:
    """What every record says about how it was made: device, versions, commit, time."""
    return {
        "device": str(torch.device(device)),
        "device_name": device_name(device),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "git_commit": _COMMIT_AT_IMPORT,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    }


def record_path(profile: str, run_id: str, root: Path | None = None) -> Path:
    """results/PROFILE/RUN_ID.json, under `root` if given."""
    return (root or results_root()) / profile / f"{run_id}.json"


def write_record(record: dict, root: Path | None = None) -> Path:
    """Write a record atomically, refusing one without the keys every reader relies on."""
    for key in ("run_id", "kind", "profile", "metrics"):
        if key not in record:
            raise ValueError(f"a result record needs {key!r}")
    record = {"schema": SCHEMA, **record}
    return atomic_write_json(record_path(record["profile"], record["run_id"], root), record)


def read_record(path: str | os.PathLike) -> dict:
    """One record as a dict."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def load_records(profile: str, root: Path | None = None, kind: str | None = None) -> list[dict]:
    """Every record of a profile (optionally of one kind), sorted by run id."""
    folder = (root or results_root()) / profile
    if not folder.is_dir():
        return []
    records = [read_record(p) for p in sorted(folder.glob("*.json"))]
    records = [r for r in records if r.get("schema") == SCHEMA and "run_id" in r]
    return [r for r in records if kind is None or r["kind"] == kind]


def recorded_variants(profile: str, root: Path | None = None) -> list[str]:
    """The attention variants a profile has trained runs of (London, which has none, aside),
    sorted: what `experiments --rerender` renders when no variant is named."""
    return sorted({r["variant"] for r in load_records(profile, root)
                   if r.get("variant") not in (None, "none")})


def records_by_seed(profile: str, kind: str, variant: str,
                    root: Path | None = None) -> dict[int, dict]:
    """One configuration's records of one kind, keyed by seed, in seed order: how pages and
    checks find a run without each filtering `load_records` their own way."""
    found = [r for r in load_records(profile, root, kind) if r.get("variant") == variant]
    return {r["seed"]: r for r in sorted(found, key=lambda r: r["seed"])}
