"""The book's plots of training runs, drawn from metrics logs and records (never from typed numbers).

Each function returns a matplotlib Figure; the caller shows it (a notebook cell displays
it) or saves it. Titles carry the profile, because every plot must say where its
numbers come from.
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from lib.report.results import PUBLISHED_VALUES, SHORT_CONFIGURATIONS
from lib.report.run_pages import snapshot_table
from lib.report.stats import Rate, exact_rate


def training(log: list[dict], title: str) -> Figure:
    """Loss and learning rate of one run against the optimisation step."""
    fig, (ax_loss, ax_lr) = plt.subplots(1, 2, figsize=(9, 3.2), constrained_layout=True)
    steps = [row["step"] for row in log]
    ax_loss.plot(steps, [row["loss"] for row in log], lw=1.2)
    ax_loss.set(xlabel="step", ylabel="training loss (mean since last point)", title="loss")
    ax_lr.plot(steps, [row["lr"] for row in log], lw=1.2, color="tab:orange")
    ax_lr.set(xlabel="step", ylabel="learning rate", title="learning-rate schedule")
    ax_lr.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    fig.suptitle(title, fontsize=10)
    return fig


def overlay(logs: dict[str, list[dict]], title: str, key: str = "loss",
            x: str = "tokens") -> Figure:
    """One curve per run (seeds of one configuration, or several configurations)."""
    fig, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    for label, log in logs.items():
        ax.plot([row[x] / 1e6 if x == "tokens" else row[x] for row in log],
                [row[key] for row in log], lw=1.1, label=label)
    ax.set(xlabel="tokens seen (millions)" if x == "tokens" else x,
           ylabel="training loss" if key == "loss" else "learning rate", title=title)
    if key == "lr":
        ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    if logs:
        ax.legend(fontsize=8)
    return fig


def _per_snapshot(records: dict[str, dict], title: str, xlabel: str, ylabel: str,
                  draw) -> Figure:
    """One axis; `draw(ax, label, table)` plots a run's snapshot table (runs without one skipped)."""
    fig, ax = plt.subplots(figsize=(7, 3.4), constrained_layout=True)
    for label, record in records.items():
        table = snapshot_table(record)
        if not table.empty:
            draw(ax, label, table)
    ax.set(xlabel=xlabel, ylabel=ylabel, title=title)
    ax.set_ylim(bottom=0)  # a rate from zero, so a small rise does not look like a large one
    ax.legend(fontsize=8)
    return fig


def probe_snapshots(records: dict[str, dict], title: str) -> Figure:
    """Knowledge-probe hit rates along pretraining, one panel per probe (name, biography),
    own place and control per run. The axes start at zero and reach at least 5 %, so one
    person in five hundred does not fill the panel."""
    tables = {label: snapshot_table(record) for label, record in records.items()}
    tables = {label: table for label, table in tables.items() if not table.empty}
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True, sharey=True)
    top = 5.0
    for ax, (probe, name) in zip(axes, (("name", "name probe"), ("bio", "biography probe")),
                                 strict=True):
        for label, table in tables.items():
            epochs = table["pretraining epoch"]
            own, control = 100 * table[f"{probe} probe, own"], 100 * table[f"{probe} probe, control"]
            line = ax.plot(epochs, own, marker="o", label=f"{label}: own place")[0]
            ax.plot(epochs, control, marker="x", ls="--", color=line.get_color(),
                    label=f"{label}: control")
            top = max(top, float(own.max()), float(control.max()))
        ax.set(xlabel="pretraining epoch", title=name)
        if tables:
            ax.legend(fontsize=7, loc="upper left")
    axes[0].set(ylabel="people, own place or control (%)", ylim=(0, 1.1 * top))
    fig.suptitle(title, fontsize=10)
    return fig


def accuracy_snapshots(records: dict[str, dict], title: str) -> Figure:
    """Dev accuracy after finetuning each pretraining snapshot, per run, with exact 95 %
    intervals (the growth sentence judges the last step by them)."""
    def draw(ax, label, table):
        rates = [exact_rate(int(k), int(n)) for k, n in
                 zip(table["dev right"], table["dev questions"], strict=True)]
        values = [100 * r.value for r in rates]
        ax.errorbar(table["pretraining epoch"], values, marker="o", capsize=3, label=label,
                    yerr=[[v - 100 * r.low for v, r in zip(values, rates, strict=True)],
                          [100 * r.high - v for v, r in zip(values, rates, strict=True)]])

    return _per_snapshot(records, title, "pretraining epoch of the snapshot that was finetuned",
                         "dev accuracy (%), exact 95 % interval", draw)


def panels(logs: dict[str, dict[str, list[dict]]], title: str, key: str = "loss") -> Figure:
    """One panel per configuration, one curve per run, against tokens seen; two panels to a
    row, so the labels stay legible at the page's width."""
    count = max(1, len(logs))
    columns = min(count, 2)
    rows = math.ceil(count / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows),
                             constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(logs):]:
        ax.set_visible(False)
    for ax, (name, runs) in zip(axes.flat, logs.items(), strict=False):
        # Rates are drawn in units of a power of ten named in the axis label: matplotlib's
        # offset text ("1e-4" above the axis) would push the panel title into the figure's.
        top = max((abs(row[key]) for log in runs.values() for row in log), default=0.0)
        exponent = math.floor(math.log10(top)) if key == "lr" and top > 0 else 0
        for label, log in runs.items():
            ax.plot([row["tokens"] / 1e6 for row in log],
                    [row[key] / 10 ** exponent for row in log], lw=1.1, label=label)
        ylabel = "training loss" if key == "loss" else "learning rate"
        ax.set(title=name, xlabel="tokens seen (millions)",
               ylabel=f"{ylabel} (× 1e{exponent})" if exponent else ylabel)
        ax.ticklabel_format(axis="y", useOffset=False)
        if runs:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def accuracy_by_profile(points: list[dict], title: str) -> Figure:
    """Dev accuracy of every run with its exact 95 % interval, one row per run (grouped by
    configuration, one colour per profile, seeds in order); published figures for the whole
    data as black crosses in the middle of their configuration's group."""
    kinds = [k for k in SHORT_CONFIGURATIONS if any(p["kind"] == k for p in points)]
    profiles = list(dict.fromkeys(p["profile"] for p in points))
    rows = sum(1 for p in points if p["kind"] in kinds) + len(kinds)  # a blank row between groups
    fig, ax = plt.subplots(figsize=(8, 1.8 + 0.2 * rows), constrained_layout=True)
    colours = dict(zip(profiles, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    labelled, centres, y = set(), [], 0
    for kind in kinds:
        here = [p for p in points if p["kind"] == kind]
        first = y
        for point in here:
            rate, label = point["rate"], point["label"]
            ax.errorbar(100 * rate.value, y,
                        xerr=[[100 * (rate.value - rate.low)], [100 * (rate.high - rate.value)]],
                        fmt="o", ms=4, capsize=2, color=colours[point["profile"]],
                        label=None if label in labelled else label)
            labelled.add(label)
            y += 1
        centres.append((first + y - 1) / 2)
        for value in PUBLISHED_VALUES.get(kind, {}).values():
            ax.scatter(value, centres[-1], marker="x", s=60, color="black", zorder=3,
                       label=None if "published" in labelled else "published (whole data)")
            labelled.add("published")
        if kind != kinds[-1]:
            ax.axhline(y, color="0.85", lw=0.8)
            y += 1
    ax.set_yticks(centres, [SHORT_CONFIGURATIONS[k] for k in kinds])
    ax.set_ylim(y - 0.5, -0.5)
    ax.grid(axis="x", color="0.92")
    ax.set(xlabel="dev accuracy (%), with exact 95 % interval; one row per run, seeds in order",
           title=title)
    fig.legend(fontsize=9, loc="outside lower center", ncol=3, frameon=False)
    return fig


def seed_rates(rows: dict[str, dict[int, Rate | None]], title: str, xlabel: str,
               line: tuple[float, str] | None = None, line_over: str = "") -> Figure:
    """Rates of several measures, one point per seed with its exact 95 % interval and its
    count: the essays' figures, which show every seed side by side instead of pooling them
    (the seeds ask the same people). A measure a seed did not record is left out. `line`
    (a rate and its label, such as the London baseline) is drawn as a dashed vertical line
    across the rows whose labels start with `line_over` (all rows by default), so a baseline of
    one measure does not run through the rows of another."""
    seeds = sorted({s for by_seed in rows.values() for s in by_seed})
    colours = dict(zip(seeds, plt.rcParams["axes.prop_cycle"].by_key()["color"], strict=False))
    fig, ax = plt.subplots(figsize=(8, 1.0 + 0.17 * len(rows) * max(2, len(seeds))),
                           constrained_layout=True)
    labelled = set()
    for row, by_seed in enumerate(rows.values()):
        for i, seed in enumerate(seeds):
            rate = by_seed.get(seed)
            if rate is None or not rate.n:
                continue
            y = row + (i - (len(seeds) - 1) / 2) * 0.75 / max(1, len(seeds))
            ax.errorbar(100 * rate.value, y,
                        xerr=[[100 * (rate.value - rate.low)], [100 * (rate.high - rate.value)]],
                        fmt="o", ms=4, capsize=2, color=colours[seed],
                        label=None if seed in labelled else f"seed {seed}")
            ax.annotate(f"{rate.k}/{rate.n}", (100 * rate.high, y), xytext=(4, 0),
                        textcoords="offset points", va="center", fontsize=7, color="0.3")
            labelled.add(seed)
    spanned = [row for row, label in enumerate(rows) if label.startswith(line_over)]
    if line is not None and spanned:
        ax.plot([100 * line[0]] * 2, [min(spanned) - 0.5, max(spanned) + 0.5], color="0.4",
                ls="--", lw=1, label=line[1])
    ax.set_yticks(range(len(rows)), list(rows))
    ax.invert_yaxis()
    ax.set_xlim(0, 108)
    ax.set(xlabel=xlabel, title=title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return fig
