"""Do two commits train and answer alike? The check behind every sentence that compares
runs of one configuration made at different commits.

    python benchmarks/same_arithmetic.py OLD NEW [--profile smoke] [--kind pretrain_finetune]
                                         [--variant vanilla] [--changes '{"dropout": 0.1}']

Checks out both commits into temporary worktrees, runs the same job of a cheap profile in
each (one thread, a process per commit, the package imported from its own worktree only),
and compares what the runs wrote: the logged losses and learning rates step by step, the
answers, the probe completions. Writes `results/benchmarks/same_arithmetic_OLD_NEW.json`
(`..._OLD_NEW_VARIANT.json` for an attention variant other than vanilla). A check speaks
for its variant only: the trainer is shared, but each variant's attention code is its own.

What it shows and what it does not. Identical answers with losses equal to float32 rounding
say that the training arithmetic and the data did not change between the commits. Over
hundreds of epochs such rounding differences can still grow, so a long run repeated at the
newer commit would match the older one closely but not digit for digit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs one job with the worktree's own `lib`: an editable install of the main checkout
# would otherwise fill in modules the older commit does not have.
RUNNER = """
import sys
sys.meta_path = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
sys.path.insert(0, {root!r})
from dataclasses import is_dataclass, replace
try:
    import lib.runs.pipeline as P
    import lib.runs.profiles as PR
except ModuleNotFoundError:  # a commit from before lib was split into layers
    import lib.pipeline as P
    import lib.profiles as PR
base = PR.PROFILES[{profile!r}]
# A dict for a phase's training configuration changes fields inside it.
fields = {{key: replace(getattr(base, key), **value)
          if isinstance(value, dict) and is_dataclass(getattr(base, key)) else value
          for key, value in {changes!r}.items()}}
PR.PROFILES[{profile!r}] = replace(base, **fields)
P.run({kind!r}, {profile!r}, variant={variant!r}, progress=False)
"""


def run_at(commit: str, profile: str, kind: str, variant: str, changes: dict,
           scratch: Path) -> Path:
    tree = scratch / f"tree-{commit}"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", str(tree), commit],
                   check=True, capture_output=True)
    try:
        data = Path(os.environ.get("BIRTHPLACE_DATA", ROOT.parent / "shared/data/birthplaces"))
        env = dict(os.environ, BIRTHPLACE_DATA=str(data.resolve()), BOOK_RESULTS=str(scratch / commit / "results"),
                   BOOK_CHECKPOINTS=str(scratch / commit / "checkpoints"),
                   OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", BOOK_GIT_COMMIT=commit)
        subprocess.run([sys.executable, "-c", RUNNER.format(root=str(tree), kind=kind, profile=profile,
                                                      variant=variant, changes=changes)],
                       cwd=tree, env=env, check=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)],
                       check=False, capture_output=True)
    return scratch / commit / "results" / profile


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _text(row: dict) -> dict:
    """A row's answers and completions, without its floating-point scores."""
    return {k: v for k, v in row.items() if not isinstance(v, float)}


def compare(old: Path, new: Path) -> dict:
    """Per file both runs wrote: losses (largest relative difference), answers, probes."""
    out: dict = {}
    for path in sorted(old.iterdir()):
        other = new / path.name
        if not other.exists():
            out[path.name] = "missing at the newer commit"
        elif path.name.endswith(".metrics.jsonl"):
            a, b = read_jsonl(path), read_jsonl(other)
            same_steps = [(x["step"], x["lr"]) for x in a] == [(y["step"], y["lr"]) for y in b]
            worst = max((abs(x["loss"] - y["loss"]) / max(abs(x["loss"]), 1e-12)
                         for x, y in zip(a, b, strict=False)), default=0.0)
            out[path.name] = {"logged steps": len(a), "same steps and rates": same_steps,
                              "largest relative loss difference": worst}
        elif path.name.endswith(".details.json"):
            a, b = (json.loads(p.read_text(encoding="utf-8")) for p in (path, other))
            out[path.name] = {
                split: sum(_text(x) == _text(y) for x, y in zip(a[split], b[split], strict=True))
                / max(len(a[split]), 1) for split in a}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--profile", default="smoke")
    parser.add_argument("--kind", default="pretrain_finetune")
    parser.add_argument("--variant", default="vanilla", help="the attention variant both commits run")
    parser.add_argument("--changes", type=json.loads, default={},
                        help='profile fields set at both commits, as JSON: {"dropout": 0.1} '
                             "exercises dropout, which the smoke profile turns off; "
                             '{"pretrain": {"epoch_token_mean": true}} changes a field of one '
                             "phase's training configuration")
    args = parser.parse_args()
    commits = [subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", c], check=True,
                              capture_output=True, text=True).stdout.strip()
               for c in (args.old, args.new)]
    with tempfile.TemporaryDirectory() as tmp:
        folders = [run_at(c, args.profile, args.kind, args.variant, args.changes, Path(tmp)) for c in commits]
        files = compare(*folders)
    record = {"what": "the same job at two commits: do they train and answer alike?",
              "old": commits[0], "new": commits[1], "profile": args.profile, "changes": args.changes, "kind": args.kind,
              "variant": args.variant,
              "files (share of answers or completions that are identical)": files,
              "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    suffix = "" if args.variant == "vanilla" else f"_{args.variant}"
    if any(isinstance(v, dict) for v in args.changes.values()):
        suffix += "_phase_changes"  # kept apart from the same commits' check without them
    target = ROOT / "results" / "benchmarks" / f"same_arithmetic_{commits[0]}_{commits[1]}{suffix}.json"
    target.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
