"""What `make gpu-run` runs, in order of value (see `lib.runs.gpu_run` for why this order),
and what a job has already done: its phases, records, training speed and CUDA-graph use."""

from __future__ import annotations

import json
from collections.abc import Sequence

from lib.runs.matrix import Run, RunPaths, run_id
from lib.runs.profiles import PROFILES
from lib.runs.records import read_record

# Research variants in order of value; registered variants not named here come last.
VARIANT_ORDER = ("vanilla", "rope", "synthesizer", "linformer", "bigbird")
# Variants whose first seed runs before vanilla's other seeds with pretraining.
EARLY_VARIANTS = ("rope",)
# Pretraining recipes the full matrix includes, as OPTIONS[:VARIANT] (`parse_recipe`). On the
# mini-world testbed (recipes chapter, seed 0) rope stored more and mixed answered a larger
# share of what was stored, while crop stored far less: so mixed with rope, without crop.
RECIPES = ("mixed:rope",)

def parse_recipe(spec: str) -> tuple[tuple[str, ...], str]:
    """'mixed+crop:rope' -> (('mixed', 'crop'), 'rope'); the variant defaults to vanilla.
    Options are checked as profiles check them (known, distinct, in `lib.core.datasets.RECIPES` order)."""
    options, _, variant = spec.partition(":")
    parsed = tuple(options.split("+")) if options else ()
    from lib.runs.profiles import with_recipe

    with_recipe(PROFILES["smoke"], parsed)  # raises ValueError with the valid choices
    return parsed, variant or "vanilla"


def variant_rank(variant: str) -> tuple[int, str]:
    """Sort key putting attention variants in the order of their value to the book
    (`VARIANT_ORDER`), any others after them by name."""
    return (VARIANT_ORDER.index(variant) if variant in VARIANT_ORDER else len(VARIANT_ORDER), variant)


def jobs_for(variants: list[str], seeds: list[int], variant_seeds: list[int],
             recipes: Sequence[tuple[tuple[str, ...], str]] = ()) -> list[Run]:
    """Jobs, most valuable first (see the module's docstring): vanilla seed 0 with and without
    pretraining and the other seeds' finetunes without it; the first of `variant_seeds` of
    RoPE and of each recipe; the other vanilla seeds with pretraining; then the rest of
    RoPE's and the recipes' seeds and the other research variants over `variant_seeds`.
    A recipe runs only when its variant is among `variants`."""
    first_jobs: list[Run] = []
    later: list[Run] = []
    if "vanilla" in variants and seeds:
        first, *others = seeds
        first_jobs += [Run("pretrain_finetune", "vanilla", first), Run("finetune", "vanilla", first)]
        first_jobs += [Run("finetune", "vanilla", seed) for seed in others]
        later += [Run("pretrain_finetune", "vanilla", seed) for seed in others]
    researched = sorted(set(variants) - {"vanilla"}, key=variant_rank)
    early = [(variant, ()) for variant in researched if variant in EARLY_VARIANTS]
    early += [(variant, tuple(options)) for options, variant in recipes if variant in variants]
    for variant, recipe in early:
        runs = [Run("pretrain_finetune", variant, seed, recipe) for seed in variant_seeds]
        first_jobs += runs[:1]
        later += runs[1:]
    for variant in researched:
        if variant not in EARLY_VARIANTS:
            later += [Run("pretrain_finetune", variant, seed) for seed in variant_seeds]
    return first_jobs + later


def phases(job: Run) -> dict[str, str]:
    """The training phases of a (kind, variant, seed) job and the run id of each (pretrain +
    finetune has two, each with its own record and metrics log)."""
    kind, variant, seed = job.kind, job.variant, job.seed
    if kind == "pretrain_finetune":
        return {"pretrain": run_id("pretrain", variant, seed), "finetune": run_id(kind, variant, seed)}
    return {kind: run_id(kind, variant, seed)}


def finished_before(profile: str, job: Run) -> bool:
    """Every record of the job exists: a run without --force would only read them back."""
    return all(RunPaths.of(profile, rid).record.exists() for rid in phases(job).values())


def needs_pretraining(profile: str, job: Run, force: bool) -> bool:
    """Whether the job will pretrain (the finetune redoes a pretraining whose weights are
    missing, as on a fresh GPU machine that holds only the committed records)."""
    kind, variant, seed = job.kind, job.variant, job.seed
    if kind != "pretrain_finetune":
        return False
    pre = RunPaths.of(profile, run_id("pretrain", variant, seed))
    return force or not (pre.record.exists() and pre.weights.exists())


def training_speed(profile: str, job: Run) -> dict[str, float]:
    """Steps per second of each training phase a job went through, from its metrics logs
    (what the next attempt needs to plan by, also when this one ran out of time)."""
    speed = {}
    for phase, rid in phases(job).items():
        log = RunPaths.of(profile, rid).metrics
        try:
            lines = log.read_text().splitlines()
            first, last = json.loads(lines[0]), json.loads(lines[-1])
        except (OSError, IndexError, json.JSONDecodeError):
            continue
        # Between the first and last log lines (a resumed run's clock continues from the time
        # its log recorded, as its step count does).
        if last["time"] > first["time"]:
            speed[phase] = round((last["step"] - first["step"]) / (last["time"] - first["time"]), 1)
    return speed


def graph_use(profile: str, job: Run) -> dict[str, dict]:
    """Each finished training phase's CUDA-graph summary (replayed steps, capture failure)."""
    use = {}
    for phase, rid in phases(job).items():
        path = RunPaths.of(profile, rid).record
        if path.exists():
            use[phase] = read_record(path).get("cuda_graphs")
    return use
