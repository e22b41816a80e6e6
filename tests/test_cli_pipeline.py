"""The CLI and the run pipeline end to end on the real data at the smoke profile."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from lib import cli as C
from lib.core.evaluate import read_predictions
from lib.runs import pipeline as P
from lib.runs.profiles import get_profile, world_for
from lib.runs.records import load_records
from tests.conftest import REPO, write_files


def cli(*args, env=None, cwd=REPO) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lib", *args], cwd=cwd, capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=600)


def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """`python -m lib ARGS` without a new interpreter (seconds saved per call): exit status,
    stdout and stderr. Usage errors exit through argparse, the others return their status."""
    try:
        status = C.main(list(args))
    except SystemExit as exit_:
        status = exit_.code
    out = capsys.readouterr()
    return status, out.out, out.err


def test_london_reports_five_percent():
    out = cli("london")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "London baseline: 25/500 = 5.0 %"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "finetune", "--profile", "tiny"], "unknown profile 'tiny'"),
        (["run", "finetune", "--variant", "performer"], "unknown attention variant 'performer'"),
        (["run", "finetune", "--seed", "-3"], "non-negative integer"),
        (["run", "finetune", "--seed", "abc"], "non-negative integer"),
        (["run", "finetune", "--device", "cuda:0" if False else "tpu"], "device"),
        (["finetune", "--writing-params-path", "x", "--reading-params-path", "missing.params"], "does not exist"),
        (["evaluate", "--reading-params-path", "pyproject.toml"], "required"),
        (["experiments", "--profile", "smoke", "--rerender", "--force"],
         "argument --force: not allowed with argument --rerender"),
    ],
)
def test_bad_arguments_fail_before_any_work(args, message, capsys):
    status, _, err = in_process(capsys, *args)
    assert status == 2
    assert message in err


def test_missing_data_folder_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("BIRTHPLACE_DATA", str(tmp_path / "none"))
    status, _, err = in_process(capsys, "london")
    assert status == 2 and "BIRTHPLACE_DATA" in err


@pytest.mark.slow
def test_classic_workflow_pretrain_finetune_evaluate(tmp_path):
    """pretrain -> finetune -> evaluate through the CLI (smoke profile, real data)."""
    pre, fine, preds = tmp_path / "pre.params", tmp_path / "fine.params", tmp_path / "dev.predictions"
    data = os.environ["BIRTHPLACE_DATA"]
    steps = [
        ["pretrain", "--profile", "smoke", "--writing-params-path", str(pre), "--no-progress"],
        ["finetune", "--profile", "smoke", "--reading-params-path", str(pre), "--writing-params-path",
         str(fine), "--finetune-corpus-path", f"{data}/birth_places_train.tsv", "--no-progress"],
        ["evaluate", "--profile", "smoke", "--reading-params-path", str(fine), "--eval-corpus-path",
         f"{data}/birth_dev.tsv", "--outputs-path", str(preds), "--no-progress"],
    ]
    for args in steps:
        out = cli(*args)
        assert out.returncode == 0, out.stderr[-2000:]
    assert "Correct:" in out.stdout and "out of 500" in out.stdout
    assert len(preds.read_text(encoding="utf-8").split("\n")) == 501
    test_out = cli("evaluate", "--profile", "smoke", "--reading-params-path", str(fine), "--eval-corpus-path",
                   f"{data}/birth_test_inputs.tsv", "--outputs-path", str(tmp_path / "test.predictions"))
    assert test_out.returncode == 0 and "437 predictions" in test_out.stdout
    wrong = cli("evaluate", "--variant", "synthesizer", "--reading-params-path", str(fine),
                "--eval-corpus-path", f"{data}/birth_dev.tsv", "--outputs-path", str(preds))
    assert wrong.returncode == 2 and "holds a 'vanilla' model" in wrong.stderr


# The exercise handout's command lines, character for character (only `python src/run.py`
# becomes `python -m lib`). They run in an empty folder: the data file names are found in
# the data folder, and BOOK_PROFILE=smoke keeps them to seconds.
HANDOUT_LINES = """
python -m lib finetune vanilla wiki.txt --writing_params_path vanilla.model.params --finetune_corpus_path birth_places_train.tsv
python -m lib evaluate vanilla wiki.txt --reading_params_path vanilla.model.params --eval_corpus_path birth_dev.tsv --outputs_path vanilla.nopretrain.dev.predictions
python -m lib evaluate vanilla wiki.txt --reading_params_path vanilla.model.params --eval_corpus_path birth_test_inputs.tsv --outputs_path vanilla.nopretrain.test.predictions
python -m lib pretrain vanilla wiki.txt --writing_params_path vanilla.pretrain.params
python -m lib finetune vanilla wiki.txt --reading_params_path vanilla.pretrain.params --writing_params_path vanilla.finetune.params --finetune_corpus_path birth_places_train.tsv
python -m lib evaluate vanilla wiki.txt --reading_params_path vanilla.finetune.params --eval_corpus_path birth_dev.tsv --outputs_path vanilla.pretrain.dev.predictions
python -m lib pretrain synthesizer wiki.txt --writing_params_path synthesizer.pretrain.params
python -m lib finetune synthesizer wiki.txt --reading_params_path synthesizer.pretrain.params --writing_params_path synthesizer.finetune.params --finetune_corpus_path birth_places_train.tsv
python -m lib evaluate synthesizer wiki.txt --reading_params_path synthesizer.finetune.params --eval_corpus_path birth_dev.tsv --outputs_path synthesizer.pretrain.dev.predictions
""".strip().splitlines()


@pytest.mark.slow
def test_the_handouts_command_lines_run_unchanged(tmp_path):
    env = {"BOOK_PROFILE": "smoke", "TQDM_DISABLE": "1"}
    printed = {}
    for line in HANDOUT_LINES:
        args = shlex.split(line)[3:]
        out = cli(*args, env=env, cwd=tmp_path)
        assert out.returncode == 0, f"{line}\n{out.stderr[-2000:]}"
        printed[line] = out.stdout
    for name in ("vanilla.nopretrain.dev", "vanilla.pretrain.dev", "synthesizer.pretrain.dev"):
        assert len((tmp_path / f"{name}.predictions").read_text(encoding="utf-8").splitlines()) == 500
    assert len((tmp_path / "vanilla.nopretrain.test.predictions").read_text().splitlines()) == 437
    # `score` gives the very line that `evaluate` printed for the same predictions.
    evaluated = printed[HANDOUT_LINES[5]].strip().splitlines()[-1]
    assert evaluated.startswith("Correct: ") and "out of 500" in evaluated
    scored = cli("score", "vanilla.pretrain.dev.predictions", "--eval_corpus_path", "birth_dev.tsv",
                 cwd=tmp_path)
    assert scored.returncode == 0, scored.stderr
    assert scored.stdout.strip() == evaluated
    # The weights say which profile made them: smoke, as BOOK_PROFILE asked.
    from lib.core.checkpoint import load_weights

    assert load_weights(tmp_path / "vanilla.finetune.params")[1]["profile"] == "smoke"


def _parsed(line: str):
    args = C.parser().parse_args(shlex.split(line))
    assert C._reconcile_handout_forms(args) is None
    return vars(args)


def test_handout_and_keyword_forms_mean_the_same(data_folder):
    params = REPO / "pyproject.toml"
    keyword = _parsed(f"finetune --variant synthesizer --reading-params-path {params} "
                      "--writing-params-path out.params --finetune-corpus-path "
                      f"{data_folder / 'birth_places_train.tsv'} --profile smoke")
    handout = _parsed(f"finetune synthesizer wiki.txt --reading_params_path {params} "
                      "--writing_params_path out.params --finetune_corpus_path birth_places_train.tsv "
                      "--profile smoke")
    assert handout.pop("corpus_path") == data_folder / "wiki.txt"
    assert handout.pop("positional_variant") == "synthesizer"
    keyword.pop("corpus_path"), keyword.pop("positional_variant")
    assert handout == keyword
    pretrain = _parsed("pretrain vanilla wiki.txt --writing_params_path p.params")
    assert pretrain["pretrain_corpus_path"] == data_folder / "wiki.txt"
    assert pretrain["variant"] == "vanilla"


def test_the_default_profile_is_the_classic_one_unless_book_profile_says(monkeypatch, capsys):
    monkeypatch.delenv("BOOK_PROFILE", raising=False)
    assert _parsed("pretrain vanilla --writing_params_path p")["profile"] == "full"
    monkeypatch.setenv("BOOK_PROFILE", "smoke")
    assert _parsed("pretrain vanilla --writing_params_path p")["profile"] == "smoke"
    assert _parsed("pretrain vanilla --writing_params_path p --profile mini")["profile"] == "mini"
    monkeypatch.setenv("BOOK_PROFILE", "tiny")
    status, _, err = in_process(capsys, "london")
    assert status == 2 and "BOOK_PROFILE='tiny' is not a profile" in err


def test_handout_form_conflicts_and_foreign_corpora_are_refused(tmp_path, capsys):
    params = str(REPO / "pyproject.toml")  # any existing file: the checks come before loading
    outputs = str(tmp_path / "p")
    status, _, err = in_process(capsys, "evaluate", "synthesizer", "--variant", "vanilla",
                                "--reading_params_path", params, "--eval_corpus_path", "birth_dev.tsv",
                                "--outputs_path", outputs)
    assert status == 2 and "variant is given twice" in err
    other = tmp_path / "other.txt"
    other.write_text("Ada Lovelace. Born in London.\n", encoding="utf-8")
    status, _, err = in_process(capsys, "evaluate", "vanilla", str(other), "--reading_params_path", params,
                                "--eval_corpus_path", "birth_dev.tsv", "--outputs_path", outputs)
    assert status == 2 and "other characters than the data folder's wiki.txt" in err
    status, _, err = in_process(capsys, "finetune", "vanilla", "wiki.txt", "--writing_params_path", "x",
                                "--finetune_corpus_path", "no_such_file.tsv")
    assert status == 2 and "'no_such_file.tsv' does not exist (nor in the data folder" in err


def _records_with_predictions(profile: str) -> list[dict]:
    return [r for r in load_records(profile, REPO / "results") if "predictions" in r.get("files", {})]


def test_score_reproduces_every_stored_records_accuracy(real_data, tmp_path, capsys):
    """The book's mini runs answer the mini world's dev questions: written out as a TSV, they
    let `score` recompute each record's accuracy from its predictions file alone."""
    world = world_for(get_profile("mini"), real_data)
    questions = tmp_path / "mini_dev.tsv"
    questions.write_text("".join(f"{q.question}\t{q.place}\n" for q in world.dev), encoding="utf-8")
    records = _records_with_predictions("mini")
    assert len(records) >= 5 and any(r["metrics"]["dev"]["correct"] > 0 for r in records)
    for record in records:
        assert record["world"] == world.description, record["run_id"]
        predictions = REPO / "results" / "mini" / record["files"]["predictions"]
        status, out, err = in_process(capsys, "score", str(predictions), "--eval_corpus_path", str(questions))
        dev = record["metrics"]["dev"]
        expected = f"Correct: {dev['correct']} out of {dev['total']}: {100 * dev['accuracy']:.2f}%"
        assert status == 0 and out.strip() == expected, (record["run_id"], err)


def test_score_names_what_is_wrong(tmp_path, capsys):
    short = tmp_path / "short.predictions"
    short.write_text("London\nParis\n", encoding="utf-8")
    status, _, err = in_process(capsys, "score", str(short), "--eval_corpus_path", "birth_dev.tsv")
    assert status == 2
    assert re.search(r"short.predictions has 2 lines but .*birth_dev.tsv has 500 questions", err), err
    status, _, err = in_process(capsys, "score", str(short), "--eval_corpus_path", "birth_test_inputs.tsv")
    assert status == 2 and "questions without answers" in err
    missing = str(tmp_path / "missing.predictions")
    status, _, err = in_process(capsys, "score", missing)
    assert status == 2 and f"'{missing}' does not exist" in err


def test_score_defaults_to_the_dev_file(tmp_path, capsys):
    london = tmp_path / "london.predictions"
    london.write_text("London\n" * 500, encoding="utf-8")
    status, out, _ = in_process(capsys, "score", str(london))
    assert status == 0 and out.strip() == "Correct: 25 out of 500: 5.00%"


def test_check_data_names_differing_and_missing_files(tmp_path, data_folder, capsys):
    status, out, _ = in_process(capsys, "check-data", str(data_folder))
    assert status == 0 and "all 4 files" in out
    dev = (data_folder / "birth_dev.tsv").read_text(encoding="utf-8").splitlines(keepends=True)
    folder = write_files(tmp_path / "copy", dev="".join(dev[:-1]))
    (folder / "birth_test_inputs.tsv").unlink()
    status, out, _ = in_process(capsys, "check-data", str(folder))
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == "ok       wiki.txt" and lines[1] == "ok       birth_places_train.tsv"
    assert lines[2].startswith("DIFFERS  birth_dev.tsv: SHA-256 ") and "499 lines" in lines[2]
    assert lines[3] == "MISSING  birth_test_inputs.tsv"
    assert "birth_dev.tsv, birth_test_inputs.tsv" in lines[4]
    status, _, err = in_process(capsys, "check-data", str(tmp_path / "nowhere"))
    assert status == 2 and "nowhere does not exist" in err


def test_pipeline_records_and_skipping(scratch):
    first = P.run("pretrain_finetune", "smoke", progress=False)
    records = {r["run_id"]: r for r in load_records("smoke")}
    assert set(records) == {"pretrain-vanilla-seed0", "pretrain_finetune-vanilla-seed0"}
    rec = records["pretrain_finetune-vanilla-seed0"]
    for key in ("config", "metrics", "wall_time", "device_name", "torch_version", "git_commit",
                "dataset_checksums", "created", "seed", "variant", "profile", "kind"):
        assert key in rec, key
    assert rec["metrics"]["dev"]["total"] == 20 and rec["pretrain_run"] == "pretrain-vanilla-seed0"
    assert len(rec["metrics"]["snapshots"]) == 2
    details = json.loads((scratch / "results/smoke/pretrain_finetune-vanilla-seed0.details.json").read_text())
    assert len(details["dev"]) == 20 and len(details["strangers"]) == P.STRANGERS
    # The exercise's submission: one answer per line of the unlabelled test file, in order.
    test_answers = scratch / "results/smoke" / rec["files"]["test_predictions"]
    assert len(read_predictions(test_answers)) == 437
    # A finished run is skipped: the same record comes back without training again.
    again = P.run("pretrain_finetune", "smoke", progress=False)
    assert again == first


def test_git_commit_is_dirty_for_code_changes_but_not_for_new_results(tmp_path, monkeypatch):
    import subprocess

    from lib.runs import records

    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "lib").mkdir()
    (tmp_path / "results").mkdir()
    (tmp_path / "lib" / "code.py").write_text("x = 1\n")
    (tmp_path / "results" / "log.jsonl").write_text("{}\n")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(records, "REPO_ROOT", tmp_path)
    monkeypatch.delenv("BOOK_GIT_COMMIT", raising=False)
    clean = records.git_commit()
    assert len(clean) == 40
    (tmp_path / "results" / "log.jsonl").write_text("{}\n{}\n")  # a run appending to its log
    assert records.git_commit() == clean
    (tmp_path / "lib" / "code.py").write_text("x = 2\n")
    assert records.git_commit() == clean + "+dirty"


def test_the_gpu_scripts_settings_reach_every_training_snapshot_finetunes_included(scratch, monkeypatch):
    """`BOOK_CUDA_GRAPHS=1` and `BOOK_EPOCH_CHECKPOINTS=0` (what `make gpu-run` sets on a GPU)
    reach the pretraining, the finetune and each snapshot's finetune: one step for all of
    them, and no training state written between epochs."""
    import lib.core.train.loop

    real_train, seen, states = P.train, [], []
    monkeypatch.setattr(P, "train", lambda *a, **k: seen.append(k) or real_train(*a, **k))
    monkeypatch.setattr(lib.core.train.loop, "save_state", lambda *a, **k: states.append(a[0]))
    monkeypatch.setenv("BOOK_CUDA_GRAPHS", "1")
    monkeypatch.setenv("BOOK_EPOCH_CHECKPOINTS", "0")
    record = P.run("pretrain_finetune", "smoke", device="cpu", progress=False)
    snapshots = len(record["metrics"]["snapshots"])
    assert snapshots == 2 and len(seen) == 2 + snapshots  # pretrain, finetune, snapshot finetunes
    assert all(k["cuda_graphs"] is True and k["epoch_checkpoints"] is False for k in seen)
    assert states == []


def test_a_finetune_stopped_before_its_record_leaves_none_of_its_files(scratch, monkeypatch):
    """A run stopped while its snapshots are finetuned (a deadline, say) has written no
    predictions or details yet: nothing without a record gets packed or imported."""
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    P.run("pretrain", "smoke", device="cpu", progress=False)
    monkeypatch.setattr(P, "_finetune_snapshots", stopped)
    with pytest.raises(KeyboardInterrupt):
        P.run("pretrain_finetune", "smoke", device="cpu", progress=False)
    left = {p.name for p in (scratch / "results/smoke").iterdir()}
    assert not {name for name in left if name.startswith("pretrain_finetune-")} - {
        "pretrain_finetune-vanilla-seed0.metrics.jsonl"}
