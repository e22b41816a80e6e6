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

import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lib.core import data as D
from lib.core.evaluate import control_places  # the probe's own rule, to rescore stored completions
from lib.report.choice import essay_profile
from lib.runs.matrix import TRAINED_KINDS
from lib.runs.records import REPO_ROOT, load_records, results_root

# The runs every considerations chapter reads; a profile counts only when it has all three.
LOCATIONS = ("within the window", "later in the biography", "not in the biography")


# --------------------------------------------------------------------------------------
# Loading the evidence of one profile
# --------------------------------------------------------------------------------------
@dataclass
class Evidence:
    """The records and details of one profile, variant and seed, with the world they used."""

    profile: str
    variant: str
    seed: int
    records: dict[str, dict]  # by kind
    details: dict[str, dict]  # by kind (kinds without a details file are left out)
    world: D.World
    data: D.BirthplaceData
    source: str = "stored runs"

    @property
    def window(self) -> int:
        return D.prefix_window(self.records["pretrain"]["config"]["block_size"])

    @property
    def label(self) -> str:
        """Profile, world and origin of the runs, to print beside every number."""
        return (f"profile `{self.profile}` ({self.world.description}; {self.variant}, "
                f"seed {self.seed}; {self.source})")


def profile_caveat(profile: str) -> str:
    """What a reader must know about a profile's numbers before reading them (Markdown)."""
    from lib.runs.profiles import PROFILES, recipe_departures

    caveats = {
        "smoke": "These are **smoke** numbers: a tiny model trained for seconds. They prove "
                 "that the analysis runs, not how a trained model behaves.",
        "mini": "These are **mini** numbers from a *mini world*: a seeded sample of people, "
                "their biographies and questions, and a smaller model than the classic one.",
        "cpu": "These are **cpu** numbers: the whole data and the classic model size, trained "
               "on a CPU with these departures from the classic recipe: "
               + "; ".join(recipe_departures(PROFILES["cpu"])) + ".",
        "full": "These are **full** numbers: the whole data and the classic hyperparameters.",
    }
    return caveats.get(profile, "")


def data_folder() -> Path:
    """The data folder as the Makefile chooses it, with relative paths taken from the repository root.

    Chapters execute inside `book/...`, so a relative `BIRTHPLACE_DATA` (the Makefile's
    `../shared/data/birthplaces`) would otherwise point to the wrong place.
    """
    env = os.environ.get("BIRTHPLACE_DATA")
    if env:
        path = Path(env)
        return path if path.is_absolute() or path.is_dir() else REPO_ROOT / path
    local = REPO_ROOT / "data"
    return local if (local / "wiki.txt").is_file() else REPO_ROOT.parent / "shared" / "data" / "birthplaces"


def read_details(record: dict, root: Path | None = None) -> dict | None:
    """The per-question details stored beside a record (None for runs without them)."""
    name = record.get("files", {}).get("details")
    if not name:
        return None
    return json.loads(((root or results_root()) / record["profile"] / name).read_text("utf-8"))


def world_of(record: dict, data: D.BirthplaceData) -> D.World:
    """Rebuild the people a run used from the profile stored in its record, not today's table."""
    mini = record["config"].get("mini_world")
    return D.full_world(data) if mini is None else D.mini_world(data, *mini)


def gather(data: D.BirthplaceData, profile: str | None = None, root: Path | None = None,
           variant: str = "vanilla", seed: int | None = None) -> Evidence:
    """Records and details of the best available profile (or `profile`), checked for consistency."""
    profile = profile or essay_profile(root, variant=variant)
    if profile is None:
        raise LookupError(
            f"no profile under {root or results_root()} has finished runs of every kind "
            f"({', '.join(TRAINED_KINDS)}); produce some with "
            "`python -m lib run pretrain_finetune --profile smoke` and `... run finetune ...`")
    records: dict[str, dict] = {}
    for kind in TRAINED_KINDS:
        found = [r for r in load_records(profile, root, kind) if r.get("variant") == variant]
        if seed is None and kind == TRAINED_KINDS[0] and found:
            seed = min(r["seed"] for r in found)
        found = [r for r in found if r["seed"] == seed]
        if not found:
            raise LookupError(f"profile {profile!r} has no {kind} run of {variant} seed {seed}")
        records[kind] = found[0]
    details = {kind: d for kind, r in records.items() if (d := read_details(r, root)) is not None}
    world = world_of(records["pretrain_finetune"], data)
    stored = [row["name"] for row in details["pretrain_finetune"]["dev"]]
    if stored != [q.name for q in world.dev]:
        raise ValueError(f"the dev people stored in the {profile} records differ from the world "
                         "rebuilt from their config: the data or the sampling code changed")
    return Evidence(profile, variant, seed, records, details, world, data)


def gather_seeds(evidence: Evidence, root: Path | None = None) -> list[Evidence]:
    """The same profile and variant for every seed with finished runs of every kind, in seed
    order (`evidence` itself among them): what the essays' seed-by-seed tables read."""
    seeds = sorted({r["seed"] for r in load_records(evidence.profile, root, TRAINED_KINDS[0])
                    if r.get("variant") == evidence.variant})
    out = []
    for seed in seeds:
        try:
            out.append(evidence if seed == evidence.seed else
                       gather(evidence.data, evidence.profile, root, evidence.variant, seed))
        except LookupError:  # this seed's matrix is not finished
            continue
    return out


def seeds_line(evidences: Sequence[Evidence]) -> str:
    """How many seeds a page reads, for its note: 'seeds 0, 1 and 2 (3 seeds)'."""
    seeds = [str(e.seed) for e in evidences]
    listed = seeds[0] if len(seeds) == 1 else ", ".join(seeds[:-1]) + " and " + seeds[-1]
    return (f"seed {listed} (one seed)" if len(seeds) == 1
            else f"seeds {listed} ({len(seeds)} seeds)")


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


def auroc_interval(scores: Sequence[float], labels: Sequence[bool], level: float = 0.9,
                   resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """A percentile bootstrap interval for the AUROC, resampling right and wrong answers separately.

    With few right answers the AUROC is a rough number; the interval says how rough.
    """
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    pos, neg = s[y], s[~y]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(resamples):
        p = rng.choice(pos, len(pos))
        n = rng.choice(neg, len(neg))
        values.append(auroc(np.concatenate([p, n]), np.r_[np.ones(len(p), bool), np.zeros(len(n), bool)]))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


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
    frequent = [p for p, _ in Counter(train_places).most_common(k)]
    in_top = [p in frequent for p in predictions]
    return {"places": frequent,
            "share": float(np.mean(in_top)) if in_top else float("nan"),
            "train_share": float(np.mean([p in frequent for p in train_places]))}


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
