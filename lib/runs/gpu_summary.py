"""What comes back from a lent GPU: `gpu_run.json`, merged across invocations, and one archive
of every result the invocation wrote."""

from __future__ import annotations

import glob
import json
import tarfile
from pathlib import Path

from lib.runs.records import results_root

# --------------------------------------------------------------------------------------
# gpu_run.json across invocations, and the archive
# --------------------------------------------------------------------------------------
INVOCATION_KEYS = ("device_name", "jobs", "threads_per_job", "cuda_graphs", "deadline",
                   "wall_time", "torch_version")


def read_summary(path: Path) -> dict:
    """The summary earlier invocations left (an empty one if none, or if it is unreadable)."""
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"invocations": [], "runs": []}
    except (OSError, json.JSONDecodeError) as error:
        print(f"warning: {path} is unreadable ({error}); starting a new summary", flush=True)
        return {"invocations": [], "runs": []}
    if "invocations" not in summary:  # written by one invocation, before summaries merged
        summary = {"invocations": [{k: summary[k] for k in INVOCATION_KEYS if k in summary}],
                   "runs": summary.get("runs", [])}
    return summary


def supersedes(new: dict, old: dict) -> bool:
    """Whether this invocation's entry replaces an earlier one: an attempt always does; a
    job not started never does; "already done" does where the earlier entry was no success."""
    if new["status"] == "not started":
        return False
    if new["status"] == "already done":
        return old["status"] not in ("done", "already done")
    return True


def merge_runs(earlier: list[dict], latest: list[dict]) -> list[dict]:
    """Earlier invocations' entries updated by the latest one's, in the latest one's order
    (then the earlier entries it did not touch)."""
    merged = {entry["run_id"]: entry for entry in earlier}
    for entry in latest:
        old = merged.get(entry["run_id"])
        if old is None or supersedes(entry, old):
            merged[entry["run_id"]] = entry
    order = [entry["run_id"] for entry in latest]
    order += [rid for rid in merged if rid not in order]
    return [merged[rid] for rid in order]


def earlier_durations(summary: dict, device_name: str) -> dict[str, list[float]]:
    """Seconds of each job kind finished by earlier invocations on the same kind of device:
    a second lease knows from the first which jobs cannot finish in the time it has."""
    devices = [i.get("device_name") for i in summary["invocations"]]
    durations: dict[str, list[float]] = {}
    for entry in summary["runs"]:
        index = entry.get("invocation")
        same_device = isinstance(index, int) and index < len(devices) and devices[index] == device_name
        if entry.get("status") == "done" and same_device and entry.get("kind"):
            durations.setdefault(entry["kind"], []).append(entry["seconds"])
    return durations


def merged_summary(profile: str, earlier: dict, invocation: dict, entries: list[dict]) -> dict:
    """gpu_run.json: every invocation, every job's latest entry, and at the top the latest
    invocation's settings with the wall time of all of them together."""
    index = len(earlier["invocations"])
    invocations = earlier["invocations"] + [invocation]
    return {
        "profile": profile,
        **{key: invocation[key] for key in INVOCATION_KEYS if key != "wall_time"},
        "wall_time": round(sum(i.get("wall_time") or 0.0 for i in invocations), 1),
        "invocations": invocations,
        "runs": merge_runs(earlier["runs"], [{**e, "invocation": index} for e in entries]),
    }


def pack(profile: str, archive: Path) -> Path:
    """Every file under results/<profile> and its recipes' results/<profile>+<options>
    (records, predictions, metrics and job logs, the run's summary) in one gzipped tar, paths
    relative to the repository root; written beside the archive and renamed over it, so the
    archive is always a whole one."""
    root = results_root()
    folders = [root / profile] + sorted(root.glob(glob.escape(profile) + "+*"))
    archive = Path(archive)
    archive.parent.mkdir(parents=True, exist_ok=True)
    partial = archive.with_name(archive.name + ".partial")
    try:
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            for path in sorted(p for folder in folders for p in folder.rglob("*")):
                # Skip half-written files of atomic writes (a record appears by a rename).
                if path in (archive, partial) or (path.name.startswith(".") and path.suffix == ".tmp"):
                    continue
                try:
                    if path.is_file():
                        tar.add(path, arcname=str(Path("results") / path.relative_to(root)))
                except FileNotFoundError:  # renamed away while we packed
                    continue
        partial.replace(archive)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return archive
