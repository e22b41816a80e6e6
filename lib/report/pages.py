"""Tables the book shows, built from result records: the one place that turns records into rows.

Chapters and stored notebooks call these functions instead of opening result files
themselves, so every number on a page comes from a record under `results/<profile>/`
(or the predictions, details and metrics log it names). The chapters present the best
profile that has results: `full` once it exists, else `cpu32`, else `cpu`, else `mini`, else `smoke`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from lib.report.stats import Paired, exact_rate, fisher, format_p, mcnemar
from lib.runs.profiles import PROFILE_ORDER, PROFILES
from lib.runs.records import load_records, results_root

MATRIX_KINDS = ("london", "pretrain", "pretrain_finetune", "finetune")

# The configurations of the matrix, in the order the book discusses them.
CONFIGURATIONS = {
    "london": "London baseline (always answer London)",
    "finetune": "finetune only (no pretraining)",
    "pretrain_finetune": "pretrain, then finetune",
}
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


def matrix_complete(profile: str, root: Path | None = None) -> bool:
    """Whether the London baseline and every vanilla run of the matrix (pretrain, pretrain +
    finetune, finetune) have finished for every seed the profile names."""
    seeds = PROFILES[profile].seeds
    have = {(r["kind"], r["seed"]) for r in load_records(profile, root)
            if r["variant"] in ("vanilla", "none")}
    need = {("london", 0)} | {(kind, seed) for kind in MATRIX_KINDS if kind != "london"
                              for seed in seeds}
    return need <= have


def chapter_profile(root: Path | None = None) -> str | None:
    """The profile the chapters show: the first of full, cpu, mini, smoke whose matrix has finished
    for all its seeds (a profile still running, or run in parts, is passed over, so every
    page shows one complete matrix)."""
    for profile in PROFILE_ORDER:
        if matrix_complete(profile, root):
            return profile
    return None


def vanilla_runs(profile: str, kind: str, root: Path | None = None) -> list[dict]:
    """The vanilla-attention runs of one kind, by seed: what the knowledge-access chapters
    discuss (the research variants have their own chapter)."""
    return sorted((r for r in load_records(profile, root, kind) if r["variant"] == "vanilla"),
                  key=lambda r: r["seed"])


def load_data():
    """The data, from the folder the Makefile chooses, wherever the caller runs (chapters
    execute inside book/, where a relative `BIRTHPLACE_DATA` would point elsewhere)."""
    from lib.core import data as D
    from lib.report.analysis import data_folder

    return D.load(data_folder())


def world_of(profile: str, root: Path | None = None) -> str:
    """The world a profile's runs trained and evaluated on, as their records say."""
    worlds = sorted({r["world"] for r in load_records(profile, root) if "world" in r})
    return "; ".join(worlds) if worlds else "no records yet"


def caption(profile: str, root: Path | None = None) -> str:
    """What every table and plot says about its numbers: the profile and the world."""
    text = f"profile {profile}, {world_of(profile, root)}"
    if profile == "smoke":
        text += " (a wiring check: its numbers say nothing about accuracy)"
    elif profile != "full" and is_whole_data(profile, root):
        text += " (the whole data; the recipe departs from the classic one as stated)"
    elif profile != "full":
        text += " (a mini world, not the classic setting)"
    return text


def short_caption(profile: str, root: Path | None = None) -> str:
    """The caption for a plot title: profile and world in a few words."""
    return f"{profile} profile, {world_of(profile, root).split(', ')[0]}"


def result_file(record: dict, key: str, root: Path | None = None) -> Path | None:
    """A file a record names (`predictions`, `details`, `metrics_log`), beside the record."""
    name = record.get("files", {}).get(key)
    return None if name is None else (root or results_root()) / record["profile"] / name


def metrics_log(record: dict, root: Path | None = None) -> list[dict]:
    """The run's training log (step, epoch, tokens, loss, lr, time); empty for London."""
    from lib.core.train.loop import read_log

    path = result_file(record, "metrics_log", root)
    return read_log(path) if path is not None and path.exists() else []


def details(record: dict, root: Path | None = None) -> dict:
    """The run's per-question details (finetune kinds) or per-person probe (pretrain)."""
    path = result_file(record, "details", root)
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def percent(x: float, digits: int = 1) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.{digits}f} %"


def mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (None for a single seed: no spread to report)."""
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return float("nan"), None
    return float(arr.mean()), (float(arr.std(ddof=1)) if arr.size > 1 else None)


# A spread needs at least this many seeds; fewer are listed one by one.
MIN_SEEDS_FOR_SPREAD = 3


def format_mean_std(values: list[float]) -> str:
    """Mean ± sample std over at least three seeds; fewer are shown one by one."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{percent(values[0])} (1 seed)"
    if len(values) < MIN_SEEDS_FOR_SPREAD:
        return f"{', '.join(percent(v) for v in values)} ({len(values)} seeds, one by one)"
    mean, std = mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f} % ({len(values)} seeds)"


def dev_accuracies(records: list[dict]) -> list[float]:
    return [r["metrics"]["dev"]["accuracy"] for r in records]


def probe_rates(records: list[dict], probe: str, against: str = "gold") -> list[float]:
    """Per-seed share of people whose probe completion starts with the place (own or control's)."""
    rates = []
    for r in records:
        p = r["metrics"]["probe"]
        total = p[f"{probe}_{against}_total"]
        rates.append(p[f"{probe}_{against}_correct"] / total if total else float("nan"))
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


def format_stat(values: list[float]) -> str:
    """Mean ± sample std in percent over at least three seeds; fewer are listed one by one
    (a standard deviation of two values says next to nothing)."""
    if len(values) < MIN_SEEDS_FOR_SPREAD:
        return " / ".join(percent(v) for v in values) if values else "n/a"
    mean, std = mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f} %"


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


def prediction_rows(record: dict, root: Path | None = None) -> pd.DataFrame:
    """One row per dev question of a run: name, gold place, prediction, right or wrong.

    Finetuned runs keep these in their details file; the London baseline's gold places
    come from the world its record names (rebuilt from the data with the same profile).
    """
    rows = details(record, root).get("dev")
    if rows is None:
        from lib.core.evaluate import read_predictions
        from lib.runs.pipeline import world_for
        from lib.runs.profiles import get_profile

        world = world_for(get_profile(record["profile"]), load_data())
        if world.description != record["world"]:
            raise ValueError(f"{record['run_id']}: its world ({record['world']}) is not the one "
                             f"the profile builds now ({world.description})")
        preds = read_predictions(result_file(record, "predictions", root))
        rows = [{"name": q.name, "gold": q.place, "prediction": p}
                for q, p in zip(world.dev, preds, strict=True)]
    table = pd.DataFrame(rows)
    table["correct"] = table["prediction"] == table["gold"]
    return table


def sample_predictions(table: pd.DataFrame, n_right: int = 5, n_wrong: int = 5,
                       seed: int = 0) -> pd.DataFrame:
    """A seeded sample of right and of wrong answers (as many as exist, up to n each)."""
    right = table[table["correct"]]
    wrong = table[~table["correct"]]
    parts = [right.sample(min(n_right, len(right)), random_state=seed),
             wrong.sample(min(n_wrong, len(wrong)), random_state=seed)]
    columns = [c for c in ("name", "gold", "prediction", "correct") if c in table]
    return pd.concat(parts)[columns].reset_index(drop=True)


def provenance_line(record: dict) -> str:
    """Where and with what a run was made, from its record."""
    seconds = record.get("train_time", record.get("wall_time", 0.0))
    return (f"{record['run_id']} ({record['profile']} profile): {record['device_name']}, torch "
            f"{record['torch_version']}, commit {record['git_commit']}, {seconds:.0f} s, "
            f"created {record['created']}")


def accuracy_line(record: dict) -> str:
    d = record["metrics"]["dev"]
    return (f"{record['run_id']}: {d['correct']} of {d['total']} dev questions right = "
            f"{percent(d['accuracy'])} ({caption(record['profile'])})")


def probe_table(record: dict) -> pd.DataFrame:
    """The pretraining probe of one run: own birthplace found vs a control's."""
    p = record["metrics"]["probe"]
    rows = []
    for probe, label in PROBES.items():
        row = {"probe": label}
        for against, column in (("gold", "own birthplace"), ("control", "control: another person's")):
            c, t = p[f"{probe}_{against}_correct"], p[f"{probe}_{against}_total"]
            row[column] = f"{c}/{t} = {percent(c / t if t else float('nan'))}"
        rows.append(row)
    return pd.DataFrame(rows)


def probe_examples(record: dict, n: int = 8, seed: int = 0, root: Path | None = None) -> pd.DataFrame:
    """Completions of both probes for a seeded sample of people (hits first)."""
    rows = details(record, root).get("probe", [])
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sample(min(n, len(table)), random_state=seed)
    order = table["name_probe"].astype(int) + table["bio_probe"].fillna(False).astype(int)
    table = table.assign(_hits=order).sort_values("_hits", ascending=False, kind="stable")
    return table[["name", "place", "name_completion", "name_probe", "bio_completion",
                  "bio_probe"]].reset_index(drop=True)


def snapshot_table(record: dict) -> pd.DataFrame:
    """How the measure grew with pretraining: probe rates (pretrain) or dev accuracy after
    finetuning each pretraining snapshot (pretrain_finetune)."""
    rows = []
    for s in record["metrics"].get("snapshots", []):
        row = {"pretraining epoch": s["epoch"], "step": s["step"], "tokens": s["tokens"]}
        if "probe" in s:
            for probe in PROBES:
                for against in ("gold", "control"):
                    c = s["probe"][f"{probe}_{against}_correct"]
                    t = s["probe"][f"{probe}_{against}_total"]
                    label = "own" if against == "gold" else "control"
                    row[f"{probe} probe, {label}"] = c / t if t else np.nan
        if "dev" in s:
            row["dev accuracy after finetuning"] = s["dev"]["accuracy"]
        rows.append(row)
    return pd.DataFrame(rows)


def predicted_places(record: dict, root: Path | None = None, top: int = 10) -> pd.DataFrame:
    """The most frequent answers of a finetuned run, on dev questions and on invented names."""
    d = details(record, root)
    out = []
    for split in ("dev", "strangers"):
        counts = pd.Series([row["prediction"] for row in d.get(split, [])]).value_counts()
        total = int(counts.sum())
        for place, count in counts.head(top).items():
            out.append({"questions": split, "answer": place, "count": int(count),
                        "share": count / total})
    return pd.DataFrame(out)


def headline(record: dict) -> str:
    """A run's main number in a few words."""
    m = record["metrics"]
    if "dev" in m:
        return f"dev {m['dev']['correct']}/{m['dev']['total']} = {percent(m['dev']['accuracy'])}"
    p = m.get("probe", {})
    return (f"name probe {p.get('name_gold_correct')}/{p.get('name_gold_total')} "
            f"(control {p.get('name_control_correct')})")


def stored_runs(runs_dir: Path, root: Path | None = None) -> pd.DataFrame:
    """Every run with a record or a stored notebook (`runs_dir/<profile>/<run-id>.ipynb`)."""
    root = root or results_root()
    keys = {(nb.parent.name, nb.stem) for nb in runs_dir.glob("*/*.ipynb")}
    keys |= {(r["profile"], r["run_id"]) for profile in PROFILE_ORDER
             for r in load_records(profile, root)}
    rows = []
    for profile, rid in sorted(keys, key=lambda k: (PROFILE_ORDER.index(k[0])
                                                    if k[0] in PROFILE_ORDER else 99, k[1])):
        nb = runs_dir / profile / f"{rid}.ipynb"
        record_file = root / profile / f"{rid}.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else None
        rows.append({"profile": profile, "run": rid, "notebook": nb if nb.exists() else None,
                     "result": headline(record) if record else "no record",
                     "device": record.get("device_name", "") if record else "",
                     "created": record.get("created", "") if record else ""})
    return pd.DataFrame(rows)


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (MyST renders it; cells may hold links)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(cell, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def run_links(runs_dir: Path, page_dir: Path, root: Path | None = None,
              profile: str | None = None) -> str:
    """The runs as a Markdown table whose run ids link to their stored notebooks."""
    table = stored_runs(runs_dir, root)
    if profile is not None and not table.empty:
        table = table[table["profile"] == profile]
    if table.empty:
        return "No runs yet."
    links = [f"[{row.run}]({Path(os.path.relpath(row.notebook, page_dir)).as_posix()})"
             if row.notebook is not None else f"{row.run} (notebook not rendered yet)"
             for row in table.itertuples()]
    table = table.assign(run=links).drop(columns=["notebook"])
    return markdown_table(table)


def pooled(records: list[dict], hit: str, total: str) -> tuple[int, int]:
    """Hits and trials summed over seeds (each seed asks the same people)."""
    return (sum(int(_dig(r["metrics"], hit)) for r in records),
            sum(int(_dig(r["metrics"], total)) for r in records))


def _london(records: list[dict]) -> tuple[int, int] | None:
    """The London baseline's (correct, total) on dev, None without a London record."""
    london = [r for r in records if r["kind"] == "london"]
    return pooled(london, "dev.correct", "dev.total") if london else None


def _pooled_probe(records: list[dict], probe: str, against: str) -> tuple[int, int]:
    return pooled(records, f"probe.{probe}_{against}_correct", f"probe.{probe}_{against}_total")


def _dig(d: dict, dotted: str):
    for part in dotted.split("."):
        d = d[part]
    return d


def _seeds(n: int) -> str:
    return f"{n} seed" + ("" if n == 1 else "s")


def _rate(pair: tuple[int, int]) -> str:
    hits, n = pair
    return f"{hits}/{n} = {percent(hits / n if n else float('nan'))}"


def probe_outcomes(record: dict, probe: str, root: Path | None = None) -> tuple[list[bool], list[bool]]:
    """Per person a probe asked (in the probe file's order): did its completion start with
    the person's own place, and did it start with the control's? (The biography probe asks
    only people whose place is written inside the window.)"""
    from lib.report.analysis import probe_table  # the probe's own scoring rule

    table = probe_table(details(record, root).get("probe", []))
    if table.empty:
        return [], []
    asked = table[table[f"{probe}_probe"].notna()]
    return ([bool(x) for x in asked[f"{probe}_probe"]],
            [bool(x) for x in asked[f"{probe}_control"]])


def _paired(test: Paired, other: str) -> str:
    """'above London (12 vs 3 people, McNemar p = 0.035)'."""
    return (f"{test.relation} {other} ({test.only_a} vs {test.only_b} people, "
            f"McNemar {format_p(test.p_value)})")


def _across(verdicts: list[str], word: str = "above") -> str:
    """How many seeds gave the verdict `word`: '2 of 3 seeds', '0 of 1 seed'."""
    n, k = len(verdicts), sum(v == word for v in verdicts)
    return f"{k} of {_seeds(n)}"


def findings(profile: str, root: Path | None = None, variant: str = "vanilla") -> dict[str, str]:
    """What a profile's records support, as sentences whose every number comes from them.

    Keys (present when their runs exist): probe, london, finetune, pretrain_finetune,
    summary, pending. Comparisons are paired on the same people and made seed by seed
    (`lib.report.stats.mcnemar`, the rule `lib.report.stats.ALPHA`); a claim across seeds is made only
    when every seed supports it, and otherwise the text says how many did.
    """
    records = load_records(profile, root)

    def of(kind: str) -> dict[int, dict]:
        return {r["seed"]: r for r in _runs_of(records, kind, variant)}

    pre, pf, ft = of("pretrain"), of("pretrain_finetune"), of("finetune")
    london = next((r for r in records if r["kind"] == "london"), None)
    london_right = dev_outcomes(london, root) if london else None
    out: dict[str, str] = {}
    stored = None
    if pre:
        parts, seed_stored = [], []
        unread_everywhere = all("probe_unread" in r["metrics"] for r in pre.values())
        for seed, record in pre.items():
            said, any_above = [], False
            unread = record["metrics"].get("probe_unread")
            for probe, label in (("name", "the name probe"), ("bio", "the biography probe")):
                own, control = probe_outcomes(record, probe, root)
                if not own:
                    continue
                test = mcnemar(own, control)
                above = test.verdict == "above"
                text = (f"{label} completes the own birthplace of "
                        f"{exact_rate(sum(own), len(own)).text()} people and the control's "
                        f"place of {sum(control)}, " + _paired(test, "the control"))
                if unread is not None:
                    hits, n = unread[f"{probe}_gold_correct"], unread[f"{probe}_gold_total"]
                    versus = fisher(sum(own), len(own), hits, n)
                    above = above and versus.verdict == "above"
                    text += (f"; on people it never read it finds {hits}/{n}, and the people it "
                             f"read are {versus.relation} them (Fisher {format_p(versus.p_value)})")
                any_above = any_above or above
                said.append(text)
            seed_stored.append("above" if any_above else "not")
            parts.append(f"seed {seed}: " + "; ".join(said))
        stored = all(v == "above" for v in seed_stored)
        verdict = ("so the pretrained model has stored birthplaces" if stored else
                   "so these numbers do not show stored facts in every seed")
        beyond = (" and than on people it never read (what it can guess from a name or a "
                  "biography's opening)" if unread_everywhere else "")
        out["probe"] = ("Knowledge probes after pretraining, seed by seed (every seed asks the "
                        "same people): " + " ".join(p + "." for p in parts)
                        + f" A probe finds the own place more often than the control's{beyond} "
                        f"in {_across(seed_stored)}, {verdict}.")
    if london is not None:
        out["london"] = (f"The London baseline answers "
                         f"{exact_rate(sum(london_right), len(london_right)).text()} dev questions.")
    ft_right = {seed: dev_outcomes(record, root) for seed, record in ft.items()}
    if ft:
        parts, verdicts = [], []
        for seed, right in ft_right.items():
            text = f"seed {seed}: {exact_rate(sum(right), len(right)).text()}"
            if london_right is not None:
                test = mcnemar(right, london_right)
                verdicts.append(test.verdict)
                text += ", " + _paired(test, "London")
            parts.append(text)
        summary = "" if not verdicts else f" Above the London baseline in {_across(verdicts)}."
        out["finetune"] = "Finetuning without pretraining answers " + "; ".join(parts) + "." + summary
    extracted = None
    if pf:
        parts, verdicts = [], []
        for seed, record in pf.items():
            right = dev_outcomes(record, root)
            text = f"seed {seed}: {exact_rate(sum(right), len(right)).text()}"
            above_both = london_right is not None and seed in ft
            if london_right is not None:
                test = mcnemar(right, london_right)
                above_both = above_both and test.verdict == "above"
                text += ", " + _paired(test, "London")
            if seed in ft:
                test = mcnemar(right, ft_right[seed])
                above_both = above_both and test.verdict == "above"
                text += ", " + _paired(test, "finetuning alone (same seed)")
            verdicts.append("above" if above_both else "not")
            parts.append(text)
        extracted = all(v == "above" for v in verdicts)
        out["pretrain_finetune"] = (
            "Pretraining, then finetuning answers " + "; ".join(parts) + ". "
            + f"Above both the London baseline and finetuning alone in {_across(verdicts)}.")
    if stored and extracted is False:
        out["summary"] = ("So, measured so far under this profile: pretraining stores facts "
                          "(the probes find them), but these numbers do not show question "
                          "finetuning extracting them in every seed; they do not show that it "
                          "cannot either.")
    elif stored and extracted:
        out["summary"] = ("So under this profile pretraining stores facts and question "
                          "finetuning extracts them: the model answers questions about people "
                          "it was never asked about during finetuning.")
    if not is_whole_data(profile, root):
        out["pending"] = ("These are mini-world numbers. The exercise's questions are about the "
                          "whole data (the `cpu` and `full` profiles); the results page shows "
                          "whatever whole-data runs have finished, and these pages switch to a "
                          "whole-data profile once its matrix is complete.")
    return out


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per run (seed): its headline numbers, for the per-configuration chapters."""
    rows = []
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        m = r["metrics"]
        row = {"run": r["run_id"], "seed": r["seed"], "profile": r["profile"]}
        if "dev" in m:
            row["dev right"] = f"{m['dev']['correct']}/{m['dev']['total']}"
            row["dev accuracy"] = percent(m["dev"]["accuracy"])
        if "train" in m:
            row["train accuracy"] = percent(m["train"]["accuracy"])
        if "probe" in m:
            p = m["probe"]
            row["name probe (own / control)"] = (f"{p['name_gold_correct']} / {p['name_control_correct']}"
                                                 f" of {p['name_gold_total']}")
            row["biography probe (own / control)"] = (f"{p['bio_gold_correct']} / "
                                                      f"{p['bio_control_correct']} of {p['bio_gold_total']}")
            if "probe_unread" in m:
                u = m["probe_unread"]
                row["never-read people (name / biography)"] = (
                    f"{u['name_gold_correct']}/{u['name_gold_total']} / "
                    f"{u['bio_gold_correct']}/{u['bio_gold_total']}")
        if "final_loss" in m:
            row["final loss"] = round(m["final_loss"], 4)
            row["steps"] = m["steps"]
        rows.append(row)
    return pd.DataFrame(rows)


def stored_vs_answered(pretrain: dict, finetuned: dict, root: Path | None = None) -> pd.DataFrame:
    """Per dev person: did the name probe of the pretrained model find the place, and did the
    model finetuned from it answer the question right? Counts of the four combinations."""
    probe = {row["name"]: bool(row["name_probe"]) for row in details(pretrain, root).get("probe", [])}
    answered = {row["name"]: row["prediction"] == row["gold"]
                for row in details(finetuned, root).get("dev", [])}
    people = [n for n in answered if n in probe]
    table = pd.crosstab(pd.Series([probe[n] for n in people], name="name probe finds the place"),
                        pd.Series([answered[n] for n in people], name="finetuned model answers right"))
    for flag in (False, True):
        for axis in (0, 1):
            if flag not in table.axes[axis]:
                table = table.reindex(sorted(set(table.axes[axis]) | {flag}), axis=axis, fill_value=0)
    return table


def answers_from_train(record: dict, root: Path | None = None) -> pd.DataFrame:
    """For dev questions and invented people: the share of answers that are one of the train
    questions' places (answers learned as a list, whoever is asked about)."""
    from lib.runs.pipeline import world_for
    from lib.runs.profiles import get_profile

    world = world_for(get_profile(record["profile"]), load_data())
    places = {q.place for q in world.train}
    d = details(record, root)
    rows = []
    for split, label in (("dev", "dev questions"), ("strangers", "invented people")):
        answers = [row["prediction"] for row in d.get(split, [])]
        hits = sum(a in places for a in answers)
        share = hits / len(answers) if answers else float("nan")
        rows.append({"questions": label, "answers": len(answers),
                     "answer is a train place": f"{hits} = {percent(share)}",
                     "distinct answers": len(set(answers))})
    return pd.DataFrame(rows)


def _variants() -> list[str]:
    """Registered attention variants, vanilla (the reference) first."""
    from lib.core.attention import available_variants  # the registry imports torch; only here

    return sorted(available_variants(), key=lambda v: (v != "vanilla", v))


def _runs_of(records: list[dict], kind: str, variant: str) -> list[dict]:
    """A configuration's runs, by seed."""
    return sorted((r for r in records if r["kind"] == kind and r["variant"] == variant),
                  key=lambda r: r["seed"])


def variant_table(profile: str, root: Path | None = None) -> pd.DataFrame:
    """One row per registered attention variant: what its pretrain + finetune runs measured.

    Dev accuracy is listed seed by seed (mean ± std from three seeds on); probe counts are
    summed over the seeds, with the control place beside them, as a description (the paired
    verdicts are `variant_findings`'). A variant with no record is listed as pending.
    """
    records = load_records(profile, root)
    rows = []
    for variant in _variants():
        fine = _runs_of(records, "pretrain_finetune", variant)
        pre = _runs_of(records, "pretrain", variant)
        row: dict[str, str] = {"variant": variant,
                               "seeds": ", ".join(str(r["seed"]) for r in fine) or "pending"}
        row["dev accuracy"] = format_stat(dev_accuracies(fine)) if fine else "pending"
        for probe, label in (("bio", "biography probe"), ("name", "name probe")):
            row[label] = (f"{_rate(_pooled_probe(pre, probe, 'gold'))} (control "
                          f"{_rate(_pooled_probe(pre, probe, 'control'))})" if pre else "pending")
        losses = [r["metrics"]["final_loss"] for r in pre if "final_loss" in r["metrics"]]
        row["final pretraining loss"] = (", ".join(f"{x:.3f}" for x in losses) if losses
                                         else "pending")
        rows.append(row)
    return pd.DataFrame(rows).set_index("variant")


def variant_profile(root: Path | None = None) -> str | None:
    """The first of full, cpu, smoke with a finished vanilla matrix (what each variant is
    compared with) and a research-variant record."""
    for profile in PROFILE_ORDER:
        if matrix_complete(profile, root) and any(
                r["variant"] not in ("vanilla", "none")
                for r in load_records(profile, root, kind="pretrain_finetune")):
            return profile
    return None


def variant_findings(profile: str, root: Path | None = None) -> dict[str, str]:
    """Each research variant against vanilla attention, seed by seed on the seeds both ran.

    Every comparison is paired on the same people (McNemar's exact test, the rule
    `lib.report.stats.ALPHA`): the probes of the two pretrained models, then the answers of the two
    finetuned ones. Dev accuracy ranks the two in a seed only when one of them is above the
    London baseline there; otherwise the sentence says it cannot.
    """
    records = load_records(profile, root)

    def runs(kind: str, variant: str) -> dict[int, dict]:
        return {r["seed"]: r for r in _runs_of(records, kind, variant)}

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
                parts.append(f"{label} {_rate((sum(own), len(own)))}, "
                             + _paired(mcnemar(own, ref), f"vanilla's {_rate((sum(ref), len(ref)))}"))
            mine, theirs = dev_outcomes(pf[seed], root), dev_outcomes(ref_pf[seed], root)
            dev_own, dev_ref = _rate((sum(mine), len(mine))), _rate((sum(theirs), len(theirs)))
            if london_right is not None and not any(
                    mcnemar(x, london_right).verdict == "above" for x in (mine, theirs)):
                parts.append(f"dev accuracy {dev_own} against vanilla's {dev_ref}; neither is "
                             "above the London baseline here, so dev accuracy cannot rank the two")
            else:
                parts.append(f"dev accuracy {dev_own}, "
                             + _paired(mcnemar(mine, theirs), f"vanilla's {dev_ref}"))
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


def variant_rates(profile: str, root: Path | None = None) -> dict[str, dict]:
    """Pooled rates per variant that has pretrain and pretrain + finetune records (for plots).

    {variant: {seeds, bio, bio_control, name, name_control, dev, london}}; `london` is None
    when the profile has no London record.
    """
    records = load_records(profile, root)
    base = _london(records)
    out: dict[str, dict] = {}
    for variant in _variants():
        pre = _runs_of(records, "pretrain", variant)
        pf = _runs_of(records, "pretrain_finetune", variant)
        if not pre or not pf:
            continue
        row: dict = {"seeds": len(pf), "london": base[0] / base[1] if base and base[1] else None}
        for probe in ("bio", "name"):
            for against, key in (("gold", probe), ("control", f"{probe}_control")):
                hits, n = _pooled_probe(pre, probe, against)
                row[key] = hits / n if n else float("nan")
        hits, n = pooled(pf, "dev.correct", "dev.total")
        row["dev"] = hits / n if n else float("nan")
        out[variant] = row
    return out


# --------------------------------------------------------------------------------------
# Every profile side by side: the results page's first table and figure
# --------------------------------------------------------------------------------------
# Published figures as numbers, for the figure's markers (the table quotes them as text).
PUBLISHED_VALUES = {
    "london": {"report": 5.0},
    "finetune": {"report": 0.6, "write-up": 2.19},
    "pretrain_finetune": {"report": 21.6, "write-up": 24.0},
}


def profiles_with_records(root: Path | None = None) -> list[str]:
    """Profiles with at least one vanilla or London record, whole data first (`full`, `cpu`),
    then the mini world; `smoke` only when nothing else has run (its numbers mean nothing)."""
    have = [p for p in PROFILE_ORDER if any(r["variant"] in ("vanilla", "none")
                                            for r in load_records(p, root))]
    real = [p for p in have if p != "smoke"]
    return real or have


def is_whole_data(profile: str, root: Path | None = None) -> bool:
    """Whether a profile's records answer the 500 real dev questions (no mini world)."""
    records = load_records(profile, root)
    return bool(records) and all(r["config"].get("mini_world") is None for r in records)


def dev_outcomes(record: dict, root: Path | None = None) -> list[bool]:
    """Right or wrong per dev person, in the dev file's order (the pairing key)."""
    return prediction_rows(record, root)["correct"].tolist()


def accuracy_points(root: Path | None = None) -> list[dict]:
    """One entry per finished vanilla run (and London) of every profile with records: the
    dev rate with its exact interval and, for trained runs, McNemar's test against London
    on the same people."""
    points = []
    for profile in profiles_with_records(root):
        label = f"{profile} ({world_label(profile, root)})"
        records = [r for r in load_records(profile, root) if r["variant"] in ("vanilla", "none")
                   and r["kind"] in CONFIGURATIONS]
        london = next((r for r in records if r["kind"] == "london"), None)
        london_outcomes = dev_outcomes(london, root) if london else None
        for kind in CONFIGURATIONS:
            for r in sorted((r for r in records if r["kind"] == kind), key=lambda r: r["seed"]):
                d = r["metrics"]["dev"]
                versus = None
                if kind != "london" and london_outcomes is not None:
                    versus = mcnemar(dev_outcomes(r, root), london_outcomes)
                points.append({"profile": profile, "label": label,
                               "kind": kind, "seed": None if kind == "london" else r["seed"],
                               "rate": exact_rate(d["correct"], d["total"]), "versus_london": versus})
    return points


SHORT_CONFIGURATIONS = {"london": "London baseline", "finetune": "finetune only",
                        "pretrain_finetune": "pretrain, then finetune"}


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
            "dev accuracy (95 % CI)": point["rate"].text(),
            "against London, same people": "" if versus is None else
            f"{versus.verdict}: {versus.only_a} vs {versus.only_b} people, "
            f"{format_p(versus.p_value)}",
        })
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------------------
# Answers at a glance: one line per numeric question of the exercise
# --------------------------------------------------------------------------------------
def world_label(profile: str, root: Path | None = None) -> str:
    return "whole data" if is_whole_data(profile, root) else "mini world"


def answer_line(kind: str, root: Path | None = None, points: list[dict] | None = None) -> str:
    """The runs of `kind` (vanilla) on the first profile that has them, whole data first:
    each seed's rate with its interval and its paired comparison with London (`points`:
    `accuracy_points` already computed)."""
    points = accuracy_points(root) if points is None else points
    for profile in dict.fromkeys(p["profile"] for p in points):
        here = [p for p in points if p["profile"] == profile and p["kind"] == kind]
        if not here:
            continue
        parts = []
        for p in here:
            versus = p["versus_london"]
            seed = "" if p["seed"] is None else f"seed {p['seed']}: "
            against = "" if versus is None else (
                f", {versus.relation} London (McNemar {format_p(versus.p_value)})")
            parts.append(f"{seed}{p['rate'].text()}{against}")
        return f"profile `{profile}` ({world_label(profile, root)}): " + "; ".join(parts)
    return "no finished run yet"


def variant_answer_line(variant: str, root: Path | None = None) -> str:
    """`variant` against vanilla after pretraining and finetuning, seed by seed on the same
    people, on the first profile (whole data first) that has both."""
    for profile in profiles_with_records(root):
        records = load_records(profile, root, "pretrain_finetune")
        ours = {r["seed"]: r for r in records if r["variant"] == variant}
        base = {r["seed"]: r for r in records if r["variant"] == "vanilla"}
        shared = sorted(set(ours) & set(base))
        if not shared:
            continue
        parts = []
        for seed in shared:
            a, b = dev_outcomes(ours[seed], root), dev_outcomes(base[seed], root)
            paired = mcnemar(a, b)
            parts.append(f"seed {seed}: {exact_rate(sum(a), len(a)).text()} against vanilla's "
                         f"{sum(b)}/{len(b)}, {paired.relation} vanilla "
                         f"(McNemar {format_p(paired.p_value)})")
        return f"profile `{profile}` ({world_label(profile, root)}): " + "; ".join(parts)
    return "no finished run yet"


# --------------------------------------------------------------------------------------
# Every dev person: one searchable table
# --------------------------------------------------------------------------------------
def people_profile(root: Path | None = None) -> str | None:
    """The profile the people table shows: the first, whole data first, with a finished
    pretrain + finetune run of vanilla attention."""
    for profile in profiles_with_records(root):
        if vanilla_runs(profile, "pretrain_finetune", root):
            return profile
    return None


PEOPLE_LEGEND = (
    "**written**: where the biography writes the place: inside the window span corruption "
    "shows (*window*), after it (*later*), or nowhere (*absent*); **finetune only** and "
    "**pretrain, finetune**: each seed's answer in seed order, separated by ·, a right one "
    "marked ✓; **name probe**, **bio probe**: one mark per seed of the pretrained model, ✓ where "
    "the probe completes the person's place, ✗ where it does not, – where it was not asked "
    "(the place is not in the window).")


def people_table(profile: str, root: Path | None = None) -> pd.DataFrame:
    """One row per dev person of `profile`: gold place, where the biography writes it
    (`PEOPLE_LEGEND`), each vanilla run's answer (seed by seed, a right one marked ✓), and the
    probes' outcomes. Short column names keep the table on the page; the legend spells them out."""
    from lib.core.data import biography_index, prefix_window
    from lib.report.analysis import LOCATIONS, locate, probe_table
    from lib.runs.pipeline import world_for
    from lib.runs.profiles import get_profile

    runs = {kind: vanilla_runs(profile, kind, root) for kind in ("finetune", "pretrain_finetune", "pretrain")}
    first = (runs["pretrain_finetune"] or runs["finetune"])[0]
    people = prediction_rows(first, root)[["name", "gold"]]
    world = world_for(get_profile(profile), load_data())
    window = prefix_window(get_profile(profile).block_size)
    biographies = biography_index(world.corpus, list(people["name"]))
    where = locate(people.to_dict("records"), biographies, window)
    short = {LOCATIONS[0]: "window", LOCATIONS[1]: "later", LOCATIONS[2]: "absent"}
    table = pd.DataFrame({"person": people["name"], "born in": people["gold"],
                          "written": [short[w] for w in where]})
    labels = {"finetune": "finetune only", "pretrain_finetune": "pretrain, finetune"}
    for kind, label in labels.items():
        answers = []
        for record in runs[kind]:
            rows = prediction_rows(record, root)
            if list(rows["name"]) != list(people["name"]):
                raise ValueError(f"{record['run_id']} asks other people than {first['run_id']}")
            answers.append([f"✓ {p}" if ok else p
                            for p, ok in zip(rows["prediction"], rows["correct"], strict=True)])
        if answers:
            table[label] = [" · ".join(per_seed) for per_seed in zip(*answers, strict=True)]
    mark = {True: "✓", False: "✗", None: "–"}
    for probe in ("name", "bio"):
        marks = []
        for record in runs["pretrain"]:
            probes = probe_table(details(record, root).get("probe", [])).set_index("name")
            marks.append([mark[None if person not in probes.index
                               or probes.at[person, f"{probe}_probe"] is None
                               else bool(probes.at[person, f"{probe}_probe"])]
                          for person in people["name"]])
        if marks:
            table[f"{probe} probe"] = ["".join(per_seed) for per_seed in zip(*marks, strict=True)]
    return table


_SEARCH_SCRIPT = """
<script>
(function () {
  var box = document.getElementById("%(id)s-search");
  var table = document.getElementById("%(id)s");
  var count = document.getElementById("%(id)s-count");
  var rows = Array.prototype.slice.call(table.tBodies[0].rows);
  function show() {
    var words = box.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var shown = 0;
    rows.forEach(function (row) {
      var text = row.textContent.toLowerCase();
      var keep = words.every(function (w) { return text.indexOf(w) >= 0; });
      row.style.display = keep ? "" : "none";
      shown += keep ? 1 : 0;
    });
    count.textContent = shown + " of " + rows.length + " people";
  }
  box.addEventListener("input", show);
  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, column) {
    cell.style.cursor = "pointer";
    cell.title = "sort by this column";
    cell.addEventListener("click", function () {
      var up = cell.getAttribute("data-order") !== "up";
      cell.setAttribute("data-order", up ? "up" : "down");
      rows.sort(function (a, b) {
        var x = a.cells[column].textContent, y = b.cells[column].textContent;
        return (up ? 1 : -1) * x.localeCompare(y);
      });
      rows.forEach(function (row) { table.tBodies[0].appendChild(row); });
    });
  });
  show();
})();
</script>
"""


def searchable_html(table: pd.DataFrame, element_id: str = "people") -> str:
    """`table` as HTML with a search box (every word must occur in a row) and columns sorted
    by a click: plain inline JavaScript, nothing fetched, so it works in an offline copy."""
    body = table.to_html(index=False, table_id=element_id, border=0, escape=True,
                         classes="people-table")
    return (f'<p><input id="{element_id}-search" type="search" placeholder="search: a name, a '
            f'place, &#10003; ..." style="width: 100%; padding: 0.3em; font-size: 1em">'
            f'<br><span id="{element_id}-count"></span></p>'
            f'<style>#{element_id} {{width: 100%; table-layout: auto}} #{element_id} th, '
            f'#{element_id} td {{padding: 0.2em 0.35em; white-space: normal}}</style>'
            f'<div style="max-height: 36em; overflow-y: auto; font-size: 0.8em">{body}</div>'
            + _SEARCH_SCRIPT % {"id": element_id})
