"""Notebook regression checks: the experiment templates, executed with papermill at the smoke
profile, must record the expected metrics; the matrix skips and resumes; bad parameters stop
a notebook at its first cell; the committed stored runs are ready for the book.

The matrix runs once per session (the `smoke_matrix` fixture) into a temporary folder
(results, checkpoints and stored notebooks), never into the repository.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path, PurePosixPath

import nbformat
import papermill
import pytest
import yaml

from lib.runs import experiments as E
from tests.conftest import REPO
from tests.smoke_expected import EXPECTED, mismatches

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def matrix(smoke_matrix):
    """The smoke matrix through papermill (run once per session); (root, statuses)."""
    return smoke_matrix, json.loads((smoke_matrix / "statuses.json").read_text())


def _notebooks(root: Path) -> dict[str, nbformat.NotebookNode]:
    return {p.stem: nbformat.read(p, as_version=4) for p in sorted((root / "runs" / "smoke").glob("*.ipynb"))}


def test_every_run_of_the_matrix_ran(matrix):
    root, statuses = matrix
    assert [s["run_id"] for s in statuses] == list(EXPECTED)
    assert {s["status"] for s in statuses} == {"ran"}
    assert set(_notebooks(root)) == set(EXPECTED)


def test_recorded_metrics_match_expected_values(matrix):
    root, _ = matrix
    assert mismatches(root / "results") == []


def test_records_carry_provenance_and_files(matrix):
    root, _ = matrix
    for rid in EXPECTED:
        record = json.loads((root / "results" / "smoke" / f"{rid}.json").read_text())
        for key in ("config", "metrics", "wall_time", "device_name", "torch_version", "git_commit",
                    "dataset_checksums", "created", "world", "profile", "seed", "kind"):
            assert key in record, (rid, key)
        for name in record["files"].values():
            assert (root / "results" / "smoke" / name).is_file(), (rid, name)


def _outputs(nb, kind: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == kind]


def test_stored_notebooks_show_their_run(matrix):
    root, _ = matrix
    for rid, nb in _notebooks(root).items():
        assert nb.metadata["mystnb"] == {"execution_mode": "off"}, rid
        assert nb.cells[0].cell_type == "markdown" and f"`{rid}` (smoke profile)" in nb.cells[0].source
        assert not _outputs(nb, "error"), rid
        tags = [c.metadata.get("tags", []) for c in nb.cells if c.cell_type == "code"]
        assert ["parameters"] in tags and ["injected-parameters"] in tags, rid
        html = [o for o in _outputs(nb, "execute_result") if "text/html" in o.data]
        assert html, f"{rid}: no table"
        if rid != "london":
            images = [o for o in _outputs(nb, "display_data") if "image/png" in o.data]
            assert images, f"{rid}: no loss and learning-rate plot"
        text = "".join(o.text for o in _outputs(nb, "stream"))
        assert "\r" not in text, f"{rid}: progress-bar updates were not collapsed"
        assert str(REPO) not in json.dumps(nb.metadata.get("papermill", {}).get("input_path", "")), rid


def test_evaluation_tables_show_predictions_and_accuracy(matrix):
    root, _ = matrix
    nb = _notebooks(root)["finetune-vanilla-seed0"]
    printed = "".join(o.text for o in _outputs(nb, "stream") if o.name == "stdout")
    assert "0 of 20 dev questions right = 0.0 %" in printed
    tables = [o.data["text/html"] for o in _outputs(nb, "execute_result") if "text/html" in o.data]
    assert any("gold" in t and "prediction" in t and "correct" in t for t in tables)


def test_a_finished_matrix_is_skipped_and_an_interrupted_one_resumes(matrix, monkeypatch, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(matrix[0], root)
    for key, sub in (("BOOK_RESULTS", "results"), ("BOOK_CHECKPOINTS", "checkpoints"), ("BOOK_RUNS", "runs")):
        monkeypatch.setenv(key, str(root / sub))
    again = E.run_matrix("smoke", log=lambda line: None)
    assert {s["status"] for s in again} == {"skipped"}

    results, runs = root / "results" / "smoke", root / "runs" / "smoke"
    pretrain_created = json.loads((results / "pretrain-vanilla-seed0.json").read_text())["created"]
    # As if the matrix had stopped during the last run, after rendering its predecessors'
    # records but before storing the pretraining notebook.
    (results / "finetune-vanilla-seed0.json").unlink()
    (runs / "finetune-vanilla-seed0.ipynb").unlink()
    (runs / "pretrain-vanilla-seed0.ipynb").unlink()
    resumed = {s["run_id"]: s["status"] for s in E.run_matrix("smoke", log=lambda line: None)}
    assert resumed == {"london": "skipped", "pretrain-vanilla-seed0": "rendered",
                       "pretrain_finetune-vanilla-seed0": "skipped", "finetune-vanilla-seed0": "ran"}
    assert json.loads((results / "pretrain-vanilla-seed0.json").read_text())["created"] == pretrain_created
    assert mismatches(root / "results") == []


@pytest.mark.parametrize(
    ("parameters", "message"),
    [({"seed": -1}, "invalid parameter seed=-1"),
     ({"profile": "tiny"}, "invalid parameter profile='tiny'"),
     ({"render_only": True, "force": True}, "cannot be combined with force=True")],
)
def test_invalid_parameters_stop_at_the_first_cell(tmp_path, scratch, parameters, message):
    out = tmp_path / "bad.ipynb"
    with pytest.raises(papermill.PapermillExecutionError) as error:
        papermill.execute_notebook(str(REPO / "notebooks" / "pretrain.ipynb"), str(out),
                                   parameters=parameters, kernel_name="python3", cwd=str(REPO),
                                   progress_bar=False)
    assert message in str(error.value)
    nb = nbformat.read(out, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    injected = next(i for i, c in enumerate(code) if "injected-parameters" in c.metadata.get("tags", []))
    failing = next(i for i, c in enumerate(code) if any(o.output_type == "error" for o in c.outputs))
    assert failing == injected + 1, "the first cell after the parameters must be the one that fails"
    assert not any(c.get("execution_count") for c in code[failing + 1:]), "later cells ran"


def test_render_only_never_trains(tmp_path, scratch):
    spec = E.validate_parameters("finetune", profile="smoke", render_only=True)
    with pytest.raises(FileNotFoundError, match="no record"):
        E.run_or_load(spec)
    assert not (scratch / "checkpoints").exists()


# --------------------------------------------------------------------------------------
# The stored runs committed to the repository, as the book renders them
# --------------------------------------------------------------------------------------
STORED = sorted((REPO / "book" / "runs").glob("*/*.ipynb"))


def test_the_smoke_runs_are_committed():
    assert {p.stem for p in STORED if p.parent.name == "smoke"} == set(EXPECTED)


def test_committed_smoke_records_match_expected_values():
    assert mismatches(REPO / "results") == []


@pytest.mark.parametrize("path", STORED, ids=[f"{p.parent.name}/{p.stem}" for p in STORED])
def test_stored_runs_render_without_execution(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata["mystnb"] == {"execution_mode": "off"}
    patterns = yaml.safe_load((REPO / "_config.yml").read_text())["execute"]["exclude_patterns"]
    assert any(PurePosixPath(path.as_posix()).match(p) for p in patterns)
    assert (REPO / "results" / path.parent.name / f"{path.stem}.json").is_file(), "no record for this run"
    assert not _outputs(nb, "error")
    assert all(c.get("execution_count") for c in nb.cells if c.cell_type == "code"), "not fully executed"
    assert not os.path.isabs(nb.metadata["papermill"]["input_path"])
    # Output folders come from the environment; as parameters they would show a machine's paths.
    assert not {"results_dir", "checkpoints_dir"} & set(nb.metadata["papermill"]["parameters"])


def test_toc_lists_the_stored_runs():
    toc = (REPO / "_toc.yml").read_text()
    assert "glob: book/runs/*/*" in toc
