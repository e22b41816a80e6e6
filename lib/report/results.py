"""The results tables: every configuration of every profile, beside the published figures.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lib.report.choice import profiles_with_records
from lib.report.formatting import format_stat, listing, mean_std
from lib.report.reading import dev_outcomes, is_whole_data, world_label
from lib.report.stats import exact_rate, format_p, mcnemar
from lib.runs.profiles import SUPERSEDED
from lib.runs.records import load_records, records_by_seed

# The configurations of the matrix, in the order the book discusses them.
CONFIGURATIONS = {
    "london": "London baseline (always answer London)",
    "finetune": "finetune only (no pretraining)",
    "pretrain_finetune": "pretrain, then finetune",
}
# The same, short, for figure axes and table cells.
SHORT_CONFIGURATIONS = {"london": "London baseline", "finetune": "finetune only",
                        "pretrain_finetune": "pretrain, then finetune"}
# Every kind of run as a phrase inside a sentence ("... for seed 1").
KIND_WORDS = {"london": "the London baseline", "pretrain": "pretraining",
              "pretrain_finetune": "pretrain + finetune", "finetune": "finetuning alone"}


PROBES = {
    "name": "knowledge probe: NAME. NAME was born in …",
    "bio": "knowledge probe: biography up to the place",
}


# Figures published for this exercise (vanilla attention, the whole data, 500 dev questions).
# They are quoted, not measured here; each column names its source.
PUBLISHED_SOURCES = {
    "handout": "the exercise's handout (Stanford CS224N 2021, assignment 5)",
    "report": "the original report this book answers (April 2023)",
    "write-up": "another public write-up (pretraining took 42 minutes on a T4)",
}


PUBLISHED = {
    "london": {"report": "5.0 %"},
    "finetune": {"handout": "far below 10 %", "report": "0.6 %", "write-up": "2.19 %"},
    "pretrain_finetune": {"handout": "at least 10 %", "report": "21.6 %", "write-up": "24 %"},
}


def dev_accuracies(records: list[dict]) -> list[float]:
    """Each record's dev accuracy, in the records' order."""
    return [r["metrics"]["dev"]["accuracy"] for r in records]


def probe_count(probe_metrics: dict, probe: str, against: str = "gold") -> tuple[int, int]:
    """(found, asked) of one probe (`bio` or `name`, `PROBES`) in the probe metrics of a record,
    a snapshot or the never-read people: completions that start with the person's own place
    (`gold`) or with a control person's (`control`)."""
    return probe_metrics[f"{probe}_{against}_correct"], probe_metrics[f"{probe}_{against}_total"]


def probe_rates(records: list[dict], probe: str, against: str = "gold") -> list[float]:
    """Per-seed share of people whose probe completion starts with the place (own or control's)."""
    rates = []
    for r in records:
        found, asked = probe_count(r["metrics"]["probe"], probe, against)
        rates.append(found / asked if asked else float("nan"))
    return rates


def accuracy_stats(profile: str, root: Path | None = None) -> dict[tuple[str, str], dict]:
    """{(kind, variant): {mean, std, n, seeds, values}} for dev accuracy and probe rates.

    Probe entries use kinds `probe-name`, `probe-bio` (own place) and `control-name`,
    `control-bio` (another person's place, the chance level of a probe).
    """
    stats: dict[tuple[str, str], dict] = {}
    records = load_records(profile, root)

    def add(key: tuple[str, str], rs: list[dict], values: list[float]) -> None:
        mean, std = mean_std(values)
        stats[key] = {"mean": mean, "std": std, "n": len(values), "values": values,
                      "seeds": [r["seed"] for r in rs], "run_ids": [r["run_id"] for r in rs]}

    for kind in CONFIGURATIONS:
        by_variant: dict[str, list[dict]] = {}
        for r in records:
            if r["kind"] == kind:
                by_variant.setdefault(r["variant"], []).append(r)
        for variant, rs in by_variant.items():
            add((kind, variant), rs, dev_accuracies(rs))
    pretrain: dict[str, list[dict]] = {}
    for r in records:
        if r["kind"] == "pretrain":
            pretrain.setdefault(r["variant"], []).append(r)
    for variant, rs in pretrain.items():
        for probe in PROBES:
            add((f"probe-{probe}", variant), rs, probe_rates(rs, probe, "gold"))
            add((f"control-{probe}", variant), rs, probe_rates(rs, probe, "control"))
    return stats


# Short column heads (the page lists each source in full under the table).
PUBLISHED_COLUMNS = {"handout": "handout", "report": "report", "write-up": "write-up"}


def results_table(profile: str, root: Path | None = None) -> pd.DataFrame:
    """Every configuration of a profile with mean ± std over seeds, beside published figures."""
    stats = accuracy_stats(profile, root)
    kinds = [*CONFIGURATIONS, *(f"probe-{p}" for p in PROBES)]

    def order(key: tuple[str, str]) -> tuple:
        kind, variant = key
        return (variant not in ("vanilla", "none"), variant,
                kinds.index(kind) if kind in kinds else len(kinds))

    rows = []
    for (kind, variant), s in sorted(stats.items(), key=lambda item: order(item[0])):
        if kind in CONFIGURATIONS:
            label = f"{CONFIGURATIONS[kind]}: dev accuracy"
            value = format_stat(s["values"])
        elif kind.startswith("probe-"):
            probe = kind.split("-", 1)[1]
            label = f"{PROBES[probe]}: own birthplace found"
            control = stats[(f"control-{probe}", variant)]
            value = f"{format_stat(s['values'])} (control {format_stat(control['values'])})"
        else:
            continue
        if variant not in ("vanilla", "none"):
            label += f" [{variant} attention]"
        quoted = PUBLISHED.get(kind, {}) if variant in ("vanilla", "none") else {}
        rows.append({"configuration": label,
                     "seeds": ", ".join(map(str, s["seeds"])),
                     "measured": value,
                     **{f"published, {PUBLISHED_COLUMNS[src]}": quoted.get(src, "")
                        for src in PUBLISHED_SOURCES}})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Every profile side by side: the results page's first table and figure
# --------------------------------------------------------------------------------------
# Published figures as numbers, for the figure's markers (the table quotes them as text).
PUBLISHED_VALUES = {
    "london": {"report": 5.0},
    "finetune": {"report": 0.6, "write-up": 2.19},
    "pretrain_finetune": {"report": 21.6, "write-up": 24.0},
}


def accuracy_points(root: Path | None = None) -> list[dict]:
    """One entry per finished vanilla run (and London) of every profile with records: the
    dev rate with its exact interval and, for trained runs, McNemar's test against London
    on the same people; for pretrain + finetune also against finetuning alone of the same
    seed (None where that run is missing)."""
    points = []
    for profile in profiles_with_records(root):
        label = f"{profile} ({world_label(profile, root)})"
        records = [r for r in load_records(profile, root) if r["variant"] in ("vanilla", "none")
                   and r["kind"] in CONFIGURATIONS]
        london = next((r for r in records if r["kind"] == "london"), None)
        london_outcomes = dev_outcomes(london, root) if london else None
        alone = {r["seed"]: dev_outcomes(r, root) for r in records if r["kind"] == "finetune"}
        for kind in CONFIGURATIONS:
            for r in sorted((r for r in records if r["kind"] == kind), key=lambda r: r["seed"]):
                d = r["metrics"]["dev"]
                right = dev_outcomes(r, root) if kind != "london" else None
                versus = None
                if right is not None and london_outcomes is not None:
                    versus = mcnemar(right, london_outcomes)
                versus_alone = None
                if kind == "pretrain_finetune" and r["seed"] in alone:
                    versus_alone = mcnemar(right, alone[r["seed"]])
                points.append({"profile": profile, "label": label,
                               "kind": kind, "seed": None if kind == "london" else r["seed"],
                               "rate": exact_rate(d["correct"], d["total"]), "versus_london": versus,
                               "versus_finetune": versus_alone})
    return points


def side_by_side(root: Path | None = None, points: list[dict] | None = None) -> pd.DataFrame:
    """The results page's first table: every run of every profile, one row each, seeds one
    by one, each rate with its exact interval and its paired comparison with London
    (`points`: `accuracy_points` already computed, which reads every run's answers)."""
    rows = []
    for point in accuracy_points(root) if points is None else points:
        versus = point["versus_london"]
        rows.append({
            "configuration": SHORT_CONFIGURATIONS[point["kind"]],
            "profile": point["label"],
            "seed": "" if point["seed"] is None else str(point["seed"]),
            "dev accuracy (exact 95 % CI)": point["rate"].cell(),
            "against London: people right only here vs only there": "" if versus is None else
            f"{versus.verdict}: {versus.only_a} vs {versus.only_b}, {format_p(versus.p_value)}",
        })
    return pd.DataFrame(rows)


def answer_line(kind: str, root: Path | None = None, points: list[dict] | None = None,
                prefer: str | None = None) -> str:
    """The runs of `kind` (vanilla) on `prefer` when it has them (the chapters' profile, so
    that one page's answers compare runs of one profile), else on the first profile that has
    them, whole data first and superseded profiles passed over: each seed's rate with its
    interval and its paired comparisons with London and, after pretraining, with finetuning
    alone of the same seed (`points`: `accuracy_points` already computed)."""
    points = accuracy_points(root) if points is None else points
    order = dict.fromkeys(p["profile"] for p in points)
    if prefer in order:
        order = {prefer: None, **order}
    for profile in order:
        if profile in SUPERSEDED:  # on the results page only
            continue
        here = [p for p in points if p["profile"] == profile and p["kind"] == kind]
        if not here:
            continue
        parts = []
        for p in here:
            versus = p["versus_london"]
            seed = "" if p["seed"] is None else f"seed {p['seed']}: "
            against = "" if versus is None else (
                f", {versus.relation} London (McNemar {format_p(versus.p_value)})")
            alone = p.get("versus_finetune")
            if alone is not None:
                against += (f" and {alone.relation} finetuning alone of the same seed "
                            f"(McNemar {format_p(alone.p_value)})")
            parts.append(f"{seed}{p['rate'].text()}{against}")
        return f"profile `{profile}` ({world_label(profile, root)}): " + "; ".join(parts)
    return "no finished run yet"


def part2_summary(profile: str | None, root: Path | None = None,
             points: list[dict] | None = None) -> str | None:
    """The landing page's one paragraph on Part 2: on `profile` (the chapters'), each trained
    configuration's rate seed by seed with its exact interval and its paired verdict against
    London. None until the profile holds London and both trained configurations."""
    points = accuracy_points(root) if points is None else points
    here = {kind: [p for p in points if p["profile"] == profile and p["kind"] == kind]
            for kind in CONFIGURATIONS}
    if profile is None or not all(here.values()):
        return None

    def seeds(kind: str) -> str:
        runs = here[kind]
        rates = listing([f"{p['rate'].text()} in seed {p['seed']}" for p in runs])
        relations = [p["versus_london"].relation for p in runs if p["versus_london"] is not None]
        if not relations:
            return rates
        if len(set(relations)) == 1:
            where = "" if len(runs) == 1 else (" in both seeds" if len(runs) == 2 else " in every seed")
            return f"{rates}, {relations[0]} London{where}"
        counts = listing([f"{relation} London in {relations.count(relation)}"
                          for relation in dict.fromkeys(relations)])
        return f"{rates} ({counts} of {len(relations)} seeds)"

    london = here["london"][0]["rate"]
    published = "" if not is_whole_data(profile, root) else (
        " (published for the classic setting: "
        + " and ".join(f"{v:g} %" for v in PUBLISHED_VALUES["pretrain_finetune"].values()) + ")")
    return (f"On the {london.n} dev questions of the {world_label(profile, root)} (profile "
            f"`{profile}`), always answering London scores {london.text()}. Finetuned on the "
            f"training questions alone, the model answers {seeds('finetune')}. Pretrained on "
            f"`wiki.txt` first, then finetuned the same way, it answers "
            f"{seeds('pretrain_finetune')}{published}. \"Above\" and \"below\" mean McNemar's "
            "exact test on the same people gives p < 0.05.")


def variant_comparison(variant: str, profile: str, root: Path | None = None) -> str | None:
    """`variant` against vanilla after pretraining and finetuning on one profile, seed by seed
    on the same people (McNemar's exact test); None where no seed has both."""
    ours = records_by_seed(profile, "pretrain_finetune", variant, root)
    base = records_by_seed(profile, "pretrain_finetune", "vanilla", root)
    shared = sorted(set(ours) & set(base))
    if not shared:
        return None
    parts = []
    for seed in shared:
        a, b = dev_outcomes(ours[seed], root), dev_outcomes(base[seed], root)
        paired = mcnemar(a, b)
        parts.append(f"seed {seed}: {exact_rate(sum(a), len(a)).text()} against vanilla's "
                     f"{sum(b)}/{len(b)}, {paired.relation} vanilla "
                     f"(McNemar {format_p(paired.p_value)})")
    return f"profile `{profile}` ({world_label(profile, root)}): " + "; ".join(parts)


def variant_answer_line(variant: str, root: Path | None = None) -> str:
    """`variant_comparison` on the first profile (whole data first, superseded ones passed
    over) that has one."""
    for profile in profiles_with_records(root):
        line = None if profile in SUPERSEDED else variant_comparison(variant, profile, root)
        if line:
            return line
    return "no finished run yet"
