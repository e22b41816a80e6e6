"""What each command of `python -m lib` does, once `lib.cli` has parsed and checked it."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lib.core import data as D
from lib.core import datasets as DS
from lib.runs.profiles import get_profile, world_for


def _world_questions(profile_name: str, split: str, path: Path | None) -> list[D.Question]:
    from lib.runs.profiles import world_for

    if path is not None:
        return D.parse_questions(path)
    data = D.load()
    return getattr(world_for(get_profile(profile_name), data), split)


def _check_variant(params: Path, variant: str) -> None:
    from lib.core.checkpoint import load_weights

    stored = load_weights(params)[1]["config"]["attention"]
    if stored != variant:
        raise ValueError(f"{params} holds a {stored!r} model, not {variant!r}; pass --variant {stored}")


def _init_distributed(device) -> tuple[int, int]:
    """Join the process group when launched by torchrun (NCCL on GPUs, gloo on CPUs)."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return 1, 0
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return dist.get_world_size(), dist.get_rank()


def _check_vocabulary(corpus: Path, vocab: D.Vocabulary) -> None:
    """Every model here uses the vocabulary of the data folder's wiki.txt; the handout passes the
    corpus to finetune and evaluate to build it, so a corpus with other characters is refused."""
    if D.Vocabulary(D.read_corpus(corpus)).itos != vocab.itos:
        raise ValueError(f"{corpus} has other characters than the data folder's wiki.txt "
                         f"({D.data_dir()}), whose vocabulary every model here uses")


def _check_data(folder: Path | None) -> int:
    """Print one line per data file (ok, DIFFERS or MISSING); status 1 when any is not ok."""
    folder = D.data_dir(folder)
    checks = D.check_folder(folder)
    for check in checks:
        print(f"{check.status:<8} {check.name}{': ' + check.detail if check.detail else ''}")
    bad = [c.name for c in checks if c.status != "ok"]
    if bad:
        print(f"{len(bad)} of {len(checks)} files in {folder} are not the reference copies "
              f"({', '.join(bad)}); results from them are not comparable with the book's")
        return 1
    print(f"all {len(checks)} files in {folder} match the reference copies")
    return 0


def _london(args: argparse.Namespace) -> int:
    from lib.core.evaluate import london_baseline, score, write_predictions

    rows = D.parse_questions(args.eval_corpus_path or D.data_file("dev"))
    preds = london_baseline(rows)
    result = score(preds, rows)
    if args.outputs_path:
        write_predictions(args.outputs_path, preds)
    print(f"London baseline: {result.correct}/{result.total} = {100 * result.accuracy:.1f} %")
    return 0


def _score(args: argparse.Namespace) -> int:
    from lib.core.evaluate import score_file

    result = score_file(args.predictions_path, args.eval_corpus_path or D.data_file("dev"))
    print(f"Correct: {result.correct} out of {result.total}: {100 * result.accuracy:.2f}%")
    return 0


def _experiments(args: argparse.Namespace) -> int:
    from lib.runs.experiments import run_matrix
    from lib.runs.records import recorded_variants

    variants = args.variants
    if variants is None:
        # Re-rendering covers every variant on record; training defaults to vanilla.
        on_record = recorded_variants(args.profile) if args.rerender else []
        variants = on_record or ["vanilla"]
    run_matrix(args.profile, seeds=args.seeds, variants=variants, device=args.device,
               force=args.force, render_only=args.render_only, rerender=args.rerender)
    return 0


def _import_runs(args: argparse.Namespace) -> int:
    from lib.runs.experiments import run_matrix
    from lib.runs.transfer import describe, import_runs

    try:
        transfer = import_runs(args.source / "results", args.profile)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(describe(transfer, args.profile))
    if transfer.copied and not args.no_render:
        variants = sorted(transfer.copied_variants - {"none"}) or ["vanilla"]
        run_matrix(args.profile, variants=variants, render_only=True, only=transfer.copied)
    return 1 if transfer.conflicting or transfer.incomplete else 0


def _probe_unread(args: argparse.Namespace) -> int:
    from lib.runs import pipeline as P

    try:
        record = P.add_unread_probe(args.profile, args.variant or "vanilla", args.seed, args.device)
    except (FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    u = record["metrics"]["probe_unread"]
    print(f"{record['profile']} {record['run_id']}: never-read people, name probe "
          f"{u['name_gold_correct']}/{u['name_gold_total']}, biography probe "
          f"{u['bio_gold_correct']}/{u['bio_gold_total']}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from lib.runs import pipeline as P

    record = P.run(args.kind, args.profile, args.variant, args.seed, args.device, args.force,
                   progress=not args.no_progress)
    print(P.summary_line(record))
    return 0


def _evaluate(args: argparse.Namespace, profile, device, data: D.BirthplaceData) -> int:
    """The handout's `evaluate`: answer a question file with saved weights (scored if labelled)."""
    from lib.core.evaluate import predict, score, write_predictions
    from lib.runs import pipeline as P

    model = P.load_model(args.reading_params_path, device)
    labelled = "\t" in D.read_lines(args.eval_corpus_path)[0]
    rows = D.parse_questions(args.eval_corpus_path, labelled=labelled)
    preds = predict(model, rows, data.vocab, profile.text_mode, device,
                    source=str(args.eval_corpus_path))
    write_predictions(args.outputs_path, preds.places)
    if labelled:
        result = score(preds.places, rows)
        print(f"Correct: {result.correct} out of {result.total}: {100 * result.accuracy:.2f}%")
    else:
        print(f"wrote {len(rows)} predictions to {args.outputs_path} (no answers to score)")
    return 0


def _train(args: argparse.Namespace, profile, device, data: D.BirthplaceData) -> int:
    """The handout's `pretrain` and `finetune`: train and save weights (under torchrun too)."""
    import torch

    from lib.core.checkpoint import load_weights, save_weights
    from lib.core.model import GPT
    from lib.core.train.loop import train
    from lib.runs import pipeline as P

    if args.command == "pretrain":
        docs = (D.read_corpus(args.pretrain_corpus_path) if args.pretrain_corpus_path
                else world_for(profile, data).corpus)
        dataset = DS.SpanCorruptionDataset(docs, data.vocab, profile.block_size)
        cfg, start = profile.pretrain, None
    else:
        rows = _world_questions(args.profile, "train", args.finetune_corpus_path)
        dataset = DS.FinetuneDataset(rows, data.vocab, profile.block_size, profile.text_mode,
                                    source=str(args.finetune_corpus_path or "train questions"))
        start = args.reading_params_path
        cfg = profile.finetune_pretrained if start else profile.finetune_scratch
    world, rank = _init_distributed(device)
    if world > 1 and device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    torch.manual_seed(args.seed)
    model = GPT(P.model_config(profile, len(data.vocab), args.variant))
    if start is not None:
        model.load_state_dict(load_weights(start)[0])
    out = args.writing_params_path
    started = time.time()
    result = train(model, dataset, cfg, seed=args.seed, device=device,
                   progress=not args.no_progress and rank == 0,
                   state_path=out.with_name(out.name + ".state"),
                   log_path=out.with_name(out.name + ".metrics.jsonl"),
                   description=f"{args.command} {args.variant}")
    if rank != 0:
        return 0
    save_weights(out, model, {"config": model.config.to_dict(), "profile": profile.name,
                              "seed": args.seed, "command": args.command, "world_size": world})
    print(f"{args.command}: {result.steps} steps, final loss {result.final_loss:.4f}, "
          f"{time.time() - started:.0f} s; weights in {out}")
    return 0


# Commands that need no model of their own; the others load the data and a profile first.
_SIMPLE = {"london": _london, "score": _score, "experiments": _experiments,
           "import-runs": _import_runs,
           "probe-unread": _probe_unread, "run": _run,
           "check-data": lambda args: _check_data(args.folder)}


def dispatch(args: argparse.Namespace) -> int:
    """Run the parsed command; its exit status."""
    from lib.runs import pipeline as P

    if args.command in _SIMPLE:
        return _SIMPLE[args.command](args)
    profile = get_profile(args.profile)
    device = P.resolve_device(args.device)
    data = D.load()
    if args.command in ("finetune", "evaluate") and args.corpus_path is not None:
        _check_vocabulary(args.corpus_path, data.vocab)
    if args.command in ("finetune", "evaluate") and args.reading_params_path is not None:
        _check_variant(args.reading_params_path, args.variant)
    if args.command == "evaluate":
        return _evaluate(args, profile, device, data)
    return _train(args, profile, device, data)
