"""Which commits a page's runs come from and, where they differ, whether the code in between
could move the numbers: what the recorded same-arithmetic checks
(`benchmarks/same_arithmetic.py`, one file per pair of commits under `results/benchmarks/`)
say. Checks chain: a run at A and one at C are linked when A-B and B-C each trained alike.
"""

from __future__ import annotations

import json
from pathlib import Path

from lib.report.formatting import KIND_LABELS, listing
from lib.runs.records import load_records, results_root


def same_arithmetic(record: dict) -> float | None:
    """The largest relative loss difference of a same-arithmetic check that found the same
    steps, rates, answers and completions at both commits; None if it found a difference."""
    files = record["files (share of answers or completions that are identical)"]
    logs = [v for k, v in files.items() if k.endswith(".metrics.jsonl")]
    answers = [share for k, v in files.items() if k.endswith(".details.json") for share in v.values()]
    if not logs or not all(v["same steps and rates"] for v in logs) or any(a != 1 for a in answers):
        return None
    return max(v["largest relative loss difference"] for v in logs)


def check_job(record: dict) -> str:
    """The small job a check ran, as its record names it ("the smoke profile with dropout
    0.1"); "a small job" for a record that does not say."""
    if "profile" not in record:
        return "a small job"
    changes = record.get("changes") or {}
    return f"the {record['profile']} profile" + (
        " with " + listing([f"{k} {v}" for k, v in changes.items()]) if changes else "")


def arithmetic_checks(root: Path | None = None) -> list[tuple[str, str, float | None, str]]:
    """Every recorded check: (older commit, newer commit, largest loss difference or None,
    the job it ran)."""
    folder = (root or results_root()) / "benchmarks"
    out = []
    for path in sorted(folder.glob("same_arithmetic_*_*.json")) if folder.is_dir() else []:
        old, new = path.stem.removeprefix("same_arithmetic_").split("_", 1)
        record = json.loads(path.read_text(encoding="utf-8"))
        out.append((old, new, same_arithmetic(record), check_job(record)))
    return out


def _component(start: str, edges: list[tuple[str, str]]) -> set[str]:
    seen, todo = {start}, [start]
    while todo:
        here = todo.pop()
        for a, b in edges:
            for x, y in ((a, b), (b, a)):
                if x == here and y not in seen:
                    seen.add(y)
                    todo.append(y)
    return seen


def _needed(edges: list[tuple], ends: set[str]) -> list[tuple]:
    """The checks on the paths between `ends`: drop, again and again, a check that leads to
    a commit nothing else needs."""
    while True:
        degree: dict[str, int] = {}
        for o, n, *_ in edges:
            degree[o] = degree.get(o, 0) + 1
            degree[n] = degree.get(n, 0) + 1
        kept = [e for e in edges if not any(degree[c] == 1 and c not in ends for c in e[:2])]
        if len(kept) == len(edges):
            return kept
        edges = kept


def commit_note(records: dict[str, dict], root: Path | None = None,
                opening: str = "The runs come from different commits") -> str:
    """One paragraph on the commits of `records` (label -> record): the commit when they
    share one; else (after `opening`) which runs come from which commit, the checks that
    link them (chained through other commits where needed), and any commit no check links."""
    commits: dict[str, list[str]] = {}
    for label, record in records.items():
        commits.setdefault(record["git_commit"][:7], []).append(label)
    if not commits:
        return ""
    if len(commits) == 1:
        return f"Every run compared here was made at commit {next(iter(commits))}."
    parts = [f"{listing(labels)} at commit {commit}" for commit, labels in commits.items()]
    text = f"{opening}: " + "; ".join(parts) + "."
    checks = arithmetic_checks(root)
    alike = [(o, n) for o, n, r, _ in checks if r is not None]
    # The commits that checks link, taken from the largest such group among ours.
    linked = max((_component(c, alike) for c in commits), key=lambda g: len(g & set(commits)))
    first = next(c for c in commits if c in linked)
    used = _needed([c for c in checks if c[2] is not None and c[0] in linked], set(commits))
    unlike = [(o, n) for o, n, r, _ in checks if r is None and o in commits and n in commits]
    if unlike:
        text += (" Run at " + " and ".join(f"{o} and {n}" for o, n in unlike) + ", the same "
                 "small job did not train alike: those runs are not comparable as they stand.")
    if len(linked & set(commits)) > 1:
        worst = max(r for _, _, r, _ in used)
        losses = ("identical losses" if worst == 0 else
                  f"losses equal to a relative {worst:.0e} at most")
        jobs = listing(sorted({job for *_, job in used}))
        text += (f" The same small job (`benchmarks/same_arithmetic.py`: {jobs}) run at "
                 + listing([f"{o} with {n}" for o, n, *_ in used])
                 + f" logged the same steps and learning rates, {losses}, and identical "
                 "answers and probe completions: the training arithmetic did not change "
                 "in between. Over hundreds of epochs rounding differences grow, so a rerun "
                 "at the newer commit does not repeat a run digit for digit.")
    missing = [c for c in commits if c not in linked]
    if missing:
        which = ("commits " if len(missing) > 1 else "commit ") + listing(missing)
        text += (f" No recorded check that the code trains alike links {which} to {first}: "
                 "whether the code in between could move these numbers is not measured.")
    return text


def mixed_commits(profile: str, root: Path | None = None) -> list[str]:
    """For every configuration of `profile` whose seeds were run at different commits, its
    `commit_note` (one for the kinds of a variant that share their commits): what a page
    showing those seeds side by side must say."""
    runs: dict[tuple[str, str], dict[str, dict]] = {}
    for r in load_records(profile, root):
        if r["kind"] in KIND_LABELS and "git_commit" in r:
            runs.setdefault((r["variant"], r["kind"]), {})[f"seed {r['seed']}"] = r
    shared: dict[tuple, list[str]] = {}
    for (variant, kind), by_seed in sorted(runs.items()):
        commits = tuple(sorted((label, r["git_commit"][:7]) for label, r in by_seed.items()))
        if len({c for _, c in commits}) > 1:
            shared.setdefault((variant, commits), []).append(kind)
    notes = []
    for (variant, _), kinds in shared.items():
        by_seed = dict(sorted(runs[(variant, kinds[0])].items()))
        what = listing([KIND_LABELS[k] for k in kinds])
        notes.append(f"**{variant}, {what}.** "
                     + commit_note(by_seed, root, opening="Its seeds come from different commits"))
    return notes
