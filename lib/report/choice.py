"""Which profile a page shows, by one rule (`choose`): walk the profiles in `PROFILE_ORDER`
(the whole data first, `full` before the CPU profiles, then the mini world, the `smoke`
wiring check last), passing over those a later profile `SUPERSEDED`, and take the first
whose records hold every run the page needs. A profile that cannot yet answer what a page
asks is passed over, so a page never mixes profiles. What each page needs is the only
thing that differs, and each is one predicate below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from lib.runs.matrix import TRAINED_KINDS, Run, missing
from lib.runs.profiles import PROFILE_ORDER, SUPERSEDED, get_profile
from lib.runs.records import load_records


def choose(holds: Callable[[str, Path | None], bool], root: Path | None = None) -> str | None:
    """The first profile in `PROFILE_ORDER`, superseded ones passed over, whose records hold
    what a page needs."""
    return next((profile for profile in PROFILE_ORDER
                 if profile not in SUPERSEDED and holds(profile, root)), None)


def has_runs(profile: str, root: Path | None = None, kinds: Sequence[str] = TRAINED_KINDS,
             variant: str = "vanilla") -> bool:
    """Whether a profile holds a finished run of every kind in `kinds` for `variant` (any seed)."""
    return all(any(r.get("variant") == variant for r in load_records(profile, root, kind))
               for kind in kinds)


def has_research_variant(profile: str, root: Path | None = None) -> bool:
    """Whether a profile has a finished research-variant run to compare with vanilla."""
    return any(r["variant"] not in ("vanilla", "none")
               for r in load_records(profile, root, kind="pretrain_finetune"))


def answers_exercise(profile: str, root: Path | None = None) -> bool:
    """Whether a profile answers the exercise's questions 2(c), 2(d) and 2(f): the London
    baseline, finetuning from scratch for every seed the profile names (cheap runs), and
    vanilla pretraining with its pretrain + finetune for at least one seed. The other seeds'
    pretraining (hours each on a CPU) joins the pages as it finishes; `pending_runs` names
    what is still to come."""
    records = load_records(profile, root)
    vanilla = {(r["kind"], r["seed"]) for r in records if r["variant"] == "vanilla"}
    seeds = get_profile(profile).seeds
    return (any(r["kind"] == "london" for r in records)
            and all(("finetune", s) in vanilla for s in seeds)
            and any(("pretrain", s) in vanilla and ("pretrain_finetune", s) in vanilla
                    for s in seeds))


def pending_runs(profile: str, root: Path | None = None) -> list[Run]:
    """The vanilla runs of a profile's matrix that have not finished, in running order."""
    have = [(r["kind"], r["variant"], r["seed"]) for r in load_records(profile, root)]
    return missing(profile, have)


def chapter_profile(root: Path | None = None) -> str | None:
    """The knowledge-access chapters: the first profile that answers the exercise."""
    return choose(answers_exercise, root)


def variant_profiles(root: Path | None = None) -> list[str]:
    """The variants chapter: every profile that answers the exercise with vanilla attention
    (what each variant is compared with) and has a finished research-variant run, whole data
    first; `smoke` only when no other has one (its numbers mean nothing). Unlike the other
    pages it shows them all: the whole data's few variant runs do not replace the mini
    world's fast comparisons of every variant."""
    have = [p for p in PROFILE_ORDER if p not in SUPERSEDED
            and answers_exercise(p, root) and has_research_variant(p, root)]
    return [p for p in have if p != "smoke"] or have


def people_profile(root: Path | None = None) -> str | None:
    """The people table: a finished pretrain + finetune run of vanilla attention."""
    return choose(lambda p, r: has_runs(p, r, ("pretrain_finetune",)), root)


def essay_profile(root: Path | None = None, variant: str = "vanilla") -> str | None:
    """The essays: for vanilla attention the chapters' profile, so essays and chapters read
    the same runs; failing that (or for another variant), the first profile with finished
    runs of every trained kind (pretrain, pretrain + finetune, finetune) for one seed."""
    chapters = chapter_profile(root) if variant == "vanilla" else None
    return chapters or choose(lambda p, r: has_runs(p, r, TRAINED_KINDS, variant), root)


def profiles_with_records(root: Path | None = None) -> list[str]:
    """Profiles with at least one vanilla or London record, whole data first (`full`, then the
    CPU profiles), then the mini world; `smoke` only when nothing else has run (its numbers mean
    nothing). Superseded profiles are listed: this is what the results page compares."""
    have = [p for p in PROFILE_ORDER if any(r["variant"] in ("vanilla", "none")
                                            for r in load_records(p, root))]
    real = [p for p in have if p != "smoke"]
    return real or have
