"""The research variants against vanilla attention: tables, rates and verdicts.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from lib.report.formatting import format_stat
from lib.report.reading import dev_outcomes, runs_of
from lib.report.results import dev_accuracies, probe_count
from lib.report.stats import Rate, exact_rate, mcnemar
from lib.report.verdicts import paired_text, probe_outcomes, rate_text
from lib.runs.records import load_records


def _variants() -> list[str]:
    """Registered attention variants, vanilla (the reference) first."""
    from lib.core.attention import available_variants  # the registry imports torch; only here

    return sorted(available_variants(), key=lambda v: (v != "vanilla", v))


def _per_seed_counts(records: list[dict], probe: str, against: str) -> str:
    """'76, 58, 66 of 90': one probe's count per seed in seed order, against the person's own
    place (`gold`) or the control's (the seeds ask the same people, so their counts are
    listed, not added up); totals are named per seed where they differ."""
    pairs = [probe_count(r["metrics"]["probe"], probe, against) for r in records]
    if len({n for _, n in pairs}) == 1:
        return f"{', '.join(str(k) for k, _ in pairs)} of {pairs[0][1]}"
    return ", ".join(f"{k}/{n}" for k, n in pairs)


def variant_table(profile: str, root: Path | None = None) -> pd.DataFrame:
    """One row per registered attention variant: what its pretrain + finetune runs measured.

    Dev accuracy is listed seed by seed (mean ± std from three seeds on); the probes give one
    count per seed, with the control place's counts beside them, as a description (the paired
    verdicts are `variant_findings`'). A variant with no record is listed as pending.
    """
    records = load_records(profile, root)
    rows = []
    for variant in _variants():
        fine = runs_of(records, "pretrain_finetune", variant)
        pre = [r for r in runs_of(records, "pretrain", variant) if "probe" in r["metrics"]]
        row: dict[str, str] = {"variant": variant,
                               "seeds": ", ".join(str(r["seed"]) for r in fine) or "pending"}
        row["dev accuracy"] = format_stat(dev_accuracies(fine)) if fine else "pending"
        for probe, label in (("bio", "biography probe"), ("name", "name probe")):
            row[f"{label}, per seed (control)"] = (
                f"{_per_seed_counts(pre, probe, 'gold')} ({_per_seed_counts(pre, probe, 'control')})"
                if pre else "pending")
        losses = [r["metrics"]["final_loss"] for r in runs_of(records, "pretrain", variant)
                  if "final_loss" in r["metrics"]]
        row["final pretraining loss"] = (", ".join(f"{x:.3f}" for x in losses) if losses
                                         else "pending")
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def variant_findings(profile: str, root: Path | None = None) -> dict[str, str]:
    """Each research variant against vanilla attention, seed by seed on the seeds both ran.

    Every comparison is paired on the same people (McNemar's exact test, the rule
    `lib.report.stats.ALPHA`): the probes of the two pretrained models, then the answers of the two
    finetuned ones. Dev accuracy ranks the two in a seed only when one of them is above the
    London baseline there; otherwise the sentence says it cannot.
    """
    records = load_records(profile, root)

    def runs(kind: str, variant: str) -> dict[int, dict]:
        return {r["seed"]: r for r in runs_of(records, kind, variant)}

    london = next((r for r in records if r["kind"] == "london"), None)
    london_right = dev_outcomes(london, root) if london else None
    out: dict[str, str] = {}
    for variant in _variants():
        if variant == "vanilla":
            continue
        pre, ref_pre = runs("pretrain", variant), runs("pretrain", "vanilla")
        pf, ref_pf = runs("pretrain_finetune", variant), runs("pretrain_finetune", "vanilla")
        seeds = sorted(set(pre) & set(ref_pre) & set(pf) & set(ref_pf))
        if not seeds:
            continue
        per_seed = []
        for seed in seeds:
            parts = []
            for probe, label in (("bio", "biography probe"), ("name", "name probe")):
                own, _ = probe_outcomes(pre[seed], probe, root)
                ref, _ = probe_outcomes(ref_pre[seed], probe, root)
                if not own or len(own) != len(ref):
                    continue
                parts.append(f"{label} {rate_text((sum(own), len(own)))}, "
                             + paired_text(mcnemar(own, ref), f"vanilla's {rate_text((sum(ref), len(ref)))}"))
            mine, theirs = dev_outcomes(pf[seed], root), dev_outcomes(ref_pf[seed], root)
            dev_own, dev_ref = rate_text((sum(mine), len(mine))), rate_text((sum(theirs), len(theirs)))
            if london_right is not None and not any(
                    mcnemar(x, london_right).verdict == "above" for x in (mine, theirs)):
                parts.append(f"dev accuracy {dev_own} against vanilla's {dev_ref}; neither is "
                             "above the London baseline here, so dev accuracy cannot rank the two")
            else:
                parts.append(f"dev accuracy {dev_own}, "
                             + paired_text(mcnemar(mine, theirs), f"vanilla's {dev_ref}"))
            per_seed.append(f"seed {seed}: " + "; ".join(parts))
        out[variant] = (f"**{variant}** (against vanilla on the same people, same data and "
                        "recipe): " + ". ".join(per_seed) + ".")
    spread = seed_spread(list(runs("pretrain", "vanilla").values()))
    if out and spread:
        out["spread"] = spread
    return out


def seed_spread(pretrained: list[dict], probe: str = "name") -> str | None:
    """How far one configuration's probe count moves between seeds, against counting noise.

    The paired tests above compare two models within one seed; training another seed adds
    variation of its own, and this sentence shows how much beside the binomial counting
    noise of one count (None for fewer than 2 seeds).
    """
    runs = sorted(pretrained, key=lambda r: r["seed"])
    if len(runs) < 2:
        return None
    hits = [r["metrics"]["probe"][f"{probe}_gold_correct"] for r in runs]
    n = runs[0]["metrics"]["probe"][f"{probe}_gold_total"]
    p = sum(hits) / (n * len(hits))
    observed = float(np.std(hits, ddof=1))
    counting = math.sqrt(n * p * (1 - p))
    verdict = ("wider than counting noise alone gives, so one seed of a variant ranks it only "
               "roughly" if observed > 1.5 * counting else "about what counting noise alone gives")
    seeds = ", ".join(str(r["seed"]) for r in runs)
    return (f"Seed to seed, vanilla's {probe} probe found {', '.join(map(str, hits))} of {n} people "
            f"(seeds {seeds}): a standard deviation of {observed:.1f} people against "
            f"{counting:.1f} from counting noise, {verdict}.")


def variant_seed_rates(profile: str, root: Path | None = None) -> dict[str, dict[int, Rate]]:
    """Per measure and variant (`"dev accuracy: rope"`, ...), each seed's rate with its exact
    interval: the rows `figures.seed_rates` draws, grouped by measure so the variants of one
    measure sit together. Only variants with pretrain and pretrain + finetune records."""
    records = load_records(profile, root)
    found = {v: (runs_of(records, "pretrain", v), runs_of(records, "pretrain_finetune", v))
             for v in _variants()}
    found = {v: runs for v, runs in found.items() if runs[0] and runs[1]}
    rows: dict[str, dict[int, Rate]] = {}
    for variant, (_, finetuned) in found.items():
        rows[f"dev accuracy: {variant}"] = {
            r["seed"]: exact_rate(r["metrics"]["dev"]["correct"], r["metrics"]["dev"]["total"])
            for r in finetuned}
    for probe, label in (("bio", "biography probe"), ("name", "name probe")):
        for variant, (pretrained, _) in found.items():
            rows[f"{label}: {variant}"] = {
                r["seed"]: exact_rate(*probe_count(r["metrics"]["probe"], probe))
                for r in pretrained if "probe" in r["metrics"]}
    return rows
