"""What the page of one run shows: its headline, predictions, probes and snapshots, and the
list of stored runs; what the runs cost in time.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lib.report.formatting import counted, duration, markdown_table, page_table, percent
from lib.report.reading import (
    caption,
    details,
    epoch_seconds,
    is_whole_data,
    metrics_log,
    trained_seconds,
    world_label,
)
from lib.report.results import PROBES, probe_count
from lib.runs.profiles import PROFILE_ORDER
from lib.runs.records import load_records, results_root

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler


def sample_predictions(table: pd.DataFrame, n_right: int = 5, n_wrong: int = 5,
                       seed: int = 0) -> pd.DataFrame:
    """A seeded sample of right and of wrong answers (as many as exist, up to n each), the
    `correct` column as "yes" or "no", as the probe tables print it."""
    right = table[table["correct"]]
    wrong = table[~table["correct"]]
    parts = [right.sample(min(n_right, len(right)), random_state=seed),
             wrong.sample(min(n_wrong, len(wrong)), random_state=seed)]
    columns = [c for c in ("name", "gold", "prediction", "correct") if c in table]
    sample = pd.concat(parts)[columns].reset_index(drop=True)
    if "correct" in sample:
        sample["correct"] = sample["correct"].map({True: "yes", False: "no"})
    return sample


def provenance_line(record: dict, root: Path | None = None) -> str:
    """Where and with what a run was made, from its record (the training time from its log
    where the record undercounts it, `trained_seconds`)."""
    seconds, from_log = trained_seconds(record, root)
    timing = (f"{seconds:.0f} s of training (summed over its processes from the metrics log; "
              f"the record counts its last process only)" if from_log
              else f"{seconds:.0f} s of training")
    return (f"{record['run_id']} ({record['profile']} profile): {record['device_name']}, torch "
            f"{record['torch_version']}, commit {record['git_commit']}, {timing}, "
            f"created {record['created']}")


def _cpu_pretrainings(profiles: list[str] | None,
                      root: Path | None) -> list[tuple[dict, list[float]]]:
    """Each finished whole-data pretraining on a CPU with its seconds per epoch, vanilla first."""
    out = []
    for profile in profiles if profiles is not None else PROFILE_ORDER:
        if not is_whole_data(profile, root):
            continue
        for record in sorted(load_records(profile, root, kind="pretrain"),
                             key=lambda r: (r["variant"] != "vanilla", r["variant"], r["seed"])):
            seconds = epoch_seconds(metrics_log(record, root))
            if record.get("device") == "cpu" and seconds:
                out.append((record, seconds))
    return out


def pretraining_times(profiles: list[str] | None = None, root: Path | None = None) -> pd.DataFrame:
    """Each finished whole-data pretraining on a CPU, from its record and metrics log: hours
    of training and seconds per epoch, the median and the 10th percentile (the machine was at
    times shared with other work, which slows some epochs and never speeds any up, so the
    10th percentile is nearer what an epoch costs alone). Profiles default to `PROFILE_ORDER`'s."""
    rows = []
    for record, seconds in _cpu_pretrainings(profiles, root):
        hours = trained_seconds(record, root)[0] / 3600
        config = record["config"]["pretrain"]
        batches = ("length-grouped" if config.get("length_grouped")
                   else "shuffled" if config.get("shuffle", True) else "file order")
        rows.append({"run": f"{record['profile']} {record['variant']} seed {record['seed']}",
                     "batches, precision": (f"{batches}, "
                                            f"{'bf16' if config.get('cpu_bf16') else 'float32'}"),
                     "epochs": len(seconds), "hours": f"{hours:.1f}",
                     "s/epoch, median": f"{np.median(seconds):.0f}",
                     "s/epoch, 10th pct.": f"{np.quantile(seconds, 0.1):.0f}",
                     "commit": record["git_commit"][:7]})
    return pd.DataFrame(rows)


def pretraining_epoch_seconds(profiles: list[str] | None = None,
                              root: Path | None = None) -> dict[str, list[float]]:
    """The seconds of each epoch of the runs `pretraining_times` lists, by a label naming the
    run: what its figure draws."""
    return {f"{r['profile']} {r['variant']} seed {r['seed']}": seconds
            for r, seconds in _cpu_pretrainings(profiles, root)}


def accuracy_line(record: dict) -> str:
    """One finetuned run's dev result in words, with the profile and world it comes from."""
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
            c, t = probe_count(p, probe, against)
            row[column] = f"{c}/{t} = {percent(c / t if t else float('nan'))}"
        rows.append(row)
    return pd.DataFrame(rows)


def probe_examples(record: dict, n: int = 8, seed: int = 0, root: Path | None = None) -> pd.DataFrame:
    """Completions of both probes for a seeded sample of people (hits first), each probe's
    verdict as yes / no, or "not asked" where the place is not written inside the window."""
    rows = details(record, root).get("probe", [])
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table = table.sample(min(n, len(table)), random_state=seed)
    order = table["name_probe"].astype(int) + table["bio_probe"].fillna(False).astype(int)
    table = table.assign(_hits=order).sort_values("_hits", ascending=False, kind="stable")
    verdict = {True: "yes", False: "no"}
    return pd.DataFrame({
        "name": table["name"], "place": table["place"],
        "name probe completion": table["name_completion"],
        "name probe right": table["name_probe"].map(verdict).fillna("not asked"),
        "biography probe completion": table["bio_completion"],
        "biography probe right": table["bio_probe"].map(verdict).fillna("not asked"),
    }).reset_index(drop=True)


def snapshot_table(record: dict) -> pd.DataFrame:
    """How the measure grew with pretraining: probe rates (pretrain) or dev accuracy after
    finetuning each pretraining snapshot (pretrain_finetune)."""
    rows = []
    for s in record["metrics"].get("snapshots", []):
        row = {"pretraining epoch": s["epoch"], "step": s["step"], "tokens": s["tokens"]}
        if "probe" in s:
            for probe in PROBES:
                for against in ("gold", "control"):
                    c, t = probe_count(s["probe"], probe, against)
                    label = "own" if against == "gold" else "control"
                    row[f"{probe} probe, {label}"] = c / t if t else np.nan
        if "dev" in s:
            row["dev accuracy after finetuning"] = s["dev"]["accuracy"]
            row["dev right"], row["dev questions"] = s["dev"]["correct"], s["dev"]["total"]
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


def snapshot_view(record: dict) -> Styler:
    """`snapshot_table` as a run's page shows it: rates as percentages, tokens with
    thousands separators."""
    table = snapshot_table(record)
    rates = [c for c in table if c not in ("pretraining epoch", "step", "tokens")]
    return page_table(table, shares=rates, formats={"tokens": "{:,}"})


def headline(record: dict) -> str:
    """A run's main number in a few words."""
    m = record["metrics"]
    if "dev" in m:
        return f"dev {m['dev']['correct']}/{m['dev']['total']} = {percent(m['dev']['accuracy'])}"
    p = m.get("probe", {})
    text = (f"name probe {p.get('name_gold_correct')}/{p.get('name_gold_total')} "
            f"(control {p.get('name_control_correct')})")
    if "bio_gold_correct" in p:  # the lenient probe, the one that shows storage first
        text += (f", biography probe {p['bio_gold_correct']}/{p['bio_gold_total']} "
                 f"(control {p['bio_control_correct']})")
    return text


def stored_runs(runs_dir: Path, root: Path | None = None,
                profile: str | None = None) -> pd.DataFrame:
    """Every run with a record or a stored notebook (`runs_dir/<profile>/<run-id>.ipynb`),
    of one profile or of all."""
    root = root or results_root()
    keys = {(nb.parent.name, nb.stem) for nb in runs_dir.glob(f"{profile or '*'}/*.ipynb")}
    keys |= {(r["profile"], r["run_id"]) for name in ([profile] if profile else PROFILE_ORDER)
             for r in load_records(name, root)}
    rows = []
    for owner, rid in sorted(keys, key=lambda k: (PROFILE_ORDER.index(k[0])
                                                  if k[0] in PROFILE_ORDER else 99, k[1])):
        nb = runs_dir / owner / f"{rid}.ipynb"
        record_file = root / owner / f"{rid}.json"
        record = json.loads(record_file.read_text()) if record_file.exists() else None
        rows.append({"profile": owner, "run": rid, "notebook": nb if nb.exists() else None,
                     "result": headline(record) if record else "no record",
                     "training": (duration(trained_seconds(record, root)[0])
                                  if record and record["kind"] != "london" else "–"),
                     "device": record.get("device_name", "") if record else "",
                     # The record is written when the run ends: its minute, in UTC.
                     "finished (UTC)": (record.get("created", "")[:16].replace("T", " ")
                                        if record else "")})
    return pd.DataFrame(rows)


def run_links(runs_dir: Path, page_dir: Path, root: Path | None = None,
              profile: str | None = None) -> str:
    """The runs as Markdown whose run ids link to their stored notebooks: one profile's table,
    or, without `profile`, a table per profile under its name (a profile column repeated on
    every row would take the width the numbers need)."""
    table = stored_runs(runs_dir, root, profile)
    if table.empty:
        return "No runs yet."
    links = [f"[{row.run}]({Path(os.path.relpath(row.notebook, page_dir)).as_posix()})"
             if row.notebook is not None else f"{row.run} (notebook not rendered yet)"
             for row in table.itertuples()]
    table = table.assign(run=links).drop(columns=["notebook"])
    shown = [profile] if profile is not None else list(dict.fromkeys(table["profile"]))
    parts = []
    for name in shown:
        rows = table[table["profile"] == name].drop(columns=["profile"])
        heading = ("" if profile is not None else
                   f"**{name}** ({world_label(name, root)}, {counted(len(rows), 'run')})\n\n")
        parts.append(heading + markdown_table(rows))
    return "\n\n".join(parts)
