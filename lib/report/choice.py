"""Which profile a page shows, by one rule (`choose`): walk the profiles in `PROFILE_ORDER`
(the whole data first, `full` before the CPU profiles, then the mini world, the `smoke`
wiring check last) and take the first whose records hold every run the page needs. A
profile still running, or run in parts, is passed over, so a page never mixes profiles.
What each page needs is the only thing that differs, and each is one predicate below.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from lib.runs.matrix import TRAINED_KINDS, missing
from lib.runs.profiles import PROFILE_ORDER
from lib.runs.records import load_records


def choose(holds: Callable[[str, Path | None], bool], root: Path | None = None) -> str | None:
    """The first profile in `PROFILE_ORDER` whose records hold what a page needs."""
    return next((profile for profile in PROFILE_ORDER if holds(profile, root)), None)


def matrix_complete(profile: str, root: Path | None = None) -> bool:
    """Whether the London baseline and every vanilla run of the matrix (pretrain, pretrain +
    finetune, finetune) have finished for every seed the profile names."""
    have = [(r["kind"], r["variant"], r["seed"]) for r in load_records(profile, root)]
    return not missing(profile, have)


def has_runs(profile: str, root: Path | None = None, kinds: Sequence[str] = TRAINED_KINDS,
             variant: str = "vanilla") -> bool:
    """Whether a profile holds a finished run of every kind in `kinds` for `variant` (any seed)."""
    return all(any(r.get("variant") == variant for r in load_records(profile, root, kind))
               for kind in kinds)


def has_research_variant(profile: str, root: Path | None = None) -> bool:
    return any(r["variant"] not in ("vanilla", "none")
               for r in load_records(profile, root, kind="pretrain_finetune"))


def chapter_profile(root: Path | None = None) -> str | None:
    """The knowledge-access chapters: a complete vanilla matrix, every seed."""
    return choose(matrix_complete, root)


def variant_profile(root: Path | None = None) -> str | None:
    """The variants chapter: a complete vanilla matrix (what each variant is compared with)
    and a finished research-variant run."""
    return choose(lambda p, r: matrix_complete(p, r) and has_research_variant(p, r), root)


def people_profile(root: Path | None = None) -> str | None:
    """The people table: a finished pretrain + finetune run of vanilla attention."""
    return choose(lambda p, r: has_runs(p, r, ("pretrain_finetune",)), root)


def essay_profile(root: Path | None = None, variant: str = "vanilla") -> str | None:
    """The essays: for vanilla attention the chapters' profile (a complete matrix, every
    seed), so a whole-data profile with one seed finished does not displace a world read
    on every seed; failing that (or for another variant), the first profile with finished
    runs of every trained kind (pretrain, pretrain + finetune, finetune) for one seed."""
    complete = chapter_profile(root) if variant == "vanilla" else None
    return complete or choose(lambda p, r: has_runs(p, r, TRAINED_KINDS, variant), root)


def profiles_with_records(root: Path | None = None) -> list[str]:
    """Profiles with at least one vanilla or London record, whole data first (`full`, `cpu`),
    then the mini world; `smoke` only when nothing else has run (its numbers mean nothing)."""
    have = [p for p in PROFILE_ORDER if any(r["variant"] in ("vanilla", "none")
                                            for r in load_records(p, root))]
    real = [p for p in have if p != "smoke"]
    return real or have


def first_profile_with(kind: str, root: Path | None = None, variant: str = "vanilla") -> str | None:
    """A page's number about one kind of run (the answers page): the first listed profile
    holding a finished run of that kind and variant."""
    return next((p for p in profiles_with_records(root) if has_runs(p, root, (kind,), variant)), None)
