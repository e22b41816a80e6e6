"""Reading what runs stored: records, their predictions, details and metrics logs, and the
world and caption each profile's numbers carry.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path

import pandas as pd

from lib.core import data as D
from lib.runs.records import load_records, records_by_seed, results_root


def vanilla_runs(profile: str, kind: str, root: Path | None = None) -> list[dict]:
    """The vanilla-attention runs of one kind, by seed: what the knowledge-access chapters
    discuss (the research variants have their own chapter)."""
    return list(records_by_seed(profile, kind, "vanilla", root).values())


def load_data() -> D.BirthplaceData:
    """The data, from the folder the Makefile chooses, wherever the caller runs (chapters
    execute inside book/, where a relative `BIRTHPLACE_DATA` would point elsewhere)."""
    return D.load(D.data_dir())


def world_description(profile: str, root: Path | None = None) -> str:
    """The world a profile's runs trained and evaluated on, as their records say."""
    worlds = sorted({r["world"] for r in load_records(profile, root) if "world" in r})
    return "; ".join(worlds) if worlds else "no records yet"


def caption(profile: str, root: Path | None = None) -> str:
    """What every table and plot says about its numbers: the profile and the world."""
    text = f"profile {profile}, {world_description(profile, root)}"
    if profile == "smoke":
        text += " (a wiring check: its numbers say nothing about accuracy)"
    elif profile != "full" and is_whole_data(profile, root):
        text += " (not the classic recipe: the results page lists how it departs)"
    elif profile != "full":
        text += " (a mini world, not the classic setting)"
    return text


def short_caption(profile: str, root: Path | None = None) -> str:
    """The caption for a plot title: profile and world in a few words."""
    return f"{profile} profile, {world_description(profile, root).split(', ')[0]}"


def result_file(record: dict, key: str, root: Path | None = None) -> Path | None:
    """A file a record names (`predictions`, `details`, `metrics_log`), beside the record."""
    name = record.get("files", {}).get(key)
    return None if name is None else (root or results_root()) / record["profile"] / name


def metrics_log(record: dict, root: Path | None = None) -> list[dict]:
    """The run's training log (step, epoch, tokens, loss, lr, time); empty for London."""
    from lib.core.metrics_log import read_log

    path = result_file(record, "metrics_log", root)
    return read_log(path) if path is not None and path.exists() else []


def log_clock(rows: list[dict]) -> list[float]:
    """Each row's training seconds since the run began, on one clock across the processes that
    trained it. Runs resumed before the trainer carried its clock over (commit c87b6fe) logged
    each process's time from zero; a fall in the logged time marks such a restart, and the
    earlier processes' last times are added back."""
    clock, offset, last = [], 0.0, 0.0
    for row in rows:
        if row["time"] < last:
            offset += last
        last = row["time"]
        clock.append(offset + last)
    return clock


def epoch_seconds(rows: list[dict]) -> list[float]:
    """Training seconds of each epoch in a metrics log: the clock at the last row logged in an
    epoch minus the clock at the last row of the epoch before (zero before the first)."""
    end: dict[int, float] = {}
    for row, seconds in zip(rows, log_clock(rows), strict=True):
        end[int(row["epoch"])] = seconds
    epochs = sorted(end)
    return [end[e] - (end[prev] if prev is not None else 0.0)
            for prev, e in zip([None, *epochs[:-1]], epochs, strict=True)]


def trained_seconds(record: dict, root: Path | None = None) -> tuple[float, bool]:
    """A run's training seconds and whether its record undercounts them: a record written by a
    resumed run before commit c87b6fe counts only the last process (its log's clock restarts),
    so the time then comes from the log's clock (`log_clock`) instead."""
    rows = metrics_log(record, root)
    if any(later["time"] < earlier["time"] for earlier, later in pairwise(rows)):
        return log_clock(rows)[-1], True
    return record.get("train_time", record.get("wall_time", 0.0)), False


def epoch_curve(rows: list[dict], complete_only: bool = False) -> dict[str, list[float]]:
    """Mean of the logged losses of each epoch and the rate at its last logged step.

    `complete_only` drops the last epoch of a log that stops part-way through it."""
    by_epoch: dict[int, list[dict]] = {}
    for row in rows:
        by_epoch.setdefault(int(row["epoch"]), []).append(row)
    epochs = sorted(by_epoch)
    if complete_only and epochs:
        epochs = epochs[:-1]
    if epochs != list(range(1, len(epochs) + 1)):
        raise ValueError("the log skips epochs")
    return {"loss": [round(sum(r["loss"] for r in by_epoch[e]) / len(by_epoch[e]), 4) for e in epochs],
            "lr": [by_epoch[e][-1]["lr"] for e in epochs]}


def details(record: dict, root: Path | None = None) -> dict:
    """The run's per-question details (finetune kinds) or per-person probe (pretrain)."""
    path = result_file(record, "details", root)
    if path is None or not path.exists():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def prediction_rows(record: dict, root: Path | None = None) -> pd.DataFrame:
    """One row per dev question of a run: name, gold place, prediction, right or wrong.

    Finetuned runs keep these in their details file; the London baseline's gold places
    come from the world its record names (rebuilt from the data with the same profile).
    """
    rows = details(record, root).get("dev")
    if rows is None:
        from lib.core.evaluate import read_predictions
        from lib.runs.profiles import get_profile, world_for

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


def runs_of(records: list[dict], kind: str, variant: str) -> list[dict]:
    """A configuration's runs, by seed."""
    return sorted((r for r in records if r["kind"] == kind and r["variant"] == variant),
                  key=lambda r: r["seed"])


def is_whole_data(profile: str, root: Path | None = None) -> bool:
    """Whether a profile's records answer the 500 real dev questions (no mini world)."""
    records = load_records(profile, root)
    return bool(records) and all(r["config"].get("mini_world") is None for r in records)


def dev_outcomes(record: dict, root: Path | None = None) -> list[bool]:
    """Right or wrong per dev person, in the dev file's order (the pairing key)."""
    return prediction_rows(record, root)["correct"].tolist()


# --------------------------------------------------------------------------------------
# Answers at a glance: one line per numeric question of the exercise
# --------------------------------------------------------------------------------------
def world_label(profile: str, root: Path | None = None) -> str:
    """'whole data' or 'mini world': the words that keep the two apart on every page."""
    return "whole data" if is_whole_data(profile, root) else "mini world"


def record_world(record: dict, data: D.BirthplaceData) -> D.World:
    """Rebuild the people a run used from the profile stored in its record, not today's table."""
    mini = record["config"].get("mini_world")
    return D.full_world(data) if mini is None else D.mini_world(data, *mini)
