"""How sure the model is of its answers, and whether that separates right from wrong: the
analyses of the essay on indistinguishable answers (and the strangers essay's comparison).
They read the stored answers with their log-probabilities; nothing here runs a model."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd

# The runs every considerations chapter reads; a profile counts only when it has all three.
LOCATIONS = ("within the window", "later in the biography", "not in the biography")


# --------------------------------------------------------------------------------------
# (b) Confidence of right and wrong answers
# --------------------------------------------------------------------------------------
def confidences(rows: Sequence[dict]) -> np.ndarray:
    """The model's probability of each whole generated answer (closing mask included)."""
    return np.exp(np.array([r["logprob"] for r in rows], dtype=float))


def per_character_confidences(rows: Sequence[dict]) -> np.ndarray:
    """The geometric mean of the probabilities of an answer's characters (closing mask
    included): a confidence that does not fall just because an answer is longer, as the
    whole answer's probability does."""
    return np.exp(np.array([r["logprob"] / (len(r["prediction"]) + 1) for r in rows], dtype=float))


def correctness(rows: Sequence[dict]) -> np.ndarray:
    """Whether each answer matches its gold place exactly, as the book scores."""
    return np.array([r["prediction"] == r["gold"] for r in rows], dtype=bool)


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """Area under the ROC curve: the chance a random right answer outscores a random wrong one.

    Ties count one half (the Mann-Whitney statistic, computed from average ranks). NaN when
    either class is empty: with no right (or no wrong) answers there is nothing to separate.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape:
        raise ValueError(f"{s.shape} scores for {y.shape} labels")
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    # Average 1-based ranks: a group of tied scores shares the mean of the ranks it spans.
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts
    ranks = (first + (counts + 1) / 2)[inverse]
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2
    return float(u / (n_pos * n_neg))


def histogram(conf: Sequence[float], correct: Sequence[bool], bins: int = 20) -> pd.DataFrame:
    """Counts of right and wrong answers per equal-width confidence bin over [0, 1]."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    c, y = np.asarray(conf, dtype=float), np.asarray(correct, dtype=bool)
    right, _ = np.histogram(c[y], edges)
    wrong, _ = np.histogram(c[~y], edges)
    return pd.DataFrame({"low": edges[:-1], "high": edges[1:], "right": right, "wrong": wrong})


def reliability(conf: Sequence[float], correct: Sequence[bool], bins: int = 10) -> pd.DataFrame:
    """Per equal-width confidence bin: answers, mean confidence and accuracy (NaN when empty).

    A calibrated model's points lie on the diagonal: answers given with confidence 0.7 are
    right 70 % of the time. Confidence 1 falls in the last bin.
    """
    c, y = np.asarray(conf, dtype=float), np.asarray(correct, dtype=bool)
    edges = np.linspace(0.0, 1.0, bins + 1)
    index = np.clip(np.searchsorted(edges, c, side="right") - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        sel = index == b
        rows.append({"low": edges[b], "high": edges[b + 1], "answers": int(sel.sum()),
                     "confidence": c[sel].mean() if sel.any() else float("nan"),
                     "accuracy": y[sel].mean() if sel.any() else float("nan")})
    return pd.DataFrame(rows)


def expected_calibration_error(table: pd.DataFrame) -> float:
    """Answer-weighted mean gap between confidence and accuracy over the reliability bins."""
    used = table[table.answers > 0]
    if used.empty:
        return float("nan")
    gaps = (used.confidence - used.accuracy).abs()
    return float((gaps * used.answers).sum() / used.answers.sum())


def wrong_passing(conf: Sequence[float], correct: Sequence[bool], keep: float = 0.5) -> float:
    """Share of wrong answers that pass a confidence cut-off chosen to keep `keep` of the right ones.

    The cut-off is the (1 - keep) quantile of the right answers' confidences: a system that
    abstains below it keeps `keep` of its right answers and lets this share of wrong ones
    through. NaN when no answer (or every answer) is right.
    """
    c, y = np.asarray(conf, dtype=float), np.asarray(correct, dtype=bool)
    if not y.any() or y.all():
        return float("nan")
    cutoff = np.quantile(c[y], 1 - keep)
    return float((c[~y] >= cutoff).mean())


def lookalike_pairs(rows: Sequence[dict], k: int = 6) -> pd.DataFrame:
    """The `k` most confident wrong answers, each beside a right answer close in confidence.

    Each wrong answer takes the closest right answer not yet shown, so that the table
    shows as many different right answers as there are; only when every right answer has
    been used do they repeat. Without any right answer the right-hand columns stay empty.
    """
    conf, y = confidences(rows), correctness(rows)
    right = np.flatnonzero(y)
    wrong = np.flatnonzero(~y)
    wrong = wrong[np.argsort(-conf[wrong], kind="mergesort")][:k]
    out, unused = [], set(right.tolist())
    for w in wrong:
        pair = {"wrong person": rows[w]["name"], "wrong answer": rows[w]["prediction"],
                "true place": rows[w]["gold"], "wrong confidence": conf[w],
                "right person": None, "right answer": None, "right confidence": float("nan")}
        if len(right):
            unused = unused or set(right.tolist())
            pool = np.array(sorted(unused))
            r = int(pool[np.argmin(np.abs(conf[pool] - conf[w]))])
            unused.discard(r)
            pair.update({"right person": rows[r]["name"], "right answer": rows[r]["prediction"],
                         "right confidence": conf[r]})
        out.append(pair)
    return pd.DataFrame(out)


def known_place_share(predictions: Sequence[str], places: Iterable[str]) -> float:
    """Share of answers that are a real place of the data: plausible, not garbled, answers."""
    known = set(places)
    return float(np.mean([p in known for p in predictions])) if len(predictions) else float("nan")
