"""The experiment matrix, defined once: the kinds of run, a run's key and id, its files, and
which runs a profile has.

A profile's matrix is the London baseline and, for every attention variant and seed,
pretraining, finetuning the pretrained model (`pretrain_finetune`) and finetuning from
scratch (`finetune`). Everything that lists, orders or checks runs (the notebooks' runner,
the GPU script, the pages, the command line) starts from `KINDS`, `Run` and `matrix`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from lib.runs.profiles import get_profile, recipe_profile_name
from lib.runs.records import REPO_ROOT, record_path, results_root

KINDS = ("london", "pretrain", "pretrain_finetune", "finetune")  # running order within a seed
TRAINED_KINDS = KINDS[1:]


def checkpoints_root() -> Path:
    """Where weights and training states go: `$BOOK_CHECKPOINTS` if set (a long run keeps
    them outside the clone), else checkpoints/ (ignored by git)."""
    return Path(os.environ.get("BOOK_CHECKPOINTS", REPO_ROOT / "checkpoints"))


def run_id(kind: str, variant: str = "vanilla", seed: int = 0) -> str:
    """A run's name inside its profile: `london` or `<kind>-<variant>-seed<seed>`."""
    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}; choose one of {', '.join(KINDS)}")
    return "london" if kind == "london" else f"{kind}-{variant}-seed{seed}"


@dataclass(frozen=True)
class RunPaths:
    """Where one run's files live: record, predictions, details and log under the results
    folder (committed); weights, training state, snapshots and the lock that keeps a second
    process off the run under the checkpoints folder (never committed)."""

    record: Path
    predictions: Path
    details: Path
    metrics: Path
    test_predictions: Path
    weights: Path
    state: Path
    snapshots: Path
    lock: Path

    @classmethod
    def of(cls, profile: str, rid: str) -> RunPaths:
        results = results_root() / profile
        ckpt = checkpoints_root() / profile / rid
        return cls(record_path(profile, rid), results / f"{rid}.predictions.txt",
                   results / f"{rid}.details.json", results / f"{rid}.metrics.jsonl",
                   results / f"{rid}.test_predictions.txt",
                   ckpt / "model.safetensors", ckpt / "state.safetensors", ckpt / "snapshots",
                   ckpt / "run.lock")


@dataclass(frozen=True)
class Run:
    """One run of the matrix: its kind, attention variant, seed and pretraining recipe options
    (a recipe's runs live under the profile `base+option...`)."""

    kind: str
    variant: str = "vanilla"
    seed: int = 0
    recipe: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        run_id(self.kind)  # an unknown kind fails here, not later
        if self.kind == "london":  # no model: its record says variant "none", seed 0
            object.__setattr__(self, "variant", "none")
            object.__setattr__(self, "seed", 0)

    @property
    def id(self) -> str:
        """The run's name inside its profile (its record is `results/<profile>/<id>.json`)."""
        return run_id(self.kind, self.variant, self.seed)

    @property
    def key(self) -> str:
        """Unique across recipes: the id, with the recipe's options in front when it has some."""
        return "/".join(("+".join(self.recipe), self.id)) if self.recipe else self.id

    def profile(self, base: str) -> str:
        """The profile the run belongs to: `base`, or `base+option...` for a recipe."""
        return recipe_profile_name(base, self.recipe)

    def paths(self, base: str) -> RunPaths:
        return RunPaths.of(self.profile(base), self.id)


def matrix(profile: str, seeds: Sequence[int] | None = None,
           variants: Iterable[str] = ("vanilla",)) -> list[Run]:
    """A profile's runs in running order: London, then per variant and seed pretrain,
    pretrain + finetune (which needs the pretrained weights) and finetune from scratch."""
    seeds = list(get_profile(profile).seeds if seeds is None else seeds)
    return [Run("london")] + [Run(kind, variant, seed) for variant in variants for seed in seeds
                              for kind in TRAINED_KINDS]


def missing(profile: str, have: Iterable[tuple[str, str, int]],
            variants: Iterable[str] = ("vanilla",)) -> list[Run]:
    """The runs of a profile's matrix (every seed it names) not among `have`, the
    (kind, variant, seed) of its finished runs."""
    done = set(have)
    return [r for r in matrix(profile, variants=variants) if (r.kind, r.variant, r.seed) not in done]
