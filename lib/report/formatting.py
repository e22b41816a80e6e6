"""Numbers as the pages print them: percentages, spreads over seeds, markdown tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from pandas.io.formats.style import Styler


def percent(x: float | None, digits: int = 1) -> str:
    """A rate as the book prints it ('5.0 %'); 'n/a' when there is none."""
    return "n/a" if x is None or math.isnan(x) else f"{100 * x:.{digits}f} %"


def duration(seconds: float) -> str:
    """A run's length in the unit a reader thinks in: '48 s', '14 min', '11.6 h'."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def counted(n: int, noun: str) -> str:
    """'1 seed', '3 seeds': a count with its noun in the number it needs."""
    return f"{n} {noun}" + ("" if n == 1 else "s")


# What the pages call each trained kind of run (`lib.runs.matrix.TRAINED_KINDS`).
KIND_LABELS = {"pretrain": "pretraining", "pretrain_finetune": "pretrain, then finetune",
               "finetune": "finetune only"}


def listing(items: list[str]) -> str:
    """'a', 'a and b', 'a, b and c': items for a sentence."""
    if len(items) < 2:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


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


def format_stat(values: list[float]) -> str:
    """Mean ± sample std in percent over at least three seeds; fewer are listed one by one
    (a standard deviation of two values says next to nothing)."""
    if len(values) < MIN_SEEDS_FOR_SPREAD:
        return " / ".join(percent(v) for v in values) if values else "n/a"
    mean, std = mean_std(values)
    return f"{100 * mean:.1f} ± {100 * std:.1f} %"


def markdown_table(table: pd.DataFrame) -> str:
    """A pipe table (MyST renders it; cells may hold links)."""
    def cell(value) -> str:
        return str(value).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(map(cell, table.columns)) + " |"
    rule = "| " + " | ".join("---" for _ in table.columns) + " |"
    body = ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join([head, rule, *body])


def page_table(table: pd.DataFrame, shares: Sequence[str] = (),
               formats: dict[str, str] | None = None) -> Styler:
    """A table as the pages show it: no row numbers (they mean nothing to a reader), the
    named columns of fractions as percentages, `formats` for others (format strings by
    column), a missing value as a dash. One `format` call: a later call would reset the
    columns it does not name."""
    chosen = {column: percent for column in shares if column in table}
    chosen.update({column: f for column, f in (formats or {}).items() if column in table})
    return table.style.hide(axis="index").format(chosen, na_rep="–")
