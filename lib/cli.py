"""Command line: `python -m lib COMMAND ...`, mirroring the classic exercise's workflow.

    python -m lib london
    python -m lib pretrain --variant vanilla --writing-params-path vanilla.pretrain.params
    python -m lib finetune --variant vanilla --reading-params-path vanilla.pretrain.params \\
        --writing-params-path vanilla.finetune.params --finetune-corpus-path birth_places_train.tsv
    python -m lib evaluate --variant vanilla --reading-params-path vanilla.finetune.params \\
        --eval-corpus-path birth_dev.tsv --outputs-path vanilla.pretrain.dev.predictions
    python -m lib run pretrain_finetune --profile cpu --seed 0
    python -m lib experiments --profile smoke
    torchrun --nproc_per_node 2 -m lib pretrain --profile smoke --writing-params-path p.params

Arguments are checked before any work starts; errors are one clear line, exit status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from lib import data as D
from lib.attention import available_variants
from lib.profiles import PROFILES, get_profile


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"seed must be a non-negative integer, got {value}")
    return value


def _existing_file(text: str) -> Path:
    path = Path(text)
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"file {text!r} does not exist")
    return path


def _variant(text: str) -> str:
    if text not in available_variants():
        raise argparse.ArgumentTypeError(
            f"unknown attention variant {text!r}; choose one of {', '.join(available_variants())}")
    return text


def _profile(text: str) -> str:
    try:
        get_profile(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _device(text: str) -> str:
    from lib.pipeline import resolve_device

    try:
        resolve_device(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m lib", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser, variant: bool = True) -> None:
        p.add_argument("--profile", type=_profile, default="full",
                       help=f"hyperparameters and world: {', '.join(PROFILES)}, optionally with "
                            "recipe options such as mini+mixed (default: full, the classic setting)")
        p.add_argument("--seed", type=_seed, default=0)
        p.add_argument("--device", type=_device, default="auto", help="auto, cpu or cuda")
        if variant:
            p.add_argument("--variant", type=_variant, default="vanilla",
                           help="attention variant: " + ", ".join(available_variants()))
        p.add_argument("--no-progress", action="store_true", help="hide progress bars")

    london = sub.add_parser("london", help="always answer London; report dev accuracy")
    london.add_argument("--eval-corpus-path", type=_existing_file, default=None)
    london.add_argument("--outputs-path", type=Path, default=None)

    pre = sub.add_parser("pretrain", help="span-corruption pretraining")
    common(pre)
    pre.add_argument("--pretrain-corpus-path", type=_existing_file, default=None,
                     help="default: wiki.txt of the profile's world")
    pre.add_argument("--writing-params-path", type=Path, required=True)

    fine = sub.add_parser("finetune", help="finetune on questions (optionally from pretrained params)")
    common(fine)
    fine.add_argument("--reading-params-path", type=_existing_file, default=None)
    fine.add_argument("--writing-params-path", type=Path, required=True)
    fine.add_argument("--finetune-corpus-path", type=_existing_file, default=None,
                      help="default: the profile world's train questions")

    ev = sub.add_parser("evaluate", help="greedy answers for a question file")
    common(ev)
    ev.add_argument("--reading-params-path", type=_existing_file, required=True)
    ev.add_argument("--eval-corpus-path", type=_existing_file, required=True)
    ev.add_argument("--outputs-path", type=Path, required=True)

    run = sub.add_parser("run", help="one run of the experiment matrix, with its result record")
    common(run)
    run.add_argument("kind", choices=["london", "pretrain", "finetune", "pretrain_finetune"])
    run.add_argument("--force", action="store_true", help="redo a finished run")

    exp = sub.add_parser("experiments", help="the whole matrix of a profile through papermill")
    exp.add_argument("--profile", type=_profile, required=True)
    exp.add_argument("--seeds", type=_seed, nargs="+", default=None)
    exp.add_argument("--variants", type=_variant, nargs="+", default=["vanilla"])
    exp.add_argument("--device", type=_device, default="auto")
    exp.add_argument("--force", action="store_true")
    exp.add_argument("--render-only", action="store_true",
                     help="never train: render stored notebooks for runs whose records exist")
    return top


def _world_questions(profile_name: str, split: str, path: Path | None) -> list[D.Question]:
    from lib.pipeline import world_for

    if path is not None:
        return D.parse_questions(path)
    data = D.load()
    return getattr(world_for(get_profile(profile_name), data), split)


def _check_variant(params: Path, variant: str) -> None:
    from lib.checkpoint import load_weights

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


def main(argv: list[str] | None = None) -> int:
    from lib.train import TrainingDiverged

    args = parser().parse_args(argv)
    try:
        return _dispatch(args)
    except (ValueError, D.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        # Not a usage error: the message names the step and the checkpoint a rerun resumes from.
        print(f"error: {error}", file=sys.stderr)
        return 1


def _dispatch(args: argparse.Namespace) -> int:
    from lib import pipeline as P
    from lib.checkpoint import load_weights, save_weights
    from lib.evaluate import london_baseline, predict, score, write_predictions
    from lib.model import GPT
    from lib.train import train

    if args.command == "london":
        rows = D.parse_questions(args.eval_corpus_path or D.data_file("dev"))
        preds = london_baseline(rows)
        result = score(preds, rows)
        if args.outputs_path:
            write_predictions(args.outputs_path, preds)
        print(f"London baseline: {result.correct}/{result.total} = {100 * result.accuracy:.1f} %")
        return 0
    if args.command == "experiments":
        from lib.experiments import run_matrix

        run_matrix(args.profile, seeds=args.seeds, variants=args.variants, device=args.device,
                   force=args.force, render_only=args.render_only)
        return 0
    if args.command == "run":
        record = P.run(args.kind, args.profile, args.variant, args.seed, args.device, args.force,
                       progress=not args.no_progress)
        print(P.summary_line(record))
        return 0

    profile = get_profile(args.profile)
    device = P.resolve_device(args.device)
    data = D.load()
    progress = not args.no_progress
    if args.command in ("finetune", "evaluate") and args.reading_params_path is not None:
        _check_variant(args.reading_params_path, args.variant)
    if args.command == "pretrain":
        docs = (D.read_corpus(args.pretrain_corpus_path) if args.pretrain_corpus_path
                else P.world_for(profile, data).corpus)
        dataset = D.SpanCorruptionDataset(docs, data.vocab, profile.block_size)
        cfg, start = profile.pretrain, None
    elif args.command == "finetune":
        rows = _world_questions(args.profile, "train", args.finetune_corpus_path)
        dataset = D.FinetuneDataset(rows, data.vocab, profile.block_size, profile.text_mode,
                                    source=str(args.finetune_corpus_path or "train questions"))
        start = args.reading_params_path
        cfg = profile.finetune_pretrained if start else profile.finetune_scratch
    else:
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

    import torch

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
    result = train(model, dataset, cfg, seed=args.seed, device=device, progress=progress and rank == 0,
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
