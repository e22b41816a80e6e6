"""The experiment matrix without a kernel: parameter checks, job order, stored-notebook finishing."""

from __future__ import annotations

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from lib.runs import experiments as E
from lib.runs.matrix import Run, matrix
from lib.runs.records import write_record


@pytest.mark.parametrize(
    ("template", "parameters", "message"),
    [
        ("pretrain", {"profile": "tiny"}, "profile='tiny': choose one of smoke, mini, mini-classic, mini-classic-grouped, mini-ungrouped, cpu, cpu32, cpu32-classic, full"),
        ("pretrain", {"profile": "smoke", "variant": "performer"}, "variant='performer'"),
        ("pretrain", {"profile": "smoke", "seed": -1}, "seed=-1: a seed is a non-negative integer"),
        ("pretrain", {"profile": "smoke", "seed": 1.5}, "seed=1.5"),
        ("pretrain", {"profile": "smoke", "seed": True}, "seed=True"),
        ("finetune", {"profile": "smoke", "pretrained": "yes"}, "pretrained='yes': use True or False"),
        ("pretrain", {"profile": "smoke", "device": "tpu"}, "device='tpu'"),
        ("pretrain", {"profile": "smoke", "force": True, "render_only": True}, "cannot be combined"),
        ("evaluate", {"profile": "smoke", "kind": "pretrain"}, "kind='pretrain'"),
        ("evaluate", {"profile": "smoke", "kind": "finetune", "force": True}, "force=True"),
        ("report", {"profile": "smoke"}, "template='report'"),
    ],
)
def test_invalid_parameters_name_the_problem(template, parameters, message):
    with pytest.raises(E.ParameterError, match="invalid parameter") as error:
        E.validate_parameters(template, **parameters)
    assert message in str(error.value)


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    with pytest.raises(E.ParameterError, match="no CUDA GPU"):
        E.validate_parameters("pretrain", profile="smoke", device="cuda")


def test_valid_parameters_describe_the_run():
    spec = E.validate_parameters("finetune", profile="mini", seed=2, pretrained=True)
    assert (spec.kind, spec.run_id) == ("pretrain_finetune", "pretrain_finetune-vanilla-seed2")
    assert E.validate_parameters("finetune", profile="mini").run_id == "finetune-vanilla-seed0"
    assert E.validate_parameters("evaluate", profile="mini").run_id == "london"
    # The evaluate notebook only reads finetuned runs.
    assert E.validate_parameters("evaluate", profile="mini", kind="finetune").render_only


def test_prepare_run_points_lib_at_the_output_folders(tmp_path, monkeypatch):
    for name in ("BOOK_RESULTS", "BOOK_CHECKPOINTS"):
        monkeypatch.setenv(name, "")  # recorded, so what prepare_run sets is undone afterwards
        monkeypatch.delenv(name)
    spec = E.prepare_run("pretrain", profile="smoke", results_dir=str(tmp_path / "r"),
                         checkpoints_dir=str(tmp_path / "c"))
    assert spec.record_path == tmp_path / "r" / "smoke" / "pretrain-vanilla-seed0.json"
    import os

    assert os.environ["BOOK_CHECKPOINTS"] == str(tmp_path / "c")


def test_run_or_load_reads_an_existing_record_without_weights(scratch):
    # A record from another machine (its weights did not travel) is shown as it is.
    write_record({"run_id": "pretrain-vanilla-seed0", "kind": "pretrain", "profile": "smoke",
                  "metrics": {"marker": 1}})
    spec = E.validate_parameters("pretrain", profile="smoke")
    assert E.run_or_load(spec)["metrics"] == {"marker": 1}
    assert not (scratch / "checkpoints").exists()


def test_the_matrix_runs_pretraining_before_the_runs_that_need_it():
    names = [r.id for r in matrix("mini")]
    assert names[0] == "london" and len(names) == 1 + 3 * 3
    for seed in (0, 1, 2):
        assert names.index(f"pretrain-vanilla-seed{seed}") < names.index(f"pretrain_finetune-vanilla-seed{seed}")
        assert f"finetune-vanilla-seed{seed}" in names
    assert [r.id for r in matrix("smoke")] == ["london", "pretrain-vanilla-seed0",
                                               "pretrain_finetune-vanilla-seed0", "finetune-vanilla-seed0"]
    assert len(matrix("full", seeds=[4], variants=["vanilla", "synthesizer"])) == 1 + 2 * 3


def test_notebook_parameters_match_their_template(monkeypatch, tmp_path):
    # Set output folders must not reach the stored notebook: the kernel inherits them.
    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BOOK_CHECKPOINTS", str(tmp_path / "checkpoints"))
    london, pf = Run("london"), Run("pretrain_finetune", "vanilla", 1)
    assert E.TEMPLATES[london.kind] == "evaluate" and E.notebook_parameters(london, "mini")["kind"] == "london"
    params = E.notebook_parameters(pf, "mini", device="cuda")
    assert E.TEMPLATES[pf.kind] == "finetune" and params["pretrained"] is True and params["seed"] == 1
    assert "results_dir" not in params and "checkpoints_dir" not in params
    for run in (london, pf, Run("pretrain"), Run("finetune")):
        template = E.TEMPLATES[run.kind]
        nb = nbformat.read(E.TEMPLATES_DIR / f"{template}.ipynb", as_version=4)
        source = next(c.source for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        for name in E.notebook_parameters(run, "mini"):
            assert f"\n{name} = " in "\n" + source, (template, name)


def test_every_template_validates_in_its_first_cell_after_the_parameters():
    for template in set(E.TEMPLATES.values()):
        nb = nbformat.read(E.TEMPLATES_DIR / f"{template}.ipynb", as_version=4)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code[0].metadata.get("tags") == ["parameters"]
        assert f'E.prepare_run("{template}"' in code[1].source
        assert not any("train(" in c.source and "lib.core.train.loop" in c.source for c in code), "no training loops"


def test_finish_notebook_titles_the_run_and_collapses_progress_bars(tmp_path):
    nb = new_notebook(cells=[new_markdown_cell("# Pretraining\n\nText."), new_code_cell("x")])
    nb.cells[1].outputs = [new_output("stream", name="stderr", text="\r 10%|#   |\r 50%|##  |"),
                           new_output("stream", name="stderr", text="\r100%|####|\n"),
                           new_output("stream", name="stdout", text="done\n")]
    nb.metadata["papermill"] = {"input_path": "/abs/notebooks/pretrain.ipynb"}
    out = E.finish_notebook(nb, Run("pretrain", "vanilla", 0), "mini", E.REPO_ROOT / "book/runs/mini/pretrain-vanilla-seed0.ipynb")
    assert out.cells[0].source.startswith("# Pretraining: `pretrain-vanilla-seed0` (mini profile)\n")
    assert [o["text"] for o in out.cells[1].outputs] == ["100%|####|\n", "done\n"]
    assert out.metadata["mystnb"] == {"execution_mode": "off"}
    assert out.metadata["papermill"]["input_path"] == "notebooks/pretrain.ipynb"
    assert out.metadata["papermill"]["output_path"] == "book/runs/mini/pretrain-vanilla-seed0.ipynb"


def test_render_only_reports_runs_without_records_and_trains_nothing(scratch, monkeypatch):
    monkeypatch.setenv("BOOK_RUNS", str(scratch / "runs"))
    statuses = E.run_matrix("smoke", render_only=True, log=lambda line: None)
    assert {s["status"] for s in statuses} == {"missing"}
    assert not (scratch / "runs").exists() and not (scratch / "checkpoints").exists()
    narrowed = E.run_matrix("smoke", render_only=True, log=lambda line: None,
                            only={"london", "finetune-vanilla-seed0"})
    assert sorted(s["run_id"] for s in narrowed) == ["finetune-vanilla-seed0", "london"]


def test_bad_matrix_arguments_fail_before_any_notebook(scratch, monkeypatch):
    monkeypatch.setenv("BOOK_RUNS", str(scratch / "runs"))
    with pytest.raises(E.ParameterError, match="variant='nope'"):
        E.run_matrix("smoke", variants=["nope"], log=lambda line: None)
    with pytest.raises(E.ParameterError, match="seed=-2"):
        E.run_matrix("smoke", seeds=[-2], log=lambda line: None)
    assert not (scratch / "runs").exists()


def test_rerender_replaces_stored_notebooks_of_runs_with_records(scratch, monkeypatch):
    monkeypatch.setenv("BOOK_RUNS", str(scratch / "runs"))
    rendered = []

    def fake_execute(run, profile, device="auto", force=False, render_only=False):
        rendered.append((run.id, render_only, force))
        return E.stored_notebook(profile, run.id)

    monkeypatch.setattr(E, "execute", fake_execute)
    for rid, kind in (("london", "london"), ("finetune-vanilla-seed0", "finetune")):
        write_record({"run_id": rid, "kind": kind, "profile": "smoke", "metrics": {}})
        E.stored_notebook("smoke", rid).parent.mkdir(parents=True, exist_ok=True)
        E.stored_notebook("smoke", rid).write_text("{}")
    quiet = {"log": lambda line: None}
    assert {s["status"] for s in E.run_matrix("smoke", render_only=True, **quiet)} == {"skipped", "missing"}
    assert rendered == []
    statuses = {s["run_id"]: s["status"] for s in E.run_matrix("smoke", rerender=True, **quiet)}
    assert rendered == [("london", True, False), ("finetune-vanilla-seed0", True, False)]
    assert statuses == {"london": "rendered", "pretrain-vanilla-seed0": "missing",
                        "pretrain_finetune-vanilla-seed0": "missing",
                        "finetune-vanilla-seed0": "rendered"}


@pytest.mark.parametrize(("args", "variants"), [
    (["--rerender"], ["rope", "vanilla"]),
    (["--rerender", "--variants", "rope"], ["rope"]),
    ([], ["vanilla"]),
    (["--render-only"], ["vanilla"]),
])
def test_rerender_without_variants_covers_every_recorded_variant(scratch, monkeypatch, args,
                                                                   variants):
    """`experiments --rerender` names no variant: it renders every variant with records
    (London has none); training and `--render-only` keep the default, vanilla."""
    from lib import cli

    calls = []
    monkeypatch.setattr(E, "run_matrix", lambda profile, **kw: calls.append(kw["variants"]))
    for rid, kind, variant in (("london", "london", "none"),
                               ("finetune-vanilla-seed0", "finetune", "vanilla"),
                               ("finetune-rope-seed0", "finetune", "rope")):
        write_record({"run_id": rid, "kind": kind, "variant": variant, "profile": "smoke",
                      "metrics": {}})
    assert cli.main(["experiments", "--profile", "smoke", *args]) == 0
    assert calls == [variants]


def _stored_copy(tmp_path, template="finetune"):
    """A stored notebook as `execute` leaves one: the template, titled, parameters injected."""
    nb = nbformat.read(E.TEMPLATES_DIR / f"{template}.ipynb", as_version=4)
    nb.cells[0].source = "# Finetuning: `x` (smoke profile)\n" + nb.cells[0].source.partition("\n")[2]
    injected = new_code_cell('# Parameters\nprofile = "smoke"\n')
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(2, injected)
    nb.metadata["papermill"] = {"input_path": f"notebooks/{template}.ipynb"}
    path = tmp_path / "x.ipynb"
    nbformat.write(nb, path)
    return nb, path


def test_template_drift_names_the_cell_that_lags_its_template(tmp_path):
    nb, path = _stored_copy(tmp_path)
    assert E.template_drift(path) is None
    code = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and i > 2)
    nb.cells[code].source += "\nprint('an older template')"
    nbformat.write(nb, path)
    assert E.template_drift(path) == f"cell {code} (code) differs from notebooks/finetune.ipynb"
    nb.cells[code].source = nb.cells[code].source.rsplit("\n", 1)[0]
    nb.cells.append(new_markdown_cell("A paragraph the template no longer has."))
    nbformat.write(nb, path)
    assert "cells where notebooks/finetune.ipynb has" in E.template_drift(path)
    nb.metadata["papermill"]["input_path"] = "notebooks/gone.ipynb"
    nbformat.write(nb, path)
    assert E.template_drift(path) == "its template gone.ipynb does not exist"


def test_stored_notebooks_hold_their_templates_cells():
    stored = sorted(E.runs_root().glob("*/*.ipynb"))
    assert stored, "no stored run notebooks under book/runs/"
    drift = [f"{path.relative_to(E.REPO_ROOT)}: {E.template_drift(path)}"
             for path in stored if E.template_drift(path)]
    assert not drift, ("stored notebooks lag their templates; render them again with "
                       "`python -m lib experiments --profile P --rerender`:\n" + "\n".join(drift))
