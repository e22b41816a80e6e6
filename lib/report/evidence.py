"""The evidence the essays read: the records and details of one profile, variant and seed,
checked against the world they were made on, and the same for every finished seed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lib.core import data as D
from lib.report import analysis as A
from lib.report.choice import essay_profile
from lib.report.confidence import correctness
from lib.report.formatting import KIND_LABELS, listing
from lib.report.reading import details as run_details
from lib.report.reading import record_world
from lib.report.results import probe_count
from lib.report.stats import Paired, Rate, Separation, exact_rate, mcnemar, separation
from lib.runs.matrix import TRAINED_KINDS
from lib.runs.records import records_by_seed, results_root


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

    @property
    def window(self) -> int:
        return D.prefix_window(self.records["pretrain"]["config"]["block_size"])

    @property
    def label(self) -> str:
        """Profile, world and origin of the runs, to print beside every number."""
        return (f"profile `{self.profile}` ({self.world.description}; {self.variant}, "
                f"seed {self.seed}; stored runs)")


def profile_caveat(profile: str, listed: bool = False) -> str:
    """What a reader must know about a profile's numbers before reading them (Markdown);
    `listed` puts a whole-data profile's departures in a list nested under a list item."""
    from lib.runs.departures import recipe_departures
    from lib.runs.profiles import PROFILES

    caveats = {
        "smoke": "These are **smoke** numbers: a tiny model trained for seconds. They prove "
                 "that the analysis runs, not how a trained model behaves.",
        "mini": "These are **mini** numbers from a *mini world*: a seeded sample of people, "
                "their biographies and questions, and a smaller model than the classic one.",
        "full": "These are **full** numbers: the whole data and the classic hyperparameters.",
    }
    known = PROFILES.get(profile)
    if profile not in caveats and known is not None and known.mini_world is None:
        # Any other whole-data profile (`cpu`, `cpu32`, ...) names its own departures.
        departures = recipe_departures(known, markdown=True)
        return (f"These are **{profile}** numbers: the whole data and the classic model size, "
                "trained on a CPU with these departures from the classic recipe:"
                + ("".join(f"\n  - {d}" for d in departures) if listed
                   else " " + "; ".join(departures) + "."))
    return caveats.get(profile, "")


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
        found = records_by_seed(profile, kind, variant, root)
        if seed is None and kind == TRAINED_KINDS[0] and found:
            seed = min(found)
        if seed not in found:
            raise LookupError(f"profile {profile!r} has no {kind} run of {variant} seed {seed}")
        records[kind] = found[seed]
    details = {kind: d for kind, r in records.items() if (d := run_details(r, root))}
    world = record_world(records["pretrain_finetune"], data)
    stored = [row["name"] for row in details["pretrain_finetune"]["dev"]]
    if stored != [q.name for q in world.dev]:
        raise ValueError(f"the dev people stored in the {profile} records differ from the world "
                         "rebuilt from their config: the data or the sampling code changed")
    return Evidence(profile, variant, seed, records, details, world, data)


def gather_seeds(evidence: Evidence, root: Path | None = None) -> list[Evidence]:
    """The same profile and variant for every seed with finished runs of every kind, in seed
    order (`evidence` itself among them): what the essays' seed-by-seed tables read."""
    seeds = list(records_by_seed(evidence.profile, TRAINED_KINDS[0], evidence.variant, root))
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
    listed = listing(seeds)
    return (f"seed {listed} (one seed)" if len(seeds) == 1
            else f"seeds {listed} ({len(seeds)} seeds)")


# --------------------------------------------------------------------------------------
# What one seed shows, as rates the essays' figures put side by side
# --------------------------------------------------------------------------------------
# The two finetuned runs of a seed, with the labels every page uses.
RUN_LABELS = {kind: KIND_LABELS[kind] for kind in ("pretrain_finetune", "finetune")}
SHORT_LOCATIONS = dict(zip(A.LOCATIONS, ("inside the window", "later in the biography",
                                         "not in the biography"), strict=True))


def storage_rates(evidence: Evidence) -> dict[str, Rate | None]:
    """What one seed stored (the probes) and extracted (the question), each a rate over dev
    people with its exact interval. Beside each probe: its two controls, another person's
    place (rules out "emits frequent places") and people the model never read (rules out
    "guesses from the name"); None where the run did not record the latter."""
    scores = A.probe_scores(A.probe_table(evidence.details["pretrain"]["probe"]))
    scores = scores.set_index(["probe", "against"])
    unread = evidence.records["pretrain"]["metrics"].get("probe_unread")
    out: dict[str, Rate | None] = {}
    for key, probe, label in (("bio", "biography prefix", "biography probe"),
                              ("name", "NAME. NAME was born in", "name probe")):
        for against, shown in (("own place", "own place"), ("control", "another's place")):
            row = scores.loc[(probe, against)]
            out[f"{label}: {shown}"] = exact_rate(int(row["correct"]), int(row["asked"]))
        out[f"{label}: never-read people"] = (
            exact_rate(*probe_count(unread, key))
            if unread else None)
    for kind, label in RUN_LABELS.items():
        right = correctness(evidence.details[kind]["dev"])
        out[f"question: {label}"] = exact_rate(int(right.sum()), len(right))
    return out


def location_rates(evidence: Evidence) -> dict[str, Rate]:
    """Dev accuracy by where the gold place is written (inside the pretraining window, later,
    nowhere), for both finetuned runs of one seed."""
    out = {}
    for kind, label in RUN_LABELS.items():
        rows = evidence.details[kind]["dev"]
        where = A.locate(rows, evidence.data.biographies, evidence.window)
        table = A.accuracy_by_group(correctness(rows), where)
        for group, row in table.iterrows():
            out[f"{label}: {SHORT_LOCATIONS.get(group, group)}"] = exact_rate(
                int(row["correct"]), int(row["people"]))
    return out


@dataclass(frozen=True)
class AnswerFrequency:
    """One seed's people whose biography probe completes their own place, against how often
    that place is the answer of a training question (how often finetuning rewarded it)."""

    table: pd.DataFrame  # `analysis.extraction_by_frequency`: the counts per band, for a page
    answered: Separation  # the counts ranking the people the question answers above the rest
    name_probe: Separation  # the same counts ranking the name probe's hits above its misses
    rare: tuple[int, int]  # (answered, people) whose place answers at most one training question
    against_alone: Paired  # the same people: after pretraining against finetuning alone


def answer_frequency(evidence: Evidence) -> AnswerFrequency:
    """Whether the stored places that come out as answers are the ones finetuning rewarded
    often (`AnswerFrequency`)."""
    per_person = A.stored_vs_extracted(evidence.details["pretrain"]["probe"],
                                       evidence.details["pretrain_finetune"]["dev"])
    train_places = [q.place for q in evidence.world.train]
    alone = {r["name"]: r["prediction"] == r["gold"] for r in evidence.details["finetune"]["dev"]}
    table = A.extraction_by_frequency(per_person, train_places, alone)
    stored = per_person[[v is True for v in per_person["bio_probe"]]]
    counts = A.training_answer_counts(stored["place"], train_places)
    answered = [bool(v) for v in stored["answered"]]
    rare = table.loc[["never", "once"]]  # the bands of at most one training answer
    return AnswerFrequency(
        table=table,
        answered=separation(counts, answered),
        name_probe=separation(counts, [v is True for v in stored["name_probe"]]),
        rare=(int(rare["answered"].sum()), int(rare["stored"].sum())),
        against_alone=mcnemar(answered, [alone[n] for n in stored["name"]]))


def rankable(tests: dict[int, Separation]) -> dict[int, Separation]:
    """The seeds whose ranking test had both groups to rank (the others say nothing)."""
    return {seed: t for seed, t in tests.items() if t.verdict != "nothing to rank"}


def by_seed(evidences: Sequence[Evidence],
            measure: Callable[[Evidence], dict]) -> dict[str, dict[int, object]]:
    """`measure(evidence)` (a dict of named values) for every seed, turned to name -> seed ->
    value: the shape `figures.seed_rates` draws."""
    out: dict[str, dict[int, object]] = {}
    for e in evidences:
        for name, value in measure(e).items():
            out.setdefault(name, {})[e.seed] = value
    return out


def per_seed_text(values: dict[int, str]) -> str:
    """'76/90 (seed 0), 61/90 (seed 1) and 80/90 (seed 2)': one value per seed for prose
    ('0/90 (each of the 3 seeds)' where they agree: a parenthesis like the seeds' own, so
    the sentence may go on with 'of 500 people' either way). One seed gives the bare value:
    a page that reads one seed names it once (`seeds_line`), not after every number."""
    if len(values) == 1:
        return next(iter(values.values()))
    if len(values) > 1 and len(set(values.values())) == 1:
        every = "both seeds" if len(values) == 2 else f"each of the {len(values)} seeds"
        return f"{next(iter(values.values()))} ({every})"
    return listing([f"{v} (seed {s})" for s, v in sorted(values.items())])
