"""The recipes chapter's comparisons: each change to the classic recipe against vanilla
attention with the classic recipe, on the same people of the same world.

A configuration ("arm") is a profile (the base one, `base+option...`, see
`lib.runs.profiles.with_recipe`, or `base-CODE`, the base trained by other training code, see
`TRAINING_CODE`) and an attention variant. Every arm is compared with the base
profile's vanilla runs seed by seed and person by person (McNemar's exact test, the rule of
`lib.report.stats`): on the dev answers (extraction) and on the biography probe (storage).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from lib.report.formatting import listing
from lib.report.provenance import commit_note
from lib.report.reading import details, dev_outcomes, prediction_rows
from lib.report.results import KIND_WORDS, probe_count
from lib.report.stats import ALPHA, Paired, Rate, exact_rate, format_p, mcnemar
from lib.report.verdicts import probes_asked
from lib.runs.records import load_records, records_by_seed, results_root

# The attention variants this chapter compares; the cheaper-attention variants have their own.
ARM_VARIANTS = ("vanilla", "rope")
# Profiles `BASE-CODE` train BASE's model on BASE's corpus with other training code (batch
# order, weight decay, initialisation); each is an arm of BASE, shown by this name.
TRAINING_CODE = {"classic": "classic training code",
                 "classic-grouped": "classic decay and init, grouped batches",
                 "ungrouped": "batches not grouped by length"}


@dataclass(frozen=True)
class Arm:
    """One configuration of the recipes comparison: a profile with its recipe options and an
    attention variant (vanilla or RoPE)."""

    profile: str
    variant: str

    @property
    def options(self) -> tuple[str, ...]:
        """The training code, the recipe options, then `rope` when the arm uses it: what the
        arm changes."""
        head, *recipe = self.profile.split("+")
        code = training_code(head)
        return ((TRAINING_CODE[code],) if code else ()) + tuple(recipe) + (
            ("rope",) if self.variant == "rope" else ())

    @property
    def label(self) -> str:
        return " + ".join(self.options) if self.options else "vanilla (classic)"


def training_code(profile: str) -> str | None:
    """The `TRAINING_CODE` entry a `BASE-CODE` profile name ends with (the longest, so
    `mini-classic-grouped` is not read as `classic`); None for any other name."""
    found = [code for code in TRAINING_CODE if profile.endswith("-" + code)]
    return max(found, key=len) if found else None


def recipe_profiles(base: str, root: Path | None = None) -> list[str]:
    """`base`, its `base-CODE` profiles and every `base+option...` profile with records,
    fewest changes first (the training code before the recipes), each group in the order of
    `lib.core.datasets.RECIPES`."""
    from lib.core.datasets import RECIPES

    folder = root or results_root()
    code = [f"{base}-{name}" for name in TRAINING_CODE]
    found = [p.name for p in folder.iterdir()
             if p.is_dir() and (p.name.startswith(base + "+") or p.name in code)] \
        if folder.is_dir() else []
    order = list(RECIPES)

    def key(name: str) -> tuple:
        if name in code:  # before the one-option recipes, in the order of TRAINING_CODE
            return (1, [code.index(name) - len(code)])
        options = name.split("+")[1:]
        return (len(options), [order.index(o) if o in order else len(order) for o in options])

    return [base] + sorted(found, key=key)


def arms(base: str, root: Path | None = None) -> list[Arm]:
    """Every arm with a pretrain + finetune record, the reference (base, vanilla) first,
    then fewer changes before more."""
    out = []
    for profile in recipe_profiles(base, root):
        kinds = {r["variant"] for r in load_records(profile, root, kind="pretrain_finetune")}
        out += [Arm(profile, v) for v in ARM_VARIANTS if v in kinds]
    return sorted(out, key=lambda a: (len(a.options), a.options != ("rope",)))


def _by_seed(arm: Arm, kind: str, root: Path | None) -> dict[int, dict]:
    return records_by_seed(arm.profile, kind, arm.variant, root)


def _probe_hits(record: dict | None, root: Path | None) -> dict[str, dict[str, bool]]:
    """Per probe (`bio`, `name`), per person it asked: did it find the person's own place?"""
    return {probe: dict(zip(asked["name"], asked["hit"], strict=True))
            for probe, asked in probes_asked(record, root).items()}


def _paired_probe(ours: dict[str, bool], theirs: dict[str, bool]) -> Paired | None:
    """McNemar on the people both probes asked; None when they share nobody."""
    both = [n for n in ours if n in theirs]
    return mcnemar([ours[n] for n in both], [theirs[n] for n in both]) if both else None


@dataclass(frozen=True)
class Measured:
    """One arm's seed: its dev answers and probe, each against the reference's same seed."""

    arm: Arm
    seed: int
    dev: Rate
    dev_vs_vanilla: Paired | None  # None for the reference itself or without its seed
    dev_vs_london: Paired | None
    bio: Rate | None
    bio_vs_vanilla: Paired | None
    answered_of_stored: Rate | None  # dev people the biography probe finds, answered right
    final_loss: float | None
    name: Rate | None = None  # the name probe, which no recipe's reading order favours
    record: dict | None = None  # the pretrain + finetune record measured (its provenance)
    name_vs_vanilla: Paired | None = None
    reference: bool = False  # this arm is the base profile's vanilla attention itself

    @property
    def unpaired(self) -> str:
        """What a table cell says where no comparison with vanilla exists."""
        return "(reference)" if self.reference else "no vanilla run of this seed"


def measure(base: str, root: Path | None = None,
            only: Callable[[Arm], bool] | None = None) -> list[Measured]:
    """Every arm's seeds (or those of the arms `only` keeps), in the order of `arms`, then by
    seed."""
    found = [arm for arm in arms(base, root) if only is None or only(arm)]
    if not found:
        return []
    reference = Arm(base, "vanilla")
    ref_pf = _by_seed(reference, "pretrain_finetune", root)
    ref_right = {seed: dev_outcomes(record, root) for seed, record in ref_pf.items()}
    ref_pre = _by_seed(reference, "pretrain", root)
    london = next(iter(load_records(base, root, kind="london")), None)
    london_right = dev_outcomes(london, root) if london else None
    ref_probes = {seed: _probe_hits(record, root) for seed, record in ref_pre.items()}
    out = []
    for arm in found:
        pre = _by_seed(arm, "pretrain", root)
        for seed, record in sorted(_by_seed(arm, "pretrain_finetune", root).items()):
            right = dev_outcomes(record, root)
            names = [row["name"] for row in details(record, root).get("dev", [])]
            probes = _probe_hits(pre.get(seed), root)
            bio = probes["bio"]
            ref = ref_probes.get(seed, {})
            stored = [ok for name, ok in zip(names, right, strict=True) if bio.get(name)]
            compared = arm != reference and seed in ref_pf
            probed = arm != reference and seed in ref_probes
            out.append(Measured(
                arm=arm, seed=seed, dev=exact_rate(sum(right), len(right)),
                dev_vs_vanilla=mcnemar(right, ref_right[seed]) if compared else None,
                dev_vs_london=mcnemar(right, london_right) if london_right is not None else None,
                bio=exact_rate(sum(bio.values()), len(bio)) if bio else None,
                bio_vs_vanilla=_paired_probe(bio, ref["bio"]) if probed else None,
                answered_of_stored=exact_rate(sum(stored), len(stored)) if bio else None,
                final_loss=pre[seed]["metrics"].get("final_loss") if seed in pre else None,
                name=_name_rate(pre.get(seed)), record=record,
                name_vs_vanilla=_paired_probe(probes["name"], ref["name"]) if probed else None,
                reference=arm == reference))
    return out


def training_code_verdicts(base: str, root: Path | None = None) -> list[str]:
    """The verdicts of `base`'s training-code arms (`TRAINING_CODE`), seed by seed."""
    code = {f"{base}-{name}" for name in TRAINING_CODE}
    return [verdict(m) for m in measure(base, root, only=lambda arm: arm.profile in code)]


def whole_data_code_verdicts(code: str = "cpu32-classic", base: str = "cpu32",
                             root: Path | None = None) -> list[str]:
    """`code` (the whole data trained as the starter code trains) against `base` (the same
    model and data under `lib`'s own training code), kind by kind and seed by seed, on the
    same people: the biography probe after pretraining, the dev answers after finetuning
    alone and after pretraining. Only the seeds both have finished; empty before that."""
    out = []
    base_pretrains = records_by_seed(base, "pretrain", "vanilla", root)
    for seed, ours in sorted(records_by_seed(code, "pretrain", "vanilla", root).items()):
        theirs = base_pretrains.get(seed)
        test = None if theirs is None else _paired_probe(_probe_hits(ours, root)["bio"],
                                                          _probe_hits(theirs, root)["bio"])
        if test is not None:
            out.append(f"**pretraining**, seed {seed}: the biography probe of `{code}` finds "
                       f"{test.a_correct} of {test.n} places, `{base}`'s {test.b_correct}; "
                       f"`{code}` is {test.relation} `{base}` ({test.only_a} vs {test.only_b} "
                       f"people, {format_p(test.p_value)}).")
    for kind in ("finetune", "pretrain_finetune"):
        theirs = records_by_seed(base, kind, "vanilla", root)
        for seed, ours in sorted(records_by_seed(code, kind, "vanilla", root).items()):
            if seed not in theirs:
                continue
            a, b = prediction_rows(ours, root), prediction_rows(theirs[seed], root)
            right = dict(zip(b["name"], b["correct"], strict=True))
            test = mcnemar(list(a["correct"]), [right[name] for name in a["name"]])
            out.append(f"**{KIND_WORDS[kind]}**, seed {seed}: `{code}` answers {test.a_correct} of "
                       f"{test.n} dev questions, `{base}` {test.b_correct}; `{code}` is "
                       f"{test.relation} `{base}` ({test.only_a} vs {test.only_b} people, "
                       f"{format_p(test.p_value)}).")
    return out


def whole_data_code_snapshots(code: str = "cpu32-classic", base: str = "cpu32",
                              root: Path | None = None) -> dict[str, dict[str, dict]]:
    """The records behind the two profiles' snapshot curves, every seed each has finished:
    `{"pretrain": {label: record}, "pretrain_finetune": {label: record}}`, labels
    `PROFILE, seed N`, `code` first. A kind is empty until both have a run of it, since the
    curves are there to be compared; a seed one of them lacks is drawn all the same."""
    out: dict[str, dict[str, dict]] = {}
    for kind in ("pretrain", "pretrain_finetune"):
        runs = {name: records_by_seed(name, kind, "vanilla", root) for name in (code, base)}
        out[kind] = {f"{name}, seed {seed}": found[seed]
                     for name, found in runs.items() for seed in sorted(found)
                     } if all(runs.values()) else {}
    return out


def _name_rate(record: dict | None) -> Rate | None:
    probe = (record or {}).get("metrics", {}).get("probe")
    return None if probe is None else exact_rate(*probe_count(probe, "name"))


def _versus(test: Paired | None, missing: str) -> str:
    if test is None:
        return missing
    return f"{test.verdict} ({test.only_a} vs {test.only_b}, {format_p(test.p_value)})"


def _short(rate: Rate | None) -> str:
    return "n/a" if rate is None else rate.cell(digits=0)


def extraction_table(measured: list[Measured]) -> pd.DataFrame:
    """One row per arm and seed, extraction: the dev answers with their paired comparison
    with vanilla on the same seed (people right only here vs only there, McNemar's p), and
    the share answered of the people the biography probe finds; exact intervals."""
    return pd.DataFrame([{
        "what changes": m.arm.label, "seed": m.seed,
        "dev accuracy (95 % CI)": _short(m.dev),
        "against vanilla": _versus(m.dev_vs_vanilla, m.unpaired),
        "answered, of those stored (95 % CI)": _short(m.answered_of_stored),
    } for m in measured])


def storage_table(measured: list[Measured]) -> pd.DataFrame:
    """One row per arm and seed, storage: the biography and name probes after pretraining,
    each with its paired comparison with vanilla on the same seed."""
    return pd.DataFrame([{
        "what changes": m.arm.label, "seed": m.seed,
        "biography probe (95 % CI)": _short(m.bio),
        "against vanilla": _versus(m.bio_vs_vanilla, m.unpaired),
        "name probe (95 % CI)": _short(m.name),
        "name probe against vanilla": _versus(m.name_vs_vanilla, m.unpaired),
    } for m in measured])


def verdict(m: Measured) -> str:
    """What one arm's seed shows against vanilla, in the words of the rule, no further."""
    if m.dev_vs_vanilla is None:
        return f"**{m.arm.label}**, seed {m.seed}: no vanilla run of this seed to compare with."
    store = ("stores more" if m.bio_vs_vanilla and m.bio_vs_vanilla.verdict == "above" else
             "stores less" if m.bio_vs_vanilla and m.bio_vs_vanilla.verdict == "below" else
             "is not shown to store more or less")
    answer = {"above": "answers more dev questions", "below": "answers fewer dev questions",
              "not separated": "is not shown to answer more or fewer dev questions"}[
        m.dev_vs_vanilla.verdict]
    dev, bio, name = m.dev_vs_vanilla, m.bio_vs_vanilla, m.name_vs_vanilla
    stores = ("no probe to compare" if bio is None else
              f"{bio.only_a} vs {bio.only_b} people, {format_p(bio.p_value)}")
    if name is not None:
        stores += (f"; the name probe is {name.relation} vanilla's, {name.only_a} vs "
                   f"{name.only_b} people, {format_p(name.p_value)}")
    return (f"**{m.arm.label}**, seed {m.seed}: {answer} than vanilla ({m.dev.k} against "
            f"{dev.b_correct} of {m.dev.n}; {dev.only_a} vs {dev.only_b} people, "
            f"{format_p(dev.p_value)}) and {store} by the biography probe ({stores}). "
            f"Of the people whose place its probe finds, it answers "
            f"{_short(m.answered_of_stored)}.")


def provenance(measured: list[Measured], root: Path | None = None) -> str:
    """Which commits the compared runs come from and, where they differ, what the recorded
    check (`benchmarks/same_arithmetic.py`) says about the code in between."""
    labelled = {f"{m.arm.label} seed {m.seed}": m.record for m in measured if m.record is not None}
    text = commit_note(labelled, root)
    base = measured[0].arm.profile if measured else ""
    return " ".join(filter(None, [text, rerun_note(base, root)]))


def _reruns(profile: str, root: Path | None = None) -> list[dict]:
    """The rerun records of `profile` (`benchmarks/rerun_drift.py`), in file-name order."""
    folder = (root or results_root()) / "benchmarks"
    paths = sorted(folder.glob(f"rerun_{profile}_*.json")) if folder.is_dir() else []
    found = [json.loads(path.read_text(encoding="utf-8")) for path in paths]
    return [r for r in found if r["profile"] == profile]


def rerun_note(profile: str, root: Path | None = None) -> str:
    """What the recorded reruns of `profile` (`benchmarks/rerun_drift.py`) measured: how far a
    whole run lands from the first one when only rounding differs, seed by seed, and which of
    the two runs the records hold. Empty without one."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(_reruns(profile, root), key=lambda r: r["seed"]):
        groups.setdefault((r["variant"], r["rerun"]["commit"]), []).append(r)
    notes = []
    for (variant, commit), runs in groups.items():
        def each(pick, runs: list[dict] = runs) -> str:
            return listing([pick(r) for r in runs])

        seeds = ("seed " if len(runs) == 1 else "seeds ") + each(lambda r: str(r["seed"]))
        dev = [r["dev, rerun against stored"] for r in runs]
        bio = [r["biography probe, rerun against stored"] for r in runs]
        split = listing([f"{d['only rerun right']} vs {d['only stored right']} people" for d in dev])
        notes.append(
            f"Run a second time at {commit}, {variant} {seeds} of `{profile}` answered "
            f"{each(lambda r: r['rerun']['dev'])} dev questions against "
            f"{each(lambda r: r['stored']['dev'])} the first time (at "
            f"{each(lambda r: r['stored']['commit'])}; {split}, McNemar "
            f"{listing([format_p(d['McNemar p']) for d in dev])}), and the biography probe "
            f"found {each(lambda r: r['rerun']['biography probe'])} against "
            f"{each(lambda r: r['stored']['biography probe'])} (McNemar "
            f"{listing([format_p(b['McNemar p']) for b in bio])}): that is how far rounding "
            "differences alone move a whole run.")
        held = records_by_seed(profile, "pretrain_finetune", variant, root)
        if all(held.get(r["seed"], {}).get("git_commit", "").startswith(commit) for r in runs):
            notes.append("The records shown are the second runs.")
    return " ".join(notes)


def rerun_noise(profile: str, root: Path | None = None) -> str:
    """How often a rerun that differs only by rounding already came out "above" or "below"
    its first run by the book's rule: the floor under any one-seed verdict. Empty without
    recorded reruns."""
    found = _reruns(profile, root)
    if not found:
        return ""
    dev = sum(r["dev, rerun against stored"]["McNemar p"] < ALPHA for r in found)
    bio = sum(r["biography probe, rerun against stored"]["McNemar p"] < ALPHA for r in found)
    runs = f"{len(found)} rerun{'s' if len(found) > 1 else ''}"
    if not dev and not bio:
        return (f"Of {runs} of one configuration that differ from the first run only by "
                "rounding, none came out above or below it, on the dev questions or the "
                "biography probe.")
    return (f"Of {runs} of one configuration that differ from the first run only by rounding, "
            f"{dev} came out above or below it on the dev questions and {bio} on the biography "
            "probe: one seed's \"above\" or \"below\" can come from run-to-run noise alone.")


def pretraining_logs(base: str, seed: int = 0, root: Path | None = None) -> dict[str, list[dict]]:
    """Each arm's pretraining metrics log for one seed, by the arm's label."""
    from lib.report.reading import metrics_log

    out = {}
    for arm in arms(base, root):
        record = _by_seed(arm, "pretrain", root).get(seed)
        if record is not None:
            out[arm.label] = metrics_log(record, root)
    return out
