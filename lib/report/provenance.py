"""Which commits a page's runs come from and, where they differ, whether the code in between
could move the numbers: what the recorded same-arithmetic checks
(`benchmarks/same_arithmetic.py`, one file per pair of commits and variant under
`results/benchmarks/`) say. Checks chain: a run at A and one at C are linked when A-B and B-C
each trained alike. A check speaks for the attention variant it ran: a vanilla check says
nothing about the synthesizer's code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple

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
    0.1"); "a small job" for a record that does not say. The variant is named apart
    (`Check.variant`)."""
    if "profile" not in record:
        return "a small job"
    changes = record.get("changes") or {}
    # A dict changes fields of one phase's training configuration: "pretrain.epoch_token_mean True".
    shown = []
    for key, value in changes.items():
        if isinstance(value, dict):
            shown += [f"{key}.{field} {inner}" for field, inner in value.items()]
        else:
            shown.append(f"{key} {value}")
    return f"the {record['profile']} profile" + (" with " + listing(shown) if shown else "")


class Check(NamedTuple):
    """One recorded same-arithmetic check. It links `old` and `new` for runs of `variant`
    only: the trainer is shared, but each attention variant's code is its own."""
    old: str
    new: str
    worst: float | None  # largest relative loss difference; None: the runs differed
    job: str
    variant: str


def arithmetic_checks(root: Path | None = None) -> list[Check]:
    """Every recorded check (`same_arithmetic_OLD_NEW[_VARIANT].json`); a record that names
    no variant ran vanilla attention."""
    folder = (root or results_root()) / "benchmarks"
    out = []
    for path in sorted(folder.glob("same_arithmetic_*_*.json")) if folder.is_dir() else []:
        old, new = path.stem.removeprefix("same_arithmetic_").split("_")[:2]
        record = json.loads(path.read_text(encoding="utf-8"))
        out.append(Check(record.get("old", old), record.get("new", new), same_arithmetic(record),
                         check_job(record), record.get("variant", "vanilla")))
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


def _needed(edges: list[Check], ends: set[str]) -> list[Check]:
    """The checks on the paths between `ends`: drop, again and again, a check that leads to
    a commit nothing else needs."""
    while True:
        degree: dict[str, int] = {}
        for c in edges:
            degree[c.old] = degree.get(c.old, 0) + 1
            degree[c.new] = degree.get(c.new, 0) + 1
        kept = [c for c in edges if not any(degree[x] == 1 and x not in ends for x in (c.old, c.new))]
        if len(kept) == len(edges):
            return kept
        edges = kept


def commit_note(records: dict[str, dict], root: Path | None = None,
                opening: str = "The runs come from different commits") -> str:
    """One paragraph on the commits of `records` (label -> record): the commit when they
    share one; else (after `opening`) which runs come from which commit, the checks that
    put them on one commit's arithmetic (each run through checks of its own variant,
    chained through other commits where needed), and any run no check links."""
    commits: dict[str, list[str]] = {}
    for label, record in records.items():
        commits.setdefault(record["git_commit"][:7], []).append(label)
    if not commits:
        return ""
    if len(commits) == 1:
        return f"Every run compared here was made at commit {next(iter(commits))}."
    parts = [f"{listing(labels)} at commit {commit}" for commit, labels in commits.items()]
    text = f"{opening}: " + "; ".join(parts) + "."
    runs = {label: (r["git_commit"][:7], r.get("variant", "vanilla")) for label, r in records.items()}
    variants = {v for _, v in runs.values()}
    checks = [c for c in arithmetic_checks(root) if c.variant in variants]
    alike = {v: [(c.old, c.new) for c in checks if c.variant == v and c.worst is not None]
             for v in variants}
    reach = {label: _component(commit, alike[v]) for label, (commit, v) in runs.items()}
    # The commit most runs can be put on; ties go to the runs' own commits, in order.
    candidates = list(commits) + sorted(set().union(*reach.values()) - set(commits))
    target = max(candidates, key=lambda c: sum(c in r for r in reach.values()))
    linked = [label for label in runs if target in reach[label]]
    unlike = [c for c in checks if c.worst is None and c.old in commits and c.new in commits]
    if unlike:
        text += (" Run at " + " and ".join(f"{c.old} and {c.new}" for c in unlike) + ", the same "
                 "small job did not train alike: those runs are not comparable as they stand.")
    used = []
    for v in sorted(variants):
        ends = {runs[label][0] for label in linked if runs[label][1] == v} | {target}
        within = [c for c in checks if c.variant == v and c.worst is not None
                  and c.old in _component(target, alike[v])]
        used += _needed(within, ends) if len(ends) > 1 else []
    if len({runs[label][0] for label in linked}) > 1 and used:
        worst = max(c.worst for c in used)
        losses = ("identical losses" if worst == 0 else
                  f"losses equal to a relative {worst:.0e} at most")
        jobs = listing(sorted({c.job for c in used}))
        several = len({c.variant for c in used}) > 1
        by_variant: dict[str, list[str]] = {}
        for c in sorted(used, key=lambda c: c.variant != "vanilla"):
            by_variant.setdefault(c.variant, []).append(f"{c.old} with {c.new}")
        pairs = ("; ".join(f"{listing(p)} ({v})" for v, p in by_variant.items()) if several
                 else listing(next(iter(by_variant.values()))))
        text += (f" The same small job{' of each variant' if several else ''} "
                 f"(`benchmarks/same_arithmetic.py`: {jobs}) run at {pairs} logged the same "
                 f"steps and learning rates, {losses}, and identical answers and probe "
                 f"completions: the training arithmetic{' of each variant' if several else ''} "
                 "did not change in between. Over hundreds of epochs rounding differences grow, "
                 "so a rerun at the newer commit does not repeat a run digit for digit.")
    missing: dict[str, list[str]] = {}
    for label, (commit, _) in runs.items():
        if label not in linked:
            missing.setdefault(commit, []).append(label)
    if missing:
        named = [f"{c} ({listing(labels)})" if len(variants) > 1 else c
                 for c, labels in missing.items()]
        which = ("commits " if len(missing) > 1 else "commit ") + listing(named)
        text += (f" No recorded check that the code trains alike links {which} to {target}: "
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
