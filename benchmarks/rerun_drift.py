"""How far does a rerun of one finished configuration land from the stored run?

    python benchmarks/rerun_drift.py RERUN_RESULTS [--profile mini] [--variant vanilla]
                                     [--seed 0]

RERUN_RESULTS is the `results/` folder of a checkout that ran the same profile, variant and
seed again (`python -m lib run pretrain ... --force`, then `pretrain_finetune`), typically at
a later commit. The script compares that rerun with the stored records of this checkout,
person by person: the dev answers after pretraining and finetuning, and the biography
probe after pretraining (McNemar's exact test on each), beside the final losses. Writes
`results/benchmarks/rerun_PROFILE_VARIANT_seedSEED_COMMIT.json`.

Why it matters: `benchmarks/same_arithmetic.py` shows that two commits compute a small job
alike up to float32 rounding, and rounding differences grow over hundreds of epochs. This
measures how far they grow in a whole run, which is the spread any comparison of runs made
at different commits carries on top of its seeds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from lib.report.reading import dev_outcomes  # noqa: E402
from lib.report.stats import mcnemar  # noqa: E402
from lib.report.verdicts import probe_asked  # noqa: E402
from lib.runs.records import records_by_seed  # noqa: E402


def _record(profile: str, kind: str, variant: str, seed: int, root: Path) -> dict:
    found = records_by_seed(profile, kind, variant, root).get(seed)
    if found is None:
        raise SystemExit(f"no {kind} record of {profile} {variant} seed {seed} under {root}")
    return found


def _summary(pre: dict, fin: dict) -> dict:
    probe = pre["metrics"]["probe"]
    unread = pre["metrics"].get("probe_unread")
    return {
        "commit": pre["git_commit"][:7], "created": pre["created"], "device": pre["device_name"],
        "pretrain final loss": pre["metrics"]["final_loss"],
        "biography probe": f"{probe['bio_gold_correct']}/{probe['bio_gold_total']}",
        "name probe": f"{probe['name_gold_correct']}/{probe['name_gold_total']}",
        "never-read biography probe": (f"{unread['bio_gold_correct']}/{unread['bio_gold_total']}"
                                       if unread else None),
        "dev": f"{fin['metrics']['dev']['correct']}/{fin['metrics']['dev']['total']}",
    }


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("rerun_results", type=Path)
    ap.add_argument("--profile", default="mini")
    ap.add_argument("--variant", default="vanilla")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    stored_root, rerun_root = ROOT / "results", args.rerun_results.resolve()
    runs = {}
    for label, root in (("stored", stored_root), ("rerun", rerun_root)):
        runs[label] = (_record(args.profile, "pretrain", args.variant, args.seed, root),
                       _record(args.profile, "pretrain_finetune", args.variant, args.seed, root))
    (s_pre, s_fin), (r_pre, r_fin) = runs["stored"], runs["rerun"]
    dev = mcnemar(dev_outcomes(r_fin, rerun_root), dev_outcomes(s_fin, stored_root))
    s_bio, r_bio = probe_asked(s_pre, "bio", stored_root), probe_asked(r_pre, "bio", rerun_root)
    if list(s_bio["name"]) != list(r_bio["name"]):
        raise SystemExit("the two runs' biography probes asked different people")
    bio = mcnemar(list(r_bio["hit"]), list(s_bio["hit"]))
    out = {
        "what": "the same configuration run twice, at the commits named: how far apart do they land?",
        "profile": args.profile, "variant": args.variant, "seed": args.seed,
        "stored": _summary(s_pre, s_fin), "rerun": _summary(r_pre, r_fin),
        "dev, rerun against stored": {"only rerun right": dev.only_a, "only stored right": dev.only_b,
                                      "McNemar p": dev.p_value},
        "biography probe, rerun against stored": {"only rerun": bio.only_a, "only stored": bio.only_b,
                                                  "McNemar p": bio.p_value},
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    target = (ROOT / "results" / "benchmarks"
              / f"rerun_{args.profile}_{args.variant}_seed{args.seed}_{out['rerun']['commit']}.json")
    target.write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    main()
