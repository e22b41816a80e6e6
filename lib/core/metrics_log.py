"""The JSON-lines metrics log: one line per logging interval (step, epoch, tokens, loss,
learning rate, seconds). The trainer appends to it and cuts it back on resume; the pages
and the GPU script read it."""

from __future__ import annotations

import json
from pathlib import Path

from lib.core.atomic import atomic_write_text


def read_log(log_path: str | Path) -> list[dict]:
    """The metrics log as a list of dicts (step, epoch, tokens, loss, lr, time)."""
    return [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]


def append_lines(log_path: Path, lines: list[str]) -> None:
    """Append whole lines in one write: a kill leaves at most one torn last line, which
    reading drops."""
    with open(log_path, "a", encoding="utf-8") as handle:
        handle.write("".join(line + "\n" for line in lines))


def logged_seconds(log_path: Path | None) -> float:
    """The training time an earlier process logged last (0 without a log): a resumed run's
    clock continues from it, so its log and record count every process's time."""
    if log_path is None or not log_path.exists():
        return 0.0
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return float(json.loads(lines[-1])["time"]) if lines else 0.0


def truncate_log(log_path: Path, last_step: int) -> None:
    """Drop log lines written after the checkpoint a run resumes from.

    The log is appended to, so a process killed mid-append leaves a torn last line; it
    was written after the checkpoint, so it goes too.
    """
    if not log_path.exists():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            break
        if row is not None and row["step"] <= last_step:
            kept.append(line)
    atomic_write_text(log_path, "".join(line + "\n" for line in kept))
