"""The findings sentences, each derived from the numbers by the rule of `lib.report.stats`:
exact rates, paired tests seed by seed, and what they support.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from lib.report.analysis import cross_table, probe_table, stored_vs_extracted
from lib.report.choice import pending_runs
from lib.report.formatting import counted, listing, percent
from lib.report.reading import details, dev_outcomes, is_whole_data, load_data, runs_of
from lib.report.results import KIND_WORDS, PROBES, probe_count
from lib.report.stats import Paired, exact_rate, fisher, format_p, mcnemar
from lib.runs.records import load_records


def london_counts(records: list[dict]) -> tuple[int, int] | None:
    """The London baseline's (correct, total) on dev, None without a London record."""
    london = next((r for r in records if r["kind"] == "london"), None)
    return None if london is None else (london["metrics"]["dev"]["correct"],
                                        london["metrics"]["dev"]["total"])


def rate_text(pair: tuple[int, int]) -> str:
    """'hits/n = rate', the count first, so a reader sees how many people a rate rests on."""
    hits, n = pair
    return f"{hits}/{n} = {percent(hits / n if n else float('nan'))}"


def probes_asked(record: dict | None, root: Path | None = None) -> dict[str, pd.DataFrame]:
    """Per probe (`bio`, `name`), the people it asked, in the probe file's order: `name`,
    whether the completion started with the person's own place (`hit`) and with the
    control's (`control`). The pretraining details file is read once for both. (The
    biography probe asks only people whose place is written inside the window.)"""
    table = probe_table(details(record, root).get("probe", [])) if record is not None else None
    if table is None or table.empty:
        return {probe: pd.DataFrame({"name": [], "hit": [], "control": []}) for probe in PROBES}
    out = {}
    for probe in PROBES:
        asked = table[table[f"{probe}_probe"].notna()]
        out[probe] = pd.DataFrame({"name": list(asked["name"]),
                                   "hit": [bool(x) for x in asked[f"{probe}_probe"]],
                                   "control": [bool(x) for x in asked[f"{probe}_control"]]})
    return out


def probe_asked(record: dict | None, probe: str, root: Path | None = None) -> pd.DataFrame:
    """The people one probe asked (see `probes_asked`)."""
    return probes_asked(record, root)[probe]


def probe_outcomes(record: dict, probe: str, root: Path | None = None) -> tuple[list[bool], list[bool]]:
    """Per person a probe asked: own place found, control's place found (see `probe_asked`)."""
    asked = probe_asked(record, probe, root)
    return list(asked["hit"]), list(asked["control"])


def paired_text(test: Paired, other: str) -> str:
    """'above London (12 vs 3 people, McNemar p = 0.035)'."""
    return (f"{test.relation} {other} ({test.only_a} vs {test.only_b} people, "
            f"McNemar {format_p(test.p_value)})")


def _across(verdicts: list[str], word: str = "above") -> str:
    """How many seeds gave the verdict `word`: '2 of 3 seeds', '0 of 1 seed'."""
    n, k = len(verdicts), sum(v == word for v in verdicts)
    return f"{k} of {counted(n, 'seed')}"


def _probe_finding(pre: dict[int, dict], root: Path | None) -> tuple[str, bool]:
    """The probes after pretraining, seed by seed, and whether every seed shows stored facts."""
    parts, seed_stored = [], []
    unread_everywhere = all("probe_unread" in r["metrics"] for r in pre.values())
    for seed, record in pre.items():
        said, any_above = [], False
        unread = record["metrics"].get("probe_unread")
        for probe, label in (("name", "the name probe"), ("bio", "the biography probe")):
            own, control = probe_outcomes(record, probe, root)
            if not own:
                continue
            test = mcnemar(own, control)
            above = test.verdict == "above"
            text = (f"{label} completes the own birthplace of "
                    f"{exact_rate(sum(own), len(own)).text()} people and the control's "
                    f"place of {sum(control)}, " + paired_text(test, "the control"))
            if unread is not None:
                hits, n = probe_count(unread, probe)
                versus = fisher(sum(own), len(own), hits, n)
                above = above and versus.verdict == "above"
                text += (f"; on people it never read it finds {hits}/{n}, and the people it "
                         f"read are {versus.relation} them (Fisher {format_p(versus.p_value)})")
            any_above = any_above or above
            said.append(text)
        seed_stored.append("above" if any_above else "not")
        parts.append(f"seed {seed}: " + "; ".join(said))
    stored = all(v == "above" for v in seed_stored)
    verdict = ("so the pretrained model has stored birthplaces" if stored else
               "so these numbers do not show stored facts in every seed")
    beyond = (" and than on people it never read (what it can guess from a name or a "
              "biography's opening)" if unread_everywhere else "")
    return ("Knowledge probes after pretraining, seed by seed (every seed asks the "
            "same people): " + " ".join(p + "." for p in parts)
            + f" A probe finds the own place more often than the control's{beyond} "
            f"in {_across(seed_stored)}, {verdict}."), stored


def _finetune_finding(ft_right: dict[int, list[bool]], london_right: list[bool] | None) -> str:
    parts, verdicts = [], []
    for seed, right in ft_right.items():
        text = f"seed {seed}: {exact_rate(sum(right), len(right)).text()}"
        if london_right is not None:
            test = mcnemar(right, london_right)
            verdicts.append(test.verdict)
            text += ", " + paired_text(test, "London")
        parts.append(text)
    summary = "" if not verdicts else f" Above the London baseline in {_across(verdicts)}."
    return "Finetuning without pretraining answers " + "; ".join(parts) + "." + summary


def _pretrain_finetune_finding(pf: dict[int, dict], ft_right: dict[int, list[bool]],
                               london_right: list[bool] | None,
                               root: Path | None) -> tuple[str, dict[str, list[str]]]:
    """Pretrain + finetune against London and finetuning alone, seed by seed, and the
    per-seed verdicts against each ('london', 'finetune'; 'not' where a comparison is
    missing or not above)."""
    parts = []
    verdicts: dict[str, list[str]] = {"london": [], "finetune": []}
    for seed, record in pf.items():
        right = dev_outcomes(record, root)
        text = f"seed {seed}: {exact_rate(sum(right), len(right)).text()}"
        versus = {"london": "not", "finetune": "not"}
        if london_right is not None:
            test = mcnemar(right, london_right)
            versus["london"] = test.verdict
            text += ", " + paired_text(test, "London")
        if seed in ft_right:
            test = mcnemar(right, ft_right[seed])
            versus["finetune"] = test.verdict
            text += ", " + paired_text(test, "finetuning alone (same seed)")
        for other, verdict in versus.items():
            verdicts[other].append("above" if verdict == "above" else "not")
        parts.append(text)
    return ("Pretraining, then finetuning answers " + "; ".join(parts) + ". "
            + f"Above both the London baseline and finetuning alone in "
            f"{_across(_above_both(verdicts))}."), verdicts


def _above_both(versus: dict[str, list[str]]) -> list[str]:
    """Per seed: 'above' where pretrain + finetune is above London and finetuning alone."""
    return ["above" if pair == ("above", "above") else "not"
            for pair in zip(versus["london"], versus["finetune"], strict=True)]


def snapshot_growth(pretrain_finetune: list[dict], pretrain: dict[str, dict]) -> str | None:
    """How the answers grew with pretraining, seed by seed: dev questions answered after
    finetuning each snapshot (with the biography probe at the same snapshot when its
    pretraining record is given, keyed by run id), what the last interval added, and in how
    many seeds the answers were still rising when pretraining stopped. Snapshots keep counts,
    not per-person answers, so no paired test: "still rising" asks for the last snapshot's
    exact interval to lie wholly above the one before (conservative for the same people).
    None when no run has two snapshots."""
    parts, last_gains, still_rising, seeds = [], [], [], []
    for run in pretrain_finetune:
        snaps = sorted(run["metrics"].get("snapshots", []), key=lambda s: s["step"])
        if len(snaps) < 2:
            continue
        text = (f"seed {run['seed']}: {listing([str(s['dev']['correct']) for s in snaps])} of "
                f"{snaps[-1]['dev']['total']} after "
                f"{listing([str(s['epoch']) for s in snaps])} epochs")
        source = pretrain.get(run.get("pretrain_run", ""))
        probes = {s["step"]: s["probe"] for s in (source or {}).get("metrics", {})
                  .get("snapshots", []) if "probe" in s}
        if all(s["step"] in probes for s in snaps):
            counts = [probe_count(probes[s["step"]], "bio") for s in snaps]
            text += (f" (the biography probe at the same snapshots: "
                     f"{listing([str(found) for found, _ in counts])} of {counts[-1][1]})")
        before, last = (exact_rate(s["dev"]["correct"], s["dev"]["total"]) for s in snaps[-2:])
        gain = last.k - before.k
        last_gains.append(f"{gain:+d} in seed {run['seed']} (epochs {snaps[-2]['epoch']} to "
                          f"{snaps[-1]['epoch']})")
        still_rising.append("rising" if last.low > before.high else "not")
        seeds.append(run["seed"])
        parts.append(text)
    if not parts:
        return None
    rising, n = sum(v == "rising" for v in still_rising), len(still_rising)
    interval = "the last snapshot's exact 95 % interval"
    if rising == n:
        verdict = (f"in {'every seed' if n > 1 else f'seed {seeds[0]}'} "
                   f"{interval} lies wholly above the one before, so when pretraining stopped "
                   "the answers were still rising, and the runs do not show that its length was "
                   "enough; whether longer pretraining would add more is not measured here.")
    elif rising == 0:
        verdict = ((f"in no seed does {interval} lie" if n > 1 else
                    f"in seed {seeds[0]} {interval} does not lie")
                   + " wholly above the one before, so these snapshots show no clear rise at "
                   "the end of pretraining.")
    else:
        verdict = (f"in {rising} of {counted(n, 'seed')} {interval} lies wholly above the one before "
                   "(still rising); in the "
                   + ("other" if n - rising == 1 else f"other {n - rising}")
                   + " these snapshots show no clear rise at the end.")
    return ("Dev questions answered after finetuning each pretraining snapshot, "
            + "; ".join(parts) + f". The last interval changed the count by {listing(last_gains)}; "
            + verdict)


def _summary(versus: dict[str, list[str]], london_measured: bool) -> str:
    """The closing sentence once the probes show stored facts: what pretrain + finetune's
    per-seed verdicts (`_pretrain_finetune_finding`) support about extracting them."""
    if all(v == "above" for v in _above_both(versus)):
        return ("So under this profile pretraining stores facts and question finetuning "
                "extracts them: the model answers questions about people it was never asked "
                "about during finetuning.")
    if london_measured and all(v == "above" for v in versus["finetune"]):
        # Pretraining helps the answers in every seed, yet not enough to beat always
        # answering London in every seed: say both halves, and claim neither direction.
        return ("So, measured so far under this profile: pretraining stores facts (the probes "
                "find them) and helps the answers: pretrain + finetune is above finetuning "
                f"alone in {_across(versus['finetune'])}. But it is above the London baseline "
                f"in {_across(versus['london'])}, so these numbers do not show question "
                "finetuning extracting the stored facts well enough to beat always answering "
                "London in every seed; they do not show that it cannot either.")
    return ("So, measured so far under this profile: pretraining stores facts (the probes find "
            "them), but these numbers do not show question finetuning extracting them in every "
            "seed; they do not show that it cannot either.")


def findings(profile: str, root: Path | None = None, variant: str = "vanilla") -> dict[str, str]:
    """What a profile's records support, as sentences whose every number comes from them.

    Keys (present when their runs exist): probe, london, finetune, pretrain_finetune,
    summary, pending. Comparisons are paired on the same people and made seed by seed
    (`lib.report.stats.mcnemar`, the rule `lib.report.stats.ALPHA`); a claim across seeds is made only
    when every seed supports it, and otherwise the text says how many did.
    """
    records = load_records(profile, root)

    def of(kind: str) -> dict[int, dict]:
        return {r["seed"]: r for r in runs_of(records, kind, variant)}

    pre, pf, ft = of("pretrain"), of("pretrain_finetune"), of("finetune")
    london = next((r for r in records if r["kind"] == "london"), None)
    london_right = dev_outcomes(london, root) if london else None
    out: dict[str, str] = {}
    stored, versus = None, None
    if pre:
        out["probe"], stored = _probe_finding(pre, root)
    if london is not None:
        out["london"] = (f"The London baseline answers "
                         f"{exact_rate(sum(london_right), len(london_right)).text()} dev questions.")
    ft_right = {seed: dev_outcomes(record, root) for seed, record in ft.items()}
    if ft:
        out["finetune"] = _finetune_finding(ft_right, london_right)
    if pf:
        out["pretrain_finetune"], versus = _pretrain_finetune_finding(pf, ft_right, london_right,
                                                                      root)
    if stored and versus is not None:
        out["summary"] = _summary(versus, london_measured=london is not None)
    if not is_whole_data(profile, root):
        out["pending"] = ("These are mini-world numbers. The exercise's questions are about the "
                          "whole data (`full`, and on a CPU `cpu32-classic` and `cpu32`); the "
                          "results page shows whatever whole-data runs have finished, and these "
                          "pages switch "
                          "to a whole-data profile once it holds London, finetuning alone for "
                          "every seed, and pretraining with its pretrain + finetune for one seed.")
    elif variant == "vanilla" and (waiting := pending_text(profile, root)):
        out["pending"] = waiting
    return out


def pending_text(profile: str, root: Path | None = None) -> str | None:
    """Which of the profile's vanilla runs have not finished, kind by kind, so a page read
    before every seed is in says which seeds its numbers rest on; None when all are in."""
    seeds: dict[str, list[int]] = {}
    for run in pending_runs(profile, root):
        seeds.setdefault(run.kind, []).append(run.seed)
    if not seeds:
        return None
    kinds: dict[tuple[int, ...], list[str]] = {}  # kinds waiting for the same seeds go together
    for kind, waiting in seeds.items():
        kinds.setdefault(tuple(waiting), []).append(KIND_WORDS[kind])
    parts = [f"{listing(words)} for seed{'s' if len(s) > 1 else ''} {listing([str(x) for x in s])}"
             for s, words in kinds.items()]
    return (f"Not finished yet under this profile: {'; '.join(parts)}. The numbers here rest on "
            "the seeds that have finished; the others join these pages when their runs do.")


def runs_table(records: list[dict]) -> pd.DataFrame:
    """One row per run (seed): its headline numbers, for the per-configuration chapters."""
    rows = []
    for r in sorted(records, key=lambda r: (r["variant"], r["seed"])):
        m = r["metrics"]
        row = {"run": r["run_id"], "seed": r["seed"], "profile": r["profile"]}
        if "dev" in m:
            row["dev right"] = f"{m['dev']['correct']}/{m['dev']['total']}"
            row["dev accuracy"] = percent(m["dev"]["accuracy"])
        if "train" in m:
            row["train accuracy"] = percent(m["train"]["accuracy"])
        if "probe" in m:
            for probe, label in (("name", "name probe"), ("bio", "biography probe")):
                own, asked = probe_count(m["probe"], probe)
                control, _ = probe_count(m["probe"], probe, "control")
                row[f"{label} (own / control)"] = f"{own} / {control} of {asked}"
            if "probe_unread" in m:
                (name, name_n), (bio, bio_n) = (probe_count(m["probe_unread"], probe)
                                                for probe in ("name", "bio"))
                row["never-read people (name / biography)"] = f"{name}/{name_n} / {bio}/{bio_n}"
        if "final_loss" in m:
            row["final loss"] = f"{m['final_loss']:.4f}"  # a string: the Styler would print 6 digits
            row["steps"] = m["steps"]
        rows.append(row)
    return pd.DataFrame(rows)


def stored_vs_answered(pretrain: dict, finetuned: dict, root: Path | None = None) -> pd.DataFrame:
    """Counts of dev people: did either probe of the pretrained model complete the person's
    own place (stored), and did the model finetuned from it answer the question (extracted)?
    The essays' per-person table (`analysis.stored_vs_extracted`), counted."""
    per_person = stored_vs_extracted(details(pretrain, root).get("probe", []),
                                     details(finetuned, root).get("dev", []))
    return cross_table(per_person)


def answers_from_train(record: dict, root: Path | None = None) -> pd.DataFrame:
    """For dev questions and invented people: the share of answers that are one of the train
    questions' places (answers learned as a list, whoever is asked about)."""
    from lib.runs.profiles import get_profile, world_for

    world = world_for(get_profile(record["profile"]), load_data())
    places = {q.place for q in world.train}
    d = details(record, root)
    rows = []
    for split, label in (("dev", "dev questions"), ("strangers", "invented people")):
        answers = [row["prediction"] for row in d.get(split, [])]
        hits = sum(a in places for a in answers)
        share = hits / len(answers) if answers else float("nan")
        rows.append({"questions": label, "answers": len(answers),
                     "answer is a train place": f"{hits} = {percent(share)}",
                     "distinct answers": len(set(answers))})
    return pd.DataFrame(rows)
