"""Analyses behind the considerations essays: counting and comparing what the runs stored.

Everything that needs a model (answers with their log-probabilities, probe completions,
answers for invented names, scores after each pretraining snapshot) is measured by the
experiment runs and stored beside their records (`lib.runs.pipeline`). The functions here only
group, count and compare those stored rows, so a chapter runs them in a moment at build
time, and tests pin them on small hand-made fixtures.

Rows are plain dicts as the details files hold them: dev rows `{name, gold, prediction,
logprob}`, stranger rows `{name, first, last, prediction, logprob}`, probe rows
`{name, place, name_probe, bio_probe, name_completion, bio_completion}`.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core import data as D
from lib.core.evaluate import control_places  # the probe's own rule, to rescore stored completions

# The runs every considerations chapter reads; a profile counts only when it has all three.
LOCATIONS = ("within the window", "later in the biography", "not in the biography")


# --------------------------------------------------------------------------------------
# (a) Where the knowledge is
# --------------------------------------------------------------------------------------
def place_location(place: str, biography: str | None, window: int) -> str:
    """Whether a place is written in a biography, and whether that mention fits the window.

    The first mention counts, and it fits when it *ends* inside the window, as for the
    biography probe: a model can only have learned what it was shown whole.
    """
    at = -1 if biography is None else biography.find(place)
    if at < 0:
        return LOCATIONS[2]
    return LOCATIONS[0] if at + len(place) <= window else LOCATIONS[1]


def locate(rows: Iterable[dict], biographies: dict[str, str], window: int,
           place_key: str = "gold") -> list[str]:
    """Where each row's place (`place_key`) is written in that person's biography: inside
    the pretraining window, after it, or nowhere (`place_location`)."""
    return [place_location(r[place_key], biographies.get(r["name"]), window) for r in rows]


def accuracy_by_group(correct: Sequence[bool], groups: Sequence[str],
                      order: Sequence[str] = LOCATIONS) -> pd.DataFrame:
    """People, share, correct answers and accuracy per group (every group listed, empty or not)."""
    if len(correct) != len(groups):
        raise ValueError(f"{len(correct)} outcomes for {len(groups)} groups")
    frame = pd.DataFrame({"group": list(groups), "correct": [bool(c) for c in correct]})
    rows = []
    for g in list(order) + sorted(set(groups) - set(order)):
        part = frame[frame.group == g]
        rows.append({"group": g, "people": len(part),
                     "share": len(part) / len(frame) if len(frame) else float("nan"),
                     "correct": int(part.correct.sum()),
                     "accuracy": part.correct.mean() if len(part) else float("nan")})
    return pd.DataFrame(rows).set_index("group")


def _hit(completion: str | None, place: str) -> bool | None:
    return None if completion is None else completion.strip().startswith(place)


def probe_table(probe_rows: Sequence[dict]) -> pd.DataFrame:
    """Per person: each probe against the person's own place and against the control's.

    A biography probe is missing (None) where the place is not written inside the window.
    """
    places = [r["place"] for r in probe_rows]
    controls = control_places(places)
    return pd.DataFrame([{
        "name": r["name"], "place": r["place"], "control": c,
        "name_probe": _hit(r["name_completion"], r["place"]),
        "name_control": _hit(r["name_completion"], c),
        "bio_probe": _hit(r["bio_completion"], r["place"]),
        "bio_control": _hit(r["bio_completion"], c),
    } for r, c in zip(probe_rows, controls, strict=True)])


def probe_scores(table: pd.DataFrame) -> pd.DataFrame:
    """Correct, asked and rate for each probe, against gold and against the control."""
    rows = []
    for probe, label in (("name", "NAME. NAME was born in"), ("bio", "biography prefix")):
        for against, column in (("own place", f"{probe}_probe"), ("control", f"{probe}_control")):
            asked = table[column].dropna()
            rows.append({"probe": label, "against": against, "correct": int(asked.sum()),
                         "asked": len(asked),
                         "rate": asked.mean() if len(asked) else float("nan")})
    return pd.DataFrame(rows)


def stored_vs_extracted(probe_rows: Sequence[dict], dev_rows: Sequence[dict]) -> pd.DataFrame:
    """One row per dev person: what the probes recovered and what the finetuned model answered."""
    table = probe_table(probe_rows).set_index("name")
    answers = pd.DataFrame(dev_rows).set_index("name")
    missing = set(answers.index) - set(table.index)
    if missing:
        raise ValueError(f"{len(missing)} dev people have no probe result, e.g. {sorted(missing)[0]!r}")
    joined = table.loc[answers.index].copy()
    joined["answer"] = answers["prediction"]
    joined["answered"] = answers["prediction"] == answers["gold"]
    # Stored: either probe completes the person's own place.
    joined["stored"] = [n is True or b is True for n, b in
                        zip(joined["name_probe"], joined["bio_probe"], strict=True)]
    return joined.reset_index()


STORED_LABELS = {True: "recovered by the probe", False: "not recovered", None: "not probed"}
ANSWER_LABELS = {True: "question answered", False: "question missed"}


def cross_table(per_person: pd.DataFrame, stored: str = "stored",
                answered: str = "answered") -> pd.DataFrame:
    """Counts of people: recovered by a probe (or not, or not probed) against answered or missed.

    Rows that would be empty are left out, except the two of a probe that asked everyone.
    """
    def label(v) -> str:
        return STORED_LABELS[None if v is None or v != v else bool(v)]

    s = [label(v) for v in per_person[stored]]
    a = [ANSWER_LABELS[bool(v)] for v in per_person[answered]]
    rows = [r for r in STORED_LABELS.values() if r != STORED_LABELS[None] or r in s]
    table = pd.DataFrame(0, index=rows, columns=list(ANSWER_LABELS.values()))
    for si, ai in zip(s, a, strict=True):
        table.loc[si, ai] += 1
    table["total"] = table.sum(axis=1)
    table.loc["total"] = table.sum(axis=0)
    return table


# How often a place is the answer of a training question, in bands for a table. The edges
# are for reading only: the essay's test ranks the counts themselves.
FREQUENCY_BANDS = (("never", 0, 0), ("once", 1, 1), ("2-4 times", 2, 4),
                   ("5-19 times", 5, 19), ("20 times or more", 20, None))


def training_answer_counts(places: Iterable[str], train_places: Sequence[str]) -> list[int]:
    """For each place, how many training questions have it as their answer: how often
    finetuning rewarded exactly that string."""
    counts = Counter(train_places)
    return [counts.get(place, 0) for place in places]


def frequency_band(count: int) -> str:
    """The `FREQUENCY_BANDS` label of a count of training answers."""
    if count < 0:
        raise ValueError(f"a count of training answers cannot be negative: {count}")
    return next(label for label, low, high in FREQUENCY_BANDS
                if low <= count and (high is None or count <= high))


def extraction_by_frequency(per_person: pd.DataFrame, train_places: Sequence[str],
                            alone_right: dict[str, bool]) -> pd.DataFrame:
    """The people whose biography probe completes their own place, grouped by how often that
    place answers a training question: how many there are, how many of them the name probe
    also finds, how many the question answers after pretraining and finetuning, and how many
    finetuning alone answers (`alone_right`, by name). Every band is listed, empty or not."""
    stored = per_person[[v is True for v in per_person["bio_probe"]]]  # None: not asked
    missing = set(stored["name"]) - set(alone_right)
    if missing:
        raise ValueError(f"{len(missing)} stored people have no finetuning-alone answer, "
                         f"e.g. {sorted(missing)[0]!r}")
    bands = [frequency_band(c) for c in training_answer_counts(stored["place"], train_places)]
    rows = []
    for label, _, _ in FREQUENCY_BANDS:
        part = stored[[b == label for b in bands]]
        rows.append({"band": label, "stored": len(part),
                     "name probe": sum(v is True for v in part["name_probe"]),
                     "answered": int(part["answered"].sum()),
                     "finetuning alone": sum(bool(alone_right[n]) for n in part["name"])})
    return pd.DataFrame(rows).set_index("band")


def pretraining_curve(pretrain: dict, pretrain_finetune: dict | None = None) -> pd.DataFrame:
    """Probe rates and post-finetuning dev accuracy at each pretraining snapshot.

    The end of pretraining is added when no snapshot falls on it, with the final probe and
    the dev accuracy of the finetuned run itself.
    """
    def probe_rates(summary: dict) -> dict:
        out = {}
        for key in ("name_gold", "name_control", "bio_gold", "bio_control"):
            total = summary.get(f"{key}_total", 0)
            out[key] = summary[f"{key}_correct"] / total if total else float("nan")
        return out

    m = pretrain["metrics"]
    rows = [{"epoch": s["epoch"], "step": s["step"], "tokens": s["tokens"], **probe_rates(s["probe"])}
            for s in m.get("snapshots", [])]
    if not any(r["step"] == m["steps"] for r in rows):
        rows.append({"epoch": pretrain["config"]["pretrain"]["epochs"], "step": m["steps"],
                     "tokens": m["tokens"], **probe_rates(m["probe"]), "final": True})
    curve = pd.DataFrame(rows)
    curve["dev_accuracy"] = float("nan")
    if pretrain_finetune is not None:
        after = {s["step"]: s["dev"]["accuracy"] for s in pretrain_finetune["metrics"]["snapshots"]}
        curve["dev_accuracy"] = [after.get(step, float("nan")) for step in curve["step"]]
        if "final" in curve:
            final = curve["final"].fillna(False).astype(bool)
            curve.loc[final, "dev_accuracy"] = pretrain_finetune["metrics"]["dev"]["accuracy"]
    return curve.drop(columns=["final"], errors="ignore").sort_values("step").reset_index(drop=True)


def answer_frequencies(predictions: Sequence[str], top: int | None = None) -> pd.DataFrame:
    """How often each answer was given, most frequent first."""
    counts = Counter(predictions).most_common(top)
    n = len(predictions)
    return pd.DataFrame([{"answer": a, "count": c, "share": c / n} for a, c in counts])


def frequency_baselines(train_places: Sequence[str], dev_golds: Sequence[str],
                        fixed: str = "London") -> pd.DataFrame:
    """Dev accuracy of always giving one answer: the classic London, and the commonest train place."""
    common = Counter(train_places).most_common(1)[0][0]
    rows = []
    for label, answer in ((f"always {fixed}", fixed), ("always the commonest training place", common)):
        correct = sum(g == answer for g in dev_golds)
        rows.append({"baseline": label, "answer": answer, "correct": correct,
                     "total": len(dev_golds), "accuracy": correct / len(dev_golds)})
    return pd.DataFrame(rows).set_index("baseline")


# --------------------------------------------------------------------------------------
# (c) Strangers
# --------------------------------------------------------------------------------------
def entropy_bits(items: Sequence[str]) -> float:
    """Shannon entropy of the empirical distribution of `items`, in bits."""
    counts = np.array(list(Counter(items).values()), dtype=float)
    if counts.size == 0:
        return float("nan")
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def concentration(predictions: Sequence[str], top: int = 5) -> dict:
    """How spread out a set of answers is: distinct answers, entropy, share of the top ones."""
    counts = Counter(predictions)
    n = len(predictions)
    ranked = counts.most_common()
    return {"answers": n, "distinct": len(counts), "entropy_bits": entropy_bits(predictions),
            "max_entropy_bits": math.log2(n) if n else float("nan"),
            "top_answer": ranked[0][0] if ranked else None,
            "top1_share": ranked[0][1] / n if n else float("nan"),
            f"top{top}_share": sum(c for _, c in ranked[:top]) / n if n else float("nan")}


def frequent_place_share(predictions: Sequence[str], train_places: Sequence[str], k: int = 5) -> dict:
    """How many answers are one of the `k` commonest training places, beside their base rate.

    The base rate is the share of training questions whose answer is one of those places:
    a model that guessed by frequency alone would match it.
    """
    from lib.report.stats import against_rate

    frequent = [p for p, _ in Counter(train_places).most_common(k)]
    in_top = [p in frequent for p in predictions]
    base = float(np.mean([p in frequent for p in train_places]))
    return {"places": frequent, "count": sum(in_top), "n": len(in_top),
            "share": float(np.mean(in_top)) if in_top else float("nan"),
            "train_share": base,
            # exact binomial test of the count against the base rate (a fixed population's)
            "p_value": against_rate(sum(in_top), len(in_top), base)}


def concentration_against_draws(predictions: Sequence[str], train_places: Sequence[str],
                                top: int = 5, draws: int = 2000, seed: int = 0) -> dict:
    """Are the answers more concentrated than the training answers themselves?

    Entropy and the share of the `top` most frequent answers both depend on how many
    answers there are (300 answers cannot hold 500 distinct places), so the answers are
    compared with `draws` random samples of as many training answers, drawn without
    replacement: the samples' central 95 % range of each measure, and one-sided p-values
    ((1 + draws at least as extreme) / (1 + draws)) for lower entropy and for a larger top
    share than a sample shows."""
    n = len(predictions)
    if not 0 < n <= len(train_places):
        raise ValueError(f"need 1 to {len(train_places)} answers, got {n}")
    observed = concentration(predictions, top)
    rng = np.random.default_rng(seed)
    pool = np.array(train_places, dtype=object)
    entropies, shares = [], []
    for _ in range(draws):
        c = concentration(list(pool[rng.choice(len(pool), size=n, replace=False)]), top)
        entropies.append(c["entropy_bits"])
        shares.append(c[f"top{top}_share"])
    entropies, shares = np.array(entropies), np.array(shares)
    share = observed[f"top{top}_share"]
    return {"entropy_bits": observed["entropy_bits"],
            "entropy_range": tuple(float(x) for x in np.percentile(entropies, [2.5, 97.5])),
            "p_lower_entropy": (1 + int((entropies <= observed["entropy_bits"]).sum())) / (1 + draws),
            "top_share": share,
            "top_share_range": tuple(float(x) for x in np.percentile(shares, [2.5, 97.5])),
            "p_larger_top_share": (1 + int((shares >= share).sum())) / (1 + draws),
            "draws": draws, "answers": n}


def _parts(name: str) -> tuple[str, str]:
    words = name.split()
    return words[0], words[-1]


def name_part_steering(strangers: Sequence[dict], train_rows: Sequence[tuple[str, str]],
                       shuffles: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Do name parts steer the answer? Compare with the same answers dealt out at random.

    For each invented name and each part (first, last), the training people sharing that
    part give a set of birthplaces; a hit is a prediction inside that set. The baseline
    deals the same predictions to the invented names in a random order (`shuffles` times):
    what the hit rate would be if the name played no part. `places per part` is the mean
    number of distinct birthplaces behind a shared part. `p` is the share of shuffles
    with at least as many hits (one-sided, with the observed count included).
    """
    by_first: dict[str, set[str]] = {}
    by_last: dict[str, set[str]] = {}
    for name, place in train_rows:
        first, last = _parts(name)
        by_first.setdefault(first, set()).add(place)
        by_last.setdefault(last, set()).add(place)
    preds = np.array([s["prediction"] for s in strangers], dtype=object)
    rng = np.random.default_rng(seed)
    perms = [rng.permutation(len(preds)) for _ in range(shuffles)]
    rows = []
    for part, index in (("first name", by_first), ("last name", by_last)):
        sets = [index.get(s[part.split()[0]], set()) for s in strangers]
        usable = np.array([bool(x) for x in sets])
        hits = np.array([p in x for p, x in zip(preds, sets, strict=True)])
        shuffled = np.array([sum(preds[j] in x for j, x in zip(perm, sets, strict=True) if x)
                             for perm in perms]) if shuffles else np.array([])
        observed = int(hits[usable].sum())
        rows.append({"part": part, "strangers": int(usable.sum()),
                     "places per part": (np.mean([len(x) for x in sets if x]) if usable.any()
                                         else float("nan")),
                     "hits": observed,
                     "rate": observed / usable.sum() if usable.any() else float("nan"),
                     "shuffled rate": (shuffled.mean() / usable.sum() if usable.any() and shuffles
                                       else float("nan")),
                     "p": ((shuffled >= observed).sum() + 1) / (shuffles + 1)})
    return pd.DataFrame(rows).set_index("part")


def names_in_files(names: Iterable[str], folder: str | Path) -> list[str]:
    """The names that occur anywhere in the raw text of any of the four data files.

    Reads the files as bytes decoded from UTF-8, independent of the loaders, so an invented
    name that slipped into any file (as a substring, too) is caught.
    """
    texts = [(Path(folder) / name).read_bytes().decode("utf-8") for name in D.FILES.values()]
    return [n for n in names if any(n in t for t in texts)]
