"""Command line: `python -m lib COMMAND ...`, mirroring the classic exercise's workflow.

The exercise handout's command lines run unchanged (function and variant as positional
arguments, the corpus after them, underscore flags); a relative data file name that is not
in the current folder is looked up in the data folder:

    python -m lib pretrain vanilla wiki.txt --writing_params_path vanilla.pretrain.params
    python -m lib finetune vanilla wiki.txt --reading_params_path vanilla.pretrain.params \\
        --writing_params_path vanilla.finetune.params --finetune_corpus_path birth_places_train.tsv
    python -m lib evaluate vanilla wiki.txt --reading_params_path vanilla.finetune.params \\
        --eval_corpus_path birth_dev.tsv --outputs_path vanilla.pretrain.dev.predictions

and so do the keyword forms:

    python -m lib london
    python -m lib pretrain --variant vanilla --writing-params-path vanilla.pretrain.params
    python -m lib finetune --variant vanilla --reading-params-path vanilla.pretrain.params \\
        --writing-params-path vanilla.finetune.params --finetune-corpus-path birth_places_train.tsv
    python -m lib evaluate --variant vanilla --reading-params-path vanilla.finetune.params \\
        --eval-corpus-path birth_dev.tsv --outputs-path vanilla.pretrain.dev.predictions
    python -m lib score vanilla.pretrain.dev.predictions --eval_corpus_path birth_dev.tsv
    python -m lib check-data /path/to/birthplaces
    python -m lib run pretrain_finetune --profile cpu --seed 0
    python -m lib experiments --profile smoke
    python -m lib import-runs ~/.cache/book/run-COMMIT --profile cpu32
    torchrun --nproc_per_node 2 -m lib pretrain --profile smoke --writing-params-path p.params

The profile is `full` (the classic setting) unless `--profile` or `$BOOK_PROFILE` names
another. Arguments are checked before any work starts; errors are one clear line, exit
status 2.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path

from lib.core import data as D
from lib.core.attention import available_variants
from lib.runs.matrix import KINDS
from lib.runs.profiles import PROFILES, get_profile


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


def _data_file(text: str) -> Path:
    """A data file as given, else (a relative name) the same name in the data folder.

    So the handout's `wiki.txt` or `birth_dev.tsv` work from any folder once
    `$BIRTHPLACE_DATA` names the folder of the four files.
    """
    path = Path(text)
    if path.is_file():
        return path
    in_data_folder = D.data_dir() / path
    if not path.is_absolute() and in_data_folder.is_file():
        return in_data_folder
    raise argparse.ArgumentTypeError(f"file {text!r} does not exist (nor in the data folder "
                                     f"{D.data_dir()})")


def _variant(text: str) -> str:
    if text not in available_variants():
        raise argparse.ArgumentTypeError(
            f"unknown attention variant {text!r}; choose one of {', '.join(available_variants())}")
    return text


def _checked_by(check: Callable[[str], object]) -> Callable[[str], str]:
    """An argparse type that keeps the text but lets `check` reject it: its ValueError
    becomes argparse's usage error, with the check's own message."""

    def argument(text: str) -> str:
        try:
            check(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text

    return argument


def _resolve_device(text: str) -> object:
    from lib.runs.pipeline import resolve_device  # torch's import waits until a command needs it

    return resolve_device(text)


_profile = _checked_by(get_profile)
_device = _checked_by(_resolve_device)


def _default_profile() -> str:
    """`$BOOK_PROFILE` when set (the tests run the handout's lines at `smoke`), else `full`."""
    return os.environ.get("BOOK_PROFILE") or "full"


def _path_flag(p: argparse.ArgumentParser, name: str, **options) -> None:
    """One option under both spellings: `--eval-corpus-path` and the handout's `--eval_corpus_path`."""
    p.add_argument("--" + name.replace("_", "-"), "--" + name, dest=name, **options)


def _common(p: argparse.ArgumentParser, variant: bool = True) -> None:
    """The options every training or run command shares: profile, seed, device, variant."""
    p.add_argument("--profile", type=_profile, default=_default_profile(),
                   help=f"hyperparameters and world: {', '.join(PROFILES)}, optionally with "
                        "recipe options such as mini+mixed (default: $BOOK_PROFILE, else full, "
                        "the classic setting)")
    p.add_argument("--seed", type=_seed, default=0)
    p.add_argument("--device", type=_device, default="auto", help="auto, cpu or cuda")
    if variant:
        p.add_argument("--variant", type=_variant, default=None,
                       help="attention variant (default vanilla): " + ", ".join(available_variants()))
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def parser() -> argparse.ArgumentParser:
    """The `python -m lib` parser: one subcommand per step of the classic exercise's workflow,
    sharing the profile, seed and device options."""
    top = argparse.ArgumentParser(prog="python -m lib", description=__doc__.split("\n")[0])
    sub = top.add_subparsers(dest="command", required=True)

    def handout_positionals(p: argparse.ArgumentParser, corpus_role: str) -> None:
        p.add_argument("positional_variant", nargs="?", type=_variant, metavar="VARIANT",
                       help="the handout's form of --variant")
        p.add_argument("corpus_path", nargs="?", type=_data_file, metavar="CORPUS",
                       help=f"the handout's wiki.txt: {corpus_role}")

    london = sub.add_parser("london", help="always answer London; report dev accuracy")
    _path_flag(london, "eval_corpus_path", type=_data_file, default=None)
    _path_flag(london, "outputs_path", type=Path, default=None)

    pre = sub.add_parser("pretrain", help="span-corruption pretraining")
    _common(pre)
    handout_positionals(pre, "the pretraining corpus (default: wiki.txt of the profile's world)")
    _path_flag(pre, "pretrain_corpus_path", type=_data_file, default=None,
               help="the pretraining corpus, as CORPUS")
    _path_flag(pre, "writing_params_path", type=Path, required=True)

    fine = sub.add_parser("finetune", help="finetune on questions (optionally from pretrained params)")
    _common(fine)
    handout_positionals(fine, "checked to have the data folder's vocabulary")
    _path_flag(fine, "reading_params_path", type=_existing_file, default=None,
               help="pretrained weights to start from (default: train from scratch)")
    _path_flag(fine, "writing_params_path", type=Path, required=True)
    _path_flag(fine, "finetune_corpus_path", type=_data_file, default=None,
               help="default: the profile world's train questions")

    ev = sub.add_parser("evaluate", help="greedy answers for a question file")
    _common(ev)
    handout_positionals(ev, "checked to have the data folder's vocabulary")
    _path_flag(ev, "reading_params_path", type=_existing_file, required=True)
    _path_flag(ev, "eval_corpus_path", type=_data_file, required=True)
    _path_flag(ev, "outputs_path", type=Path, required=True)

    sc = sub.add_parser("score", help="accuracy of a predictions file, scored as the book scores its runs")
    sc.add_argument("predictions_path", type=_existing_file, metavar="PREDICTIONS",
                    help="one answer per line, in the order of the questions")
    _path_flag(sc, "eval_corpus_path", type=_data_file, default=None,
               help="labelled questions (default: the data folder's birth_dev.tsv)")

    check = sub.add_parser("check-data", help="compare a folder's four data files with the reference copies")
    check.add_argument("folder", nargs="?", type=Path, default=None,
                       help="default: $BIRTHPLACE_DATA, else data/")

    _book_commands(sub)
    return top


def _book_commands(sub) -> None:
    """The commands beyond the handout's workflow: the book's runs, their matrix and their
    import from a worktree."""
    run = sub.add_parser("run", help="one run of the experiment matrix, with its result record")
    _common(run)
    run.add_argument("kind", choices=KINDS)
    run.add_argument("--force", action="store_true", help="redo a finished run")

    unread = sub.add_parser("probe-unread", help="add the never-read people's probe to a finished "
                            "pretraining's record (runs made before pretraining did it)")
    _common(unread)

    imp = sub.add_parser("import-runs", help="copy the finished runs of a profile from another "
                         "copy of the repository (a worktree where long runs train)")
    imp.add_argument("source", type=Path, help="that copy's folder (its results/ is read)")
    imp.add_argument("--profile", type=_profile, required=True)
    imp.add_argument("--no-render", action="store_true",
                     help="do not render the copied runs' stored notebooks")

    exp = sub.add_parser("experiments", help="the whole matrix of a profile through papermill")
    exp.add_argument("--profile", type=_profile, required=True)
    exp.add_argument("--seeds", type=_seed, nargs="+", default=None)
    exp.add_argument("--variants", type=_variant, nargs="+", default=None,
                     help="attention variants (default vanilla; with --rerender, every variant "
                     "the profile has records of)")
    exp.add_argument("--device", type=_device, default="auto")
    how = exp.add_mutually_exclusive_group()
    how.add_argument("--force", action="store_true", help="run again even where records exist")
    how.add_argument("--render-only", action="store_true",
                     help="never train: render stored notebooks for runs whose records exist")
    how.add_argument("--rerender", action="store_true",
                     help="never train: render every run with a record again, replacing its "
                     "stored notebook (after a template change)")


def _reconcile_handout_forms(args: argparse.Namespace) -> str | None:
    """Merge the handout's positional variant and corpus into the keyword options.

    Returns a usage error when the two forms disagree, else None.
    """
    positional = getattr(args, "positional_variant", None)
    if hasattr(args, "variant"):
        if positional is not None and args.variant is not None and positional != args.variant:
            return f"the variant is given twice and differs: {positional} and --variant {args.variant}"
        args.variant = positional or args.variant or "vanilla"
    corpus = getattr(args, "corpus_path", None)
    if args.command == "pretrain" and corpus is not None:
        given = args.pretrain_corpus_path
        if given is not None and given.resolve() != corpus.resolve():
            return f"the pretraining corpus is given twice and differs: {corpus} and {given}"
        args.pretrain_corpus_path = corpus
    return None


def main(argv: list[str] | None = None) -> int:
    """Run one command and return its exit status: 2, with the reason and no traceback, for
    bad input or damaged data; 1 when training diverged (the message names the checkpoint) or
    another process is training the same run."""
    from lib.cli.commands import dispatch
    from lib.core.exclusive import RunBusyError
    from lib.core.train.loop import TrainingDiverged

    if os.environ.get("BOOK_PROFILE") and os.environ["BOOK_PROFILE"] not in PROFILES:
        print(f"error: BOOK_PROFILE={os.environ['BOOK_PROFILE']!r} is not a profile; choose one of "
              f"{', '.join(sorted(PROFILES))}", file=sys.stderr)
        return 2
    args = parser().parse_args(argv)
    problem = _reconcile_handout_forms(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        return dispatch(args)
    except (ValueError, D.DataError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (TrainingDiverged, RunBusyError) as error:
        # Not usage errors: the message names the checkpoint a rerun resumes from, or the
        # process that holds the run.
        print(f"error: {error}", file=sys.stderr)
        return 1
