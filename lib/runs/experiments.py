"""The experiment matrix, run through papermill: one stored notebook and one record per run.

Each run of a profile's matrix (London baseline; per seed and variant: pretraining with
its knowledge probe, pretrain then finetune, finetune without pretraining) executes a
parameterised template from `notebooks/` into `book/runs/<profile>/<run-id>.ipynb`. The
notebook calls `lib.runs.pipeline`, which writes the result record under `results/<profile>/`.
A run whose record and stored notebook both exist is skipped unless forced, so an
interrupted matrix resumes where it stopped (and the pipeline resumes an interrupted
training from its last checkpoint). Records written by `make gpu-run` (no Jupyter there)
are rendered into stored notebooks later with `render_only`, which never trains. After a
template changes, `rerender` renders every run with a record again, and `template_drift`
says which stored notebooks no longer hold their template's cells.
"""

from __future__ import annotations

import os
import tempfile
import time
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from lib.runs.matrix import Run, matrix, run_id
from lib.runs.profiles import PROFILES, get_profile
from lib.runs.records import REPO_ROOT, read_record, record_path

if TYPE_CHECKING:
    import nbformat

# Stored notebooks show tqdm's text bar (a widget bar would not survive storage), so the
# hint that ipywidgets is missing is noise here.
warnings.filterwarnings("ignore", message="IProgress not found")

TEMPLATES_DIR = REPO_ROOT / "notebooks"
# Which template runs which kind of run.
TEMPLATES = {"london": "evaluate", "pretrain": "pretrain", "finetune": "finetune",
             "pretrain_finetune": "finetune"}
TITLES = {"london": "London baseline", "pretrain": "Pretraining",
          "finetune": "Finetuning without pretraining", "pretrain_finetune": "Pretrain, then finetune"}


class ParameterError(ValueError):
    """A notebook or matrix parameter is invalid; the message names it and the valid choices."""


class MatrixError(RuntimeError):
    """A notebook of the matrix failed; the message says which and where its output went."""


def runs_root() -> Path:
    """Where stored notebooks go: `$BOOK_RUNS` if set (tests), else book/runs/."""
    return Path(os.environ.get("BOOK_RUNS", REPO_ROOT / "book" / "runs"))


def stored_notebook(profile: str, rid: str) -> Path:
    """Where a run's executed notebook is kept for the book (book/runs/PROFILE/RUN.ipynb)."""
    return runs_root() / profile / f"{rid}.ipynb"


@dataclass(frozen=True)
class RunSpec:
    """One validated run: what a notebook's first cell establishes before any work starts."""

    kind: str
    profile: str
    variant: str
    seed: int
    device: str
    force: bool = False
    render_only: bool = False

    @property
    def run_id(self) -> str:
        return run_id(self.kind, self.variant, self.seed)

    @property
    def record_path(self) -> Path:
        return record_path(self.profile, self.run_id)

    def describe(self) -> str:
        """One line for the notebook: which run, where its record goes, on which device."""
        from lib.runs.pipeline import resolve_device

        what = "render the existing record" if self.render_only else (
            "run again" if self.force else "run unless its record exists")
        return (f"run {self.run_id} (kind {self.kind}, profile {self.profile}, variant "
                f"{self.variant}, seed {self.seed}) on {resolve_device(self.device)}: {what}; "
                f"record {_shown(self.record_path)}")


def _shown(path: Path) -> str:
    """A path as the book may print it: relative to the repository when inside it."""
    try:
        return path.resolve().relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return str(path)


def _check(condition: bool, name: str, value, why: str) -> None:
    if not condition:
        raise ParameterError(f"invalid parameter {name}={value!r}: {why}")


def _known_profile(name: str) -> bool:
    try:
        get_profile(name)
    except ValueError:
        return False
    return True


def validate_parameters(template: str, *, profile: str, variant: str = "vanilla", seed: int = 0,
                        device: str = "auto", pretrained: bool = False, kind: str = "london",
                        force: bool = False, render_only: bool = False, results_dir: str = "",
                        checkpoints_dir: str = "") -> RunSpec:
    """Check a template's parameters and say clearly what is wrong; return the run they describe.

    `pretrained` only matters for the finetune template, `kind` only for the evaluate one
    (the London baseline, or an existing finetuned run to evaluate).
    """
    from lib.core.attention import available_variants
    from lib.runs.pipeline import resolve_device

    _check(template in set(TEMPLATES.values()), "template", template,
           f"choose one of {', '.join(sorted(set(TEMPLATES.values())))}")
    _check(isinstance(profile, str) and _known_profile(profile), "profile", profile,
           f"choose one of {', '.join(PROFILES)}")
    _check(isinstance(variant, str) and variant in available_variants(), "variant", variant,
           f"choose one of {', '.join(available_variants())}")
    _check(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0, "seed", seed,
           "a seed is a non-negative integer")
    for name, value in (("pretrained", pretrained), ("force", force), ("render_only", render_only)):
        _check(isinstance(value, bool), name, value, "use True or False")
    _check(not (force and render_only), "render_only", render_only,
           "render_only never trains, so it cannot be combined with force=True")
    for name, value in (("results_dir", results_dir), ("checkpoints_dir", checkpoints_dir)):
        _check(isinstance(value, str | os.PathLike), name, value,
               "a folder path, or an empty string for the default")
    _check(isinstance(device, str), "device", device, "use auto, cpu or cuda")
    try:
        resolve_device(device)
    except ValueError as error:
        raise ParameterError(f"invalid parameter device={device!r}: {error}") from None
    if template == "pretrain":
        kind = "pretrain"
    elif template == "finetune":
        kind = "pretrain_finetune" if pretrained else "finetune"
    else:
        _check(kind in ("london", "finetune", "pretrain_finetune"), "kind", kind,
               "the evaluate notebook takes london, finetune or pretrain_finetune")
        if kind == "london":
            variant, seed = "vanilla", 0
        else:
            # The evaluate notebook reads a finetuned run; training one is the finetune notebook's job.
            _check(not force, "force", force, "the evaluate notebook only reads finetuned runs; "
                   "retrain them with the finetune notebook")
            render_only = True
    return RunSpec(kind, profile, variant, seed, device, force, render_only)


def use_output_dirs(results_dir: str = "", checkpoints_dir: str = "") -> None:
    """Point `lib` at other output folders for this process (empty: keep the defaults)."""
    if results_dir:
        os.environ["BOOK_RESULTS"] = str(results_dir)
    if checkpoints_dir:
        os.environ["BOOK_CHECKPOINTS"] = str(checkpoints_dir)


def prepare_run(template: str, **parameters) -> RunSpec:
    """A notebook's first cell: validate every parameter, then apply the output folders."""
    spec = validate_parameters(template, **parameters)
    use_output_dirs(parameters.get("results_dir", ""), parameters.get("checkpoints_dir", ""))
    return spec


def run_or_load(spec: RunSpec, progress: bool = True) -> dict:
    """The run's record: read when it exists (unless forced), else produced by `lib.runs.pipeline`.

    Reading it first means a record from another machine (a GPU run) is rendered as it is,
    even where its weights did not travel. With `render_only` a missing record is an error.
    """
    if spec.record_path.exists() and not spec.force:
        return read_record(spec.record_path)
    if spec.render_only:
        raise FileNotFoundError(
            f"no record {_shown(spec.record_path)} to render; produce it first with "
            f"`make experiments PROFILE={spec.profile}` or `make gpu-run`")
    from lib.runs.pipeline import run

    return run(spec.kind, spec.profile, spec.variant, spec.seed, spec.device, spec.force, progress)


def notebook_parameters(run: Run, profile: str, device: str = "auto", force: bool = False,
                        render_only: bool = False) -> dict:
    """The papermill parameters of a run's notebook.

    The output folders are not among them: the kernel inherits `$BOOK_RESULTS` and
    `$BOOK_CHECKPOINTS` (as it inherits `$BIRTHPLACE_DATA`), so a stored notebook never shows
    the folders of the machine that ran it.
    """
    params: dict = {"profile": profile, "device": device, "force": force,
                    "render_only": render_only}
    if TEMPLATES[run.kind] == "evaluate":
        params["kind"] = run.kind
    else:
        params.update(variant=run.variant, seed=run.seed)
    if TEMPLATES[run.kind] == "finetune":
        params["pretrained"] = run.kind == "pretrain_finetune"
    return params


def _merge_streams(outputs: list) -> list:
    """Join consecutive stream outputs and keep what a terminal would show after each `\\r`."""
    merged: list = []
    for out in outputs:
        if (out.get("output_type") == "stream" and merged
                and merged[-1].get("output_type") == "stream" and merged[-1]["name"] == out["name"]):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    for out in merged:
        if out.get("output_type") == "stream" and "\r" in out["text"]:
            out["text"] = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1]
                                    for line in out["text"].split("\n"))
    return merged


def finish_notebook(nb: nbformat.NotebookNode, run: Run, profile: str,
                    target: Path) -> nbformat.NotebookNode:
    """Make an executed notebook a stored run: titled by its run, rendered (never executed)
    by the book, no machine-specific paths, and a progress bar kept as its final state."""
    nb.metadata["mystnb"] = {"execution_mode": "off"}
    papermill_meta = nb.metadata.get("papermill", {})
    papermill_meta["input_path"] = f"notebooks/{TEMPLATES[run.kind]}.ipynb"
    papermill_meta["output_path"] = _shown(target)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = _merge_streams(cell.outputs)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            first, _, rest = cell.source.lstrip().partition("\n")
            cell.source = f"# {TITLES[run.kind]}: `{run.id}` ({profile} profile)\n{rest}"
            break
    return nb


def execute(run: Run, profile: str, device: str = "auto", force: bool = False,
            render_only: bool = False) -> Path:
    """Run one run's template with papermill and store it atomically in book/runs/."""
    import nbformat
    import papermill

    from lib.core.atomic import atomic_write_text

    target = stored_notebook(profile, run.id)
    template = TEMPLATES_DIR / f"{TEMPLATES[run.kind]}.ipynb"
    with tempfile.TemporaryDirectory(prefix="book-run-") as tmp:
        out = Path(tmp) / target.name
        try:
            parameters = notebook_parameters(run, profile, device, force, render_only)
            papermill.execute_notebook(str(template), str(out), parameters=parameters,
                                       kernel_name="python3", cwd=str(REPO_ROOT), progress_bar=False)
        except Exception as error:
            kept = Path(tempfile.gettempdir()) / "book-failed-runs" / profile / target.name
            kept.parent.mkdir(parents=True, exist_ok=True)
            if out.exists():
                kept.write_bytes(out.read_bytes())
            raise MatrixError(f"{run.id} ({profile}) failed in notebooks/{TEMPLATES[run.kind]}.ipynb; "
                              f"the executed notebook is in {kept}:\n{error}") from error
        nb = finish_notebook(nbformat.read(out, as_version=4), run, profile, target)
    return atomic_write_text(target, nbformat.writes(nb) + "\n")


def template_drift(stored: Path) -> str | None:
    """How a stored notebook's cells differ from its template's, or None when they agree.

    The run's title line and papermill's injected parameters are the stored notebook's own;
    every other cell must be the template's, in order, or the page shows an older template.
    """
    import nbformat

    nb = nbformat.read(stored, as_version=4)
    template_path = REPO_ROOT / nb.metadata.get("papermill", {}).get("input_path", "")
    if not template_path.is_file():
        return f"its template {template_path.name or '(none named)'} does not exist"
    template = nbformat.read(template_path, as_version=4)

    def cells(notebook: nbformat.NotebookNode) -> list[tuple[str, str]]:
        kept = [(c.cell_type, c.source) for c in notebook.cells
                if "injected-parameters" not in c.metadata.get("tags", [])]
        if kept and kept[0][0] == "markdown":  # the title names the run
            kept[0] = ("markdown", kept[0][1].lstrip().partition("\n")[2])
        return kept

    ours, theirs = cells(nb), cells(template)
    for number, (mine, wanted) in enumerate(zip(ours, theirs, strict=False), start=1):
        if mine != wanted:
            return f"cell {number} ({wanted[0]}) differs from {_shown(template_path)}"
    if len(ours) != len(theirs):
        return f"{len(ours)} cells where {_shown(template_path)} has {len(theirs)}"
    return None


def run_matrix(profile: str, seeds: Sequence[int] | None = None,
               variants: Sequence[str] = ("vanilla",), device: str = "auto", force: bool = False,
               render_only: bool = False, log: Callable[[str], None] = print,
               only: Collection[str] | None = None, rerender: bool = False) -> list[dict]:
    """Run (or, with `render_only`, only render) a profile's matrix; return one status per run.

    Every run's parameters are checked before the first notebook starts. A run whose record
    and stored notebook exist is skipped unless `force`; with `render_only`, a run without
    a record is reported as missing and nothing is trained. `rerender` is `render_only`
    that also replaces existing stored notebooks (after a template change). `only` (run
    ids) narrows the matrix to those runs, for example the runs just imported.
    """
    render_only = render_only or rerender
    todo = [run for run in matrix(profile, seeds, variants) if only is None or run.id in only]
    for run in todo:
        validate_parameters(TEMPLATES[run.kind],
                            **notebook_parameters(run, profile, device, force, render_only))
    statuses = []
    log(f"experiments: profile {profile}, {len(todo)} runs, notebooks in {_shown(runs_root() / profile)}")
    for run in todo:
        rid = run.id
        have_record = record_path(profile, rid).exists()
        if not (force or rerender) and have_record and stored_notebook(profile, rid).exists():
            statuses.append({"run_id": rid, "status": "skipped"})
            log(f"  skipped: {rid} (record and stored notebook exist)")
            continue
        if render_only and not have_record:
            statuses.append({"run_id": rid, "status": "missing"})
            log(f"  missing: {rid} (no record to render)")
            continue
        started = time.time()
        path = execute(run, profile, device, force, render_only)
        seconds = round(time.time() - started, 1)
        statuses.append({"run_id": rid, "status": "rendered" if have_record and not force else "ran",
                         "seconds": seconds, "notebook": _shown(path)})
        log(f"  {statuses[-1]['status']}: {rid} in {seconds} s -> {_shown(path)}")
    return statuses
