"""Reliability, proven by injecting faults: kills, crashes mid-write, damaged and hostile
files, bad parameters, non-finite losses; and determinism on the CPU.

Each class is one guarantee (its docstring says which); the reliability appendix lists
them with the record of what these tests did (`python -m tools.reliability` writes it).
Random kill points come from a seed printed with every test that uses one; set
`BOOK_FAULT_SEED` to repeat a run exactly.
"""

from __future__ import annotations

import ast
import functools
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

import lib.core.train.loop
from lib import cli
from lib.core import data as D
from lib.core import datasets as DS
from lib.core.checkpoint import CheckpointError, load_tensors, load_weights
from lib.core.metrics_log import read_log
from lib.core.model import GPT, GPTConfig
from lib.core.train.config import TrainConfig
from lib.core.train.loop import ReplaceLoss, StopAfterEpochs
from lib.runs import gpu_run
from lib.runs import pipeline as P
from lib.runs.experiments import validate_parameters
from lib.runs.matrix import RunPaths
from lib.runs.profiles import PROFILES, get_profile, register_profile
from lib.runs.records import load_records, read_record, write_record
from tests.conftest import REPO, write_files
from tests.faults import (
    ARTEFACTS,
    PAYLOAD_FORMATS,
    Ledger,
    SimulatedCrash,
    artefact_path,
    crash_while_writing,
    kill,
    process_env,
    read_version,
    reliability_profile,
    save_ledgers,
    start,
    unpickle,
    wait_until,
    whole_world_profile,
    write_payload,
    write_version,
)

LEDGERS: dict[str, Ledger] = {}
RUNS = ("london", "pretrain-vanilla-seed0", "pretrain_finetune-vanilla-seed0", "finetune-vanilla-seed0")
PRETRAIN_ARGS = ["pretrain", "--profile", "reliability", "--seed", "0", "--device", "cpu", "--no-progress",
                 "--writing-params-path"]
MATRIX_ARGS = ["-m", "lib.runs.gpu_run", "--profile", "reliability", "--variants", "vanilla", "--device", "cpu",
               "--jobs", "1"]


# --------------------------------------------------------------------------------------
# Fixtures: the ledger, seeded randomness, the test profiles, uninterrupted reference runs
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def _write_ledgers():
    yield
    save_ledgers(LEDGERS)


@pytest.fixture
def ledger(request) -> Ledger:
    LEDGERS[request.node.nodeid] = Ledger()
    return LEDGERS[request.node.nodeid]


@pytest.fixture
def rng(ledger) -> random.Random:
    seed = int(os.environ.get("BOOK_FAULT_SEED") or random.SystemRandom().randrange(2**32))
    print(f"fault seed {seed}: BOOK_FAULT_SEED={seed} repeats this test's choices")
    ledger.notes["seed"] = seed
    return random.Random(seed)


@pytest.fixture
def profiles(monkeypatch) -> None:
    """The test profiles, known by name in this process for the duration of one test."""
    for profile in (reliability_profile(), whole_world_profile()):
        monkeypatch.setitem(PROFILES, profile.name, profile)


@pytest.fixture
def outputs(tmp_path, monkeypatch) -> Path:
    """Results and checkpoints of this test go to its temporary folder."""
    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BOOK_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path


def log_of(params: Path) -> Path:
    return params.with_name(params.name + ".metrics.jsonl")


def state_of(params: Path) -> Path:
    return params.with_name(params.name + ".state")


@pytest.fixture(scope="module")
def reference_pretraining(tmp_path_factory) -> Path:
    """An uninterrupted `python -m lib pretrain` run of the reliability profile."""
    root = tmp_path_factory.mktemp("reference-pretraining")
    params = root / "model.params"
    done = subprocess.run([sys.executable, "-m", "lib", *PRETRAIN_ARGS, str(params)], cwd=REPO,
                          env=process_env(root), capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout + done.stderr
    return params


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> list[Path]:
    """The reliability matrix (London, pretrain, pretrain + finetune, finetune) run twice
    without interruption, in two folders: in this process, and by the GPU script's processes."""
    here, there = tmp_path_factory.mktemp("uninterrupted-here"), tmp_path_factory.mktemp("uninterrupted-there")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(PROFILES, "reliability", reliability_profile())
        mp.setenv("BOOK_RESULTS", str(here / "results"))
        mp.setenv("BOOK_CHECKPOINTS", str(here / "checkpoints"))
        P.run("london", "reliability")
        for kind in ("pretrain_finetune", "finetune"):
            P.run(kind, "reliability", device="cpu", progress=False)
    done = subprocess.run([sys.executable, *MATRIX_ARGS], cwd=REPO, env=process_env(there),
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    return [here, there]


def without_time(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k != "time"} for row in rows]


def run_outputs(root: Path, rid: str, profile: str = "reliability") -> dict[str, object]:
    """Everything a finished run produced that must not depend on when or how it ran."""
    results, checkpoints = root / "results" / profile, root / "checkpoints" / profile / rid
    out: dict[str, object] = {"record metrics": read_record(results / f"{rid}.json")["metrics"]}
    for suffix in (".predictions.txt", ".details.json"):
        if (results / f"{rid}{suffix}").exists():
            out[suffix] = (results / f"{rid}{suffix}").read_bytes()
    if (results / f"{rid}.metrics.jsonl").exists():
        out["metrics log"] = without_time(read_log(results / f"{rid}.metrics.jsonl"))
    for weights in [checkpoints / "model.safetensors", *sorted(checkpoints.glob("snapshots/epoch*"))]:
        if weights.exists():
            out[weights.relative_to(checkpoints).as_posix()] = load_weights(weights)
    return out


def differences(expected: dict, actual: dict, label: str) -> list[str]:
    """Names of the artefacts that differ (tensors compared bit for bit)."""
    diffs = [f"{label}: {key} missing" for key in expected if key not in actual]
    for key in expected.keys() & actual.keys():
        a, b = expected[key], actual[key]
        if isinstance(a, tuple):  # (tensors, meta) of a weights file
            same = a[1] == b[1] and a[0].keys() == b[0].keys() and all(
                torch.equal(a[0][k], b[0][k]) for k in a[0])
        else:
            same = a == b
        if not same:
            diffs.append(f"{label}: {key} differs")
    return diffs


def same_weights(a: Path, b: Path) -> list[str]:
    return differences({"weights": load_weights(a)}, {"weights": load_weights(b)}, b.name)


def logged_epoch(log: Path) -> int:
    """The last epoch in a metrics log that another process may be appending to."""
    epoch = 0
    if log.exists():
        for line in log.read_text().splitlines():
            try:
                epoch = json.loads(line)["epoch"]
            except (json.JSONDecodeError, KeyError):
                break
    return epoch


# --------------------------------------------------------------------------------------
@pytest.mark.slow
class TestInterruption:
    """Interrupted runs resume to the same result.

    A run killed at any point after a checkpoint resumes to exactly the result of an
    uninterrupted run; an experiment matrix killed between runs redoes nothing finished and
    takes nothing half-written for finished.
    """

    def test_pretraining_killed_at_a_random_point_resumes_bit_identically(
            self, reference_pretraining, tmp_path, rng, ledger):
        """`python -m lib pretrain` is SIGKILLed at a random point after its first
        checkpoint, started again, and ends with the reference run's weights and log."""
        reference = read_log(log_of(reference_pretraining))
        epochs = reference[-1]["epoch"]
        seconds_per_epoch = reference[-1]["time"] / epochs
        params, env = tmp_path / "model.params", process_env(tmp_path)
        state, log = state_of(params), log_of(params)
        for attempt in range(5):
            after_epoch, delay = rng.randint(1, epochs - 2), rng.uniform(0.0, seconds_per_epoch)
            proc = start(["-m", "lib", *PRETRAIN_ARGS, str(params)], env, tmp_path / f"run{attempt}.log")
            wait_until(lambda e=after_epoch: state.exists() and logged_epoch(log) >= e, proc)
            time.sleep(delay)
            if kill(proc) == -signal.SIGKILL:
                ledger.fault("SIGKILL during pretraining")
                if state.exists() and not params.exists():
                    break
            for leftover in (params, state, log):  # the kill came too late: try again
                leftover.unlink(missing_ok=True)
        else:
            pytest.fail("no kill landed between the first checkpoint and the end in 5 attempts")
        resumed_from = load_tensors(state)[1]["epoch"]
        ledger.notes.update(after_epoch=after_epoch, delay=round(delay, 3), resumed_from=resumed_from)
        done = subprocess.run([sys.executable, "-m", "lib", *PRETRAIN_ARGS, str(params)], cwd=REPO,
                              env=env, capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        diffs = same_weights(reference_pretraining, params)
        if without_time(read_log(log)) != without_time(reference):
            diffs.append("metrics log differs")
        ledger.artefacts(checked=2, lost=len(diffs))
        assert not diffs, (diffs, ledger.notes, dict(ledger.faults))
        assert 1 <= resumed_from < epochs and not state.exists()

    def test_a_torn_metrics_line_is_dropped_on_resume(self, real_data, tmp_path, ledger):
        """A kill in the middle of appending to the metrics log leaves half a line; resuming
        drops it (it was written after the checkpoint) and ends as an uninterrupted run."""
        world = D.mini_world(real_data, 20, 5, seed=0)
        dataset = DS.SpanCorruptionDataset(world.corpus, real_data.vocab, 64)
        cfg = TrainConfig(epochs=4, batch_size=8, learning_rate=3e-3, warmup_tokens=0, final_epochs=4)
        config = GPTConfig(vocab_size=len(real_data.vocab), block_size=64, n_layer=1, n_head=2, n_embd=16)
        torch.manual_seed(0)
        whole = GPT(config)
        lib.core.train.loop.train(whole, dataset, cfg, seed=3, state_path=tmp_path / "w.state",
                        log_path=tmp_path / "w.jsonl", progress=False)
        torch.manual_seed(0)
        state, log = tmp_path / "r.state", tmp_path / "r.jsonl"
        lib.core.train.loop.train(GPT(config), dataset, cfg, seed=3, state_path=state, log_path=log, progress=False,
                        callbacks=[StopAfterEpochs(2)])
        line = json.dumps({"step": 99, "epoch": 3, "tokens": 1, "loss": 1.0, "lr": 1.0, "time": 1.0})
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(line[: len(line) // 2])
        ledger.fault("torn metrics log line")
        resumed = GPT(config)
        lib.core.train.loop.train(resumed, dataset, cfg, seed=3, state_path=state, log_path=log, progress=False)
        lost = sum(not torch.equal(a, b) for a, b in zip(whole.state_dict().values(),
                                                          resumed.state_dict().values(), strict=True))
        lost += without_time(read_log(log)) != without_time(read_log(tmp_path / "w.jsonl"))
        ledger.artefacts(checked=2, lost=lost)
        assert lost == 0

    def test_matrix_killed_between_runs_redoes_nothing_finished(self, uninterrupted, tmp_path, rng, ledger):
        """`make gpu-run`'s script is SIGKILLed (with its job) at a random point after a run
        finished; started again, it keeps every finished run untouched, finishes the rest,
        and everything equals the uninterrupted matrix."""
        env = process_env(tmp_path)
        results = tmp_path / "results" / "reliability"
        trigger, delay = rng.choice(RUNS[:-1]), rng.uniform(0.0, 2.0)
        proc = start(MATRIX_ARGS, env, tmp_path / "killed.log")
        wait_until(lambda: (results / f"{trigger}.json").exists(), proc, timeout=900)
        # The random delay, cut short once the last run has started logging: on a fast machine
        # every later run could otherwise finish inside it, leaving nothing to interrupt.
        wait_until(lambda: (results / f"{RUNS[-1]}.metrics.jsonl").exists(), proc, timeout=delay)
        status = kill(proc)
        ledger.fault("SIGKILL of the experiment matrix")
        finished = {rid: ((results / f"{rid}.json").read_bytes(), (results / f"{rid}.json").stat().st_mtime_ns)
                    for rid in RUNS if (results / f"{rid}.json").exists()}
        weights = {rid: p.stat().st_mtime_ns for rid in finished
                   if (p := tmp_path / "checkpoints" / "reliability" / rid / "model.safetensors").exists()}
        ledger.notes.update(trigger=trigger, delay=round(delay, 3), finished_before_kill=sorted(finished))
        assert status == -signal.SIGKILL and len(finished) < len(RUNS), (status, sorted(finished))
        # Nothing half-written is listed as a result.
        assert {r["run_id"] for r in load_records("reliability", tmp_path / "results")} == set(finished)
        again = subprocess.run([sys.executable, *MATRIX_ARGS], cwd=REPO, env=env, capture_output=True,
                               text=True, timeout=900)
        assert again.returncode == 0, again.stdout[-3000:]
        redone = [rid for rid, (content, mtime) in finished.items()
                  if (results / f"{rid}.json").read_bytes() != content
                  or (results / f"{rid}.json").stat().st_mtime_ns != mtime]
        redone += [f"{rid} weights" for rid, mtime in weights.items()
                   if (tmp_path / "checkpoints" / "reliability" / rid / "model.safetensors").stat().st_mtime_ns
                   != mtime]
        diffs, checked = [], 0
        for rid in RUNS:
            expected = run_outputs(uninterrupted[0], rid)
            checked += len(expected)
            diffs += differences(expected, run_outputs(tmp_path, rid), rid)
        ledger.artefacts(checked=checked, lost=len(redone) + len(diffs))
        assert not redone, f"finished runs were redone: {redone}"
        assert not diffs, diffs

    def test_pretraining_weights_without_a_record_are_not_taken_for_finished(
            self, uninterrupted, tmp_path, profiles, monkeypatch, ledger):
        """A kill between writing the pretrained weights and the pretraining record leaves
        weights without a record; pretrain + finetune must pretrain again, not crash or use them."""
        root = tmp_path / "run"
        shutil.copytree(uninterrupted[0], root)
        monkeypatch.setenv("BOOK_RESULTS", str(root / "results"))
        monkeypatch.setenv("BOOK_CHECKPOINTS", str(root / "checkpoints"))
        results = root / "results" / "reliability"
        (results / "pretrain-vanilla-seed0.json").unlink()
        (results / "pretrain_finetune-vanilla-seed0.json").unlink()
        ledger.fault("kill between weights and record (simulated)")
        P.run("pretrain_finetune", "reliability", device="cpu", progress=False)
        diffs, checked = [], 0
        for rid in ("pretrain-vanilla-seed0", "pretrain_finetune-vanilla-seed0"):
            expected = run_outputs(uninterrupted[0], rid)
            checked += len(expected)
            diffs += differences(expected, run_outputs(root, rid), rid)
        ledger.artefacts(checked=checked, lost=len(diffs))
        assert not diffs, diffs


# --------------------------------------------------------------------------------------
class TestAtomicArtefacts:
    """Artefacts are replaced whole, never torn.

    Checkpoints, predictions, per-question details, result records and stored notebooks
    are written to a temporary file and renamed: a reader sees the old file or the new one,
    never a torn one, and a crash leaves nothing that looks finished.
    """

    @pytest.mark.parametrize("kind", ARTEFACTS)
    def test_a_crash_mid_write_leaves_the_previous_version(self, kind, tmp_path, monkeypatch, ledger):
        """The write is torn halfway and the process 'crashes' before the rename: the first
        write leaves no file at all, a later one leaves the previous version intact."""
        monkeypatch.setenv("BOOK_RUNS", str(tmp_path / "runs"))
        path = artefact_path(kind, tmp_path)
        with monkeypatch.context() as crashing:
            crashing.setattr(os, "fsync", crash_while_writing)
            with pytest.raises(SimulatedCrash):
                write_version(kind, path, 0)
        first_left_something = path.exists()
        write_version(kind, path, 0)
        before, value = path.read_bytes(), read_version(kind, path)
        with monkeypatch.context() as crashing:
            crashing.setattr(os, "fsync", crash_while_writing)
            with pytest.raises(SimulatedCrash):
                write_version(kind, path, 1)
        ledger.fault("crash mid-write", 2)
        changed = path.read_bytes() != before or read_version(kind, path) != value
        leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
        ledger.artefacts(checked=2, lost=int(first_left_something) + int(changed))
        assert not first_left_something and not changed and not leftovers

    @pytest.mark.slow
    @pytest.mark.parametrize("kind", ARTEFACTS)
    def test_readers_never_see_a_torn_file_while_the_writer_is_killed(self, kind, tmp_path, monkeypatch,
                                                                      rng, ledger):
        """A child process rewrites the artefact in a loop (alternating two versions) while
        this process reads it as fast as it can, then the child is SIGKILLed at a random
        moment: every read, and the file left behind, is one whole version."""
        expected = []
        for version in (0, 1):
            folder = tmp_path / f"version{version}"
            monkeypatch.setenv("BOOK_RUNS", str(folder / "runs"))
            write_version(kind, artefact_path(kind, folder), version)
            expected.append(read_version(kind, artefact_path(kind, folder)))
        path = artefact_path(kind, tmp_path / "live")
        env = {**process_env(tmp_path), "BOOK_RUNS": str(tmp_path / "live" / "runs")}
        proc = start(["-m", "tests.faults", "rewrite", kind, str(path)], env, tmp_path / "writer.log")
        assert wait_until(path.exists, proc, timeout=120), (tmp_path / "writer.log").read_text()[-2000:]
        reads, torn, flips, last = 0, [], 0, None
        deadline, kill_at = time.monotonic() + 120, None
        while time.monotonic() < deadline and (kill_at is None or time.monotonic() < kill_at):
            reads += 1
            try:
                version = expected.index(read_version(kind, path))
            except Exception as error:  # a torn file: unreadable, or neither version
                torn.append(f"{type(error).__name__}: {str(error)[:120]}")
                continue
            flips += last is not None and version != last
            last = version
            if flips >= 4 and kill_at is None:
                kill_at = time.monotonic() + rng.uniform(0.0, 0.5)
        assert kill(proc) == -signal.SIGKILL, "the writer stopped by itself"
        ledger.fault("SIGKILL of a writer mid-loop")
        try:
            final_ok = read_version(kind, path) in expected
        except Exception:
            final_ok = False
        ledger.artefacts(checked=reads + 1, lost=len(torn) + (not final_ok))
        ledger.notes.update(reads=reads, versions_seen=flips + 1)
        assert flips >= 4, f"the writer wrote too slowly to test anything ({flips} changes seen)"
        assert not torn, f"{len(torn)} of {reads} reads saw a torn file: {torn[:3]}"
        assert final_ok
        if kind == "record":  # a temporary file left by the kill is never listed as a result
            assert [r["run_id"] for r in load_records("smoke", path.parent.parent)] == [path.stem]
        if kind == "weights":  # nor taken for a snapshot
            assert [p.name for p in path.parent.glob("epoch*.safetensors")] == [path.name]


# --------------------------------------------------------------------------------------
def _edit_line(number: int, edit: Callable[[bytes], bytes]) -> Callable[[bytes], bytes]:
    def damage(content: bytes) -> bytes:
        lines = content.split(b"\n")
        lines[number - 1] = edit(lines[number - 1])
        return b"\n".join(lines)
    return damage


def _drop_lines(first: int, last: int) -> Callable[[bytes], bytes]:
    def damage(content: bytes) -> bytes:
        lines = content.split(b"\n")
        return b"\n".join(lines[: first - 1] + lines[last:])
    return damage


def _first_line(content: bytes, predicate: Callable[[str], bool]) -> int:
    return next(i for i, line in enumerate(content.decode("utf-8").split("\n"), 1) if predicate(line))


def _mojibake(content: bytes) -> bytes:
    return content.decode("utf-8").encode("utf-8").decode("latin-1").encode("utf-8")


@dataclass(frozen=True)
class Damage:
    """One way a data file arrives damaged, and what loading must say about it."""

    name: str
    file: str  # wiki, train, dev or test
    damage: Callable[[bytes], bytes] | None  # None: the file is missing
    message: str | Callable[[bytes], str]  # a regular expression (or one made from the original)
    error: bool = True  # False: a warning, and the run goes on


DAMAGE = [
    Damage("CRLF line endings", "dev", lambda b: b.replace(b"\n", b"\r\n"),
           r"birth_dev\.tsv:1: CRLF line endings converted to LF", error=False),
    Damage("rows missing", "dev", _drop_lines(101, 110),
           r"birth_dev\.tsv: SHA-256 differs.*\(490 lines; the reference copy has 500\)", error=False),
    Damage("a byte-order mark", "train", lambda b: b"\xef\xbb\xbf" + b,
           r"birth_places_train\.tsv:1: byte-order mark removed", error=False),
    Damage("tabs replaced by spaces", "dev", lambda b: b.replace(b"\t", b"    "),
           r"birth_dev\.tsv:1: expected exactly one tab, found 0 \(the tab seems to have been replaced by spaces\)"),
    Damage("one tab replaced by spaces", "train", _edit_line(57, lambda s: s.replace(b"\t", b"   ")),
           r"birth_places_train\.tsv:57: expected exactly one tab, found 0"),
    Damage("a row with two tabs", "train", _edit_line(12, lambda s: s + b"\tFrance"),
           r"birth_places_train\.tsv:12: expected exactly one tab, found 2"),
    Damage("invalid UTF-8", "wiki", _edit_line(100, lambda s: s[:20] + b"\xff" + s[20:]),
           r"wiki\.txt:100: not valid UTF-8 \(byte 0xff at column 21\)"),
    Damage("saved as Latin-1", "dev", lambda b: b.decode("utf-8").encode("latin-1", errors="replace"),
           lambda b: rf"birth_dev\.tsv:{_first_line(b, lambda s: any(127 < ord(c) < 256 for c in s))}: "
                     r"not valid UTF-8"),
    Damage("saved as UTF-16", "test", lambda b: b.decode("utf-8").encode("utf-16"),
           r"birth_test_inputs\.tsv:1: not valid UTF-8"),
    Damage("UTF-8 read as Latin-1 and saved again", "train", _mojibake,
           lambda b: rf"birth_places_train\.tsv:{_first_line(b, lambda s: not s.isascii())}: character "
                     r"'[ÂÃ]' \(U\+00C[23]\) is not in the vocabulary"),
    Damage("an empty file", "dev", lambda b: b"", r"birth_dev\.tsv: the file is empty"),
    Damage("the pad character in the corpus", "wiki", _edit_line(7, lambda s: s + D.PAD_CHAR.encode()),
           r"wiki\.txt:7: the corpus contains the reserved character '□' \(U\+25A1\)"),
    Damage("the mask character in the corpus", "wiki", _edit_line(2937, lambda s: D.MASK_CHAR.encode() + s),
           r"wiki\.txt:2937: the corpus contains the reserved character '⁇' \(U\+2047\)"),
    Damage("a blank line inside", "dev", _edit_line(250, lambda s: b"\n" + s),
           r"birth_dev\.tsv:250: empty line \(a row is missing\)"),
    Damage("a download cut mid-row", "dev", lambda b: b.rstrip(b"\n").rsplit(b"\n", 1)[0] + b"\nWhere was Aa",
           r"birth_dev\.tsv:500: expected exactly one tab, found 0"),
    Damage("classic Mac line endings", "dev", lambda b: b.replace(b"\n", b"\r"),
           r"birth_dev\.tsv:1: stray carriage return"),
    Damage("a missing file", "train", None, r"birth_places_train\.tsv is missing"),
    Damage("answers in the question-only file", "test", _edit_line(1, lambda s: s + b"\tParis"),
           r"birth_test_inputs\.tsv:1: expected a question without a tab"),
    Damage("an empty place", "dev", _edit_line(3, lambda s: s.split(b"\t")[0] + b"\t"),
           r"birth_dev\.tsv:3: empty place"),
    Damage("a character wiki.txt never uses", "dev", _edit_line(42, lambda s: s.replace(b"Janne", "Jann☃".encode())),
           r"birth_dev\.tsv:42: character '☃' \(U\+2603\) is not in the vocabulary"),
]


class _TrainingStarted(Exception):
    """Raised in place of training: the damage must be reported before this point."""


def damaged_folder(case: Damage, data_folder: Path, target: Path) -> tuple[Path, str]:
    """A data folder with one damaged file, and the message expected for it."""
    original = (data_folder / D.FILES[case.file]).read_bytes()
    folder = write_files(target, **({} if case.damage is None else {case.file: case.damage(original)}))
    if case.damage is None:
        (folder / D.FILES[case.file]).unlink()
    message = case.message(original) if callable(case.message) else case.message
    return folder, message


class TestDamagedData:
    """Damaged data is reported before training.

    A damaged data file (as circulating copies are, and a few more ways) gives an error or
    a warning naming file and line, before any training starts.
    """

    @pytest.mark.parametrize("case", DAMAGE, ids=[c.name for c in DAMAGE])
    def test_damage_is_reported_before_training(self, case, data_folder, tmp_path, outputs, profiles,
                                                monkeypatch, capsys, ledger):
        """`python -m lib run pretrain_finetune` on the whole data, with training replaced
        by a tripwire: errors exit with status 2 before it, warnings are issued before it."""
        folder, message = damaged_folder(case, data_folder, tmp_path / "data")
        monkeypatch.setenv("BIRTHPLACE_DATA", str(folder))
        trained_after: list[int] = []

        def tripwire(*args, **kwargs):
            trained_after.append(len(caught))
            raise _TrainingStarted

        monkeypatch.setattr(P, "train", tripwire)
        started = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                code = cli.main(["run", "pretrain_finetune", "--profile", "reliability-whole",
                                 "--device", "cpu", "--no-progress"])
            except _TrainingStarted:
                code = None
        ledger.bad_input("damaged data file")
        ledger.notes["seconds"] = round(time.perf_counter() - started, 3)
        if case.error:
            err = capsys.readouterr().err
            ledger.notes.update(reported="error", message=err.strip().replace(f"{folder}{os.sep}", ""))
            assert code == 2 and not trained_after
            assert re.search(message, err), err
            assert not [p for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()]
            assert not [p for p in (tmp_path / "results").rglob("*") if p.is_file()]
        else:
            assert trained_after, "the run stopped although the damage only deserves a warning"
            before_training = [str(w.message) for w in caught[: trained_after[0]]
                               if issubclass(w.category, D.DataWarning)]
            shown = [m for m in before_training if re.search(message, m)]
            ledger.notes.update(reported="warning", message=(shown or [""])[0].replace(f"{folder}{os.sep}", ""))
            assert shown, before_training

    def test_damaged_data_stops_the_process_with_status_2(self, data_folder, tmp_path, ledger):
        """The same as a real process: one line on stderr, exit status 2, nothing written."""
        case = next(c for c in DAMAGE if c.name == "tabs replaced by spaces")
        folder, message = damaged_folder(case, data_folder, tmp_path / "data")
        env = process_env(tmp_path, BIRTHPLACE_DATA=str(folder))
        done = subprocess.run([sys.executable, "-m", "lib", "run", "pretrain_finetune", "--profile", "smoke",
                               "--device", "cpu", "--no-progress"], cwd=REPO, env=env, capture_output=True,
                              text=True, timeout=300)
        ledger.bad_input("damaged data file")
        assert done.returncode == 2
        assert re.search(message, done.stderr) and "Traceback" not in done.stderr, done.stderr
        written = [p for sub in ("results", "checkpoints") for p in (tmp_path / sub).rglob("*") if p.is_file()]
        assert not written, written


# --------------------------------------------------------------------------------------
def _untrusted_loaders() -> dict[str, Callable[[Path, Path], None]]:
    """Every way the project loads weights or training state, given (payload, scratch)."""

    def cli_finetune(payload, scratch):
        code = cli.main(["finetune", "--profile", "smoke", "--device", "cpu", "--no-progress",
                         "--reading-params-path", str(payload), "--writing-params-path", str(scratch / "o")])
        if code != 2:
            raise AssertionError(f"exit status {code}")

    def cli_evaluate(payload, scratch):
        code = cli.main(["evaluate", "--profile", "smoke", "--device", "cpu", "--reading-params-path",
                         str(payload), "--eval-corpus-path", str(D.data_file("dev")),
                         "--outputs-path", str(scratch / "predictions")])
        if code != 2:
            raise AssertionError(f"exit status {code}")

    def train_resume(payload, scratch):
        data = D.load()
        dataset = DS.SpanCorruptionDataset(data.corpus[:16], data.vocab, 32)
        model = GPT(GPTConfig(vocab_size=len(data.vocab), block_size=32, n_layer=1, n_head=1, n_embd=8))
        lib.core.train.loop.train(model, dataset, TrainConfig(epochs=1, batch_size=8, learning_rate=1e-3),
                        seed=0, state_path=payload, progress=False)

    def pipeline_resume(payload, scratch):
        planted = RunPaths.of("smoke", "finetune-vanilla-seed0").state
        planted.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(payload, planted)
        P.run("finetune", "smoke", device="cpu", progress=False)

    def pipeline_pretrained(payload, scratch):
        paths = RunPaths.of("smoke", "pretrain-vanilla-seed0")
        paths.weights.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(payload, paths.weights)
        write_record({"run_id": "pretrain-vanilla-seed0", "kind": "pretrain", "profile": "smoke",
                      "metrics": {}})
        P.run("pretrain_finetune", "smoke", device="cpu", progress=False)

    return {
        "load_tensors": lambda payload, scratch: load_tensors(payload),
        "load_weights": lambda payload, scratch: load_weights(payload),
        "pipeline.load_model": lambda payload, scratch: P.load_model(payload),
        "CLI finetune --reading-params-path": cli_finetune,
        "CLI evaluate --reading-params-path": cli_evaluate,
        "training resumed from state_path": train_resume,
        "pipeline resuming an interrupted run": pipeline_resume,
        "pipeline reading pretrained weights": pipeline_pretrained,
    }


LOADERS = _untrusted_loaders()
PAYLOAD_NAMES = {"load_tensors": "model.safetensors", "load_weights": "vanilla.pretrain.params",
                 "pipeline.load_model": "model.safetensors",
                 "CLI finetune --reading-params-path": "vanilla.pretrain.params",
                 "CLI evaluate --reading-params-path": "vanilla.finetune.params",
                 "training resumed from state_path": "model.params.state",
                 "pipeline resuming an interrupted run": "state.safetensors",
                 "pipeline reading pretrained weights": "model.safetensors"}
UNPICKLERS = ("torch.load", "pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.load",
              "marshal.loads", "dill", "cloudpickle", "joblib", "shelve", "eval", "exec")


def _bad_parameters() -> list[tuple[str, Callable[[], object], str]]:
    """(what, call, expected message) for parameters a notebook, the CLI or a profile may get."""
    cases = [
        ("notebook: unknown profile", lambda: validate_parameters("finetune", profile="tiny"),
         r"invalid parameter profile='tiny': choose one of"),
        ("notebook: profile of the wrong type", lambda: validate_parameters("finetune", profile=None),
         r"invalid parameter profile=None"),
        ("notebook: unknown variant", lambda: validate_parameters("finetune", profile="smoke", variant="performer"),
         r"invalid parameter variant='performer': choose one of .*vanilla"),
        ("notebook: negative seed", lambda: validate_parameters("finetune", profile="smoke", seed=-1),
         r"invalid parameter seed=-1: a seed is a non-negative integer"),
        ("notebook: seed as text", lambda: validate_parameters("finetune", profile="smoke", seed="0"),
         r"invalid parameter seed='0'"),
        ("notebook: fractional seed", lambda: validate_parameters("finetune", profile="smoke", seed=1.5),
         r"invalid parameter seed=1.5"),
        ("notebook: boolean seed", lambda: validate_parameters("finetune", profile="smoke", seed=True),
         r"invalid parameter seed=True"),
        ("notebook: unknown device", lambda: validate_parameters("finetune", profile="smoke", device="tpu"),
         r"invalid parameter device='tpu'"),
        ("notebook: device of the wrong type", lambda: validate_parameters("finetune", profile="smoke", device=0),
         r"invalid parameter device=0"),
        ("notebook: flag as text", lambda: validate_parameters("finetune", profile="smoke", pretrained="yes"),
         r"invalid parameter pretrained='yes': use True or False"),
        ("CLI: fractional seed", lambda: cli.main(["run", "finetune", "--seed", "1.5"]),
         r"seed must be a non-negative integer, got '1\.5'"),
        ("CLI: negative seed in a list", lambda: cli.main(["experiments", "--profile", "smoke", "--seeds", "0", "-1"]),
         r"seed must be a non-negative integer, got -1"),
        ("CLI: unknown variant in a list", lambda: cli.main(["experiments", "--profile", "smoke", "--variants",
                                                             "vanilla", "performer"]),
         r"unknown attention variant 'performer'"),
        ("CLI: missing output path", lambda: cli.main(["pretrain", "--profile", "smoke"]),
         r"the following arguments are required: --writing-params-path"),
        ("gpu-run: unknown profile", lambda: gpu_run.main(["--profile", "tiny"]), r"invalid choice: 'tiny'"),
        ("gpu-run: zero jobs", lambda: gpu_run.main(["--profile", "smoke", "--jobs", "0"]),
         r"--jobs must be positive"),
        ("gpu-run: negative jobs", lambda: gpu_run.main(["--profile", "smoke", "--jobs", "-2"]),
         r"--jobs must be positive"),
        ("gpu-run: jobs as a word", lambda: gpu_run.main(["--jobs", "two"]), r"invalid int value: 'two'"),
        ("gpu-run: negative seed", lambda: gpu_run.main(["--profile", "smoke", "--seeds", "-1"]),
         r"seeds must be non-negative integers"),
        ("gpu-run: unknown variant", lambda: gpu_run.main(["--profile", "smoke", "--variants", "performer"]),
         r"unknown variants \['performer'\]"),
        ("gpu-run: unknown device", lambda: gpu_run.main(["--profile", "smoke", "--device", "tpu"]),
         r"unknown device 'tpu'"),
        ("gpu-run: no time at all", lambda: gpu_run.main(["--profile", "smoke", "--deadline", "0"]),
         r"--deadline must be a positive number of seconds"),
        ("profile: zero epochs", lambda: TrainConfig(epochs=0, batch_size=8, learning_rate=1e-3),
         r"epochs must be a positive integer, got 0"),
        ("profile: negative batch size", lambda: TrainConfig(epochs=1, batch_size=-8, learning_rate=1e-3),
         r"batch_size must be a positive integer, got -8"),
        ("profile: fractional epochs", lambda: TrainConfig(epochs=2.5, batch_size=8, learning_rate=1e-3),
         r"epochs must be a positive integer, got 2\.5"),
        ("profile: epochs as text", lambda: TrainConfig(epochs="10", batch_size=8, learning_rate=1e-3),
         r"epochs must be a positive integer, got '10'"),
        ("profile: zero learning rate", lambda: TrainConfig(epochs=1, batch_size=8, learning_rate=0.0),
         r"learning_rate must be positive, got 0\.0"),
        ("profile: zero layers", lambda: get_profile("smoke").with_changes(name="x", n_layer=0),
         r"profile 'x': n_layer must be a positive integer, got 0"),
        ("profile: negative block size", lambda: get_profile("smoke").with_changes(name="x", block_size=-128),
         r"block_size must be a positive integer, got -128"),
        ("profile: heads that do not divide the width",
         lambda: get_profile("smoke").with_changes(name="x", n_embd=30, n_head=4),
         r"n_embd=30 is not divisible by n_head=4"),
        ("profile: an empty mini world", lambda: get_profile("smoke").with_changes(name="x", mini_world=(0, 20, 0)),
         r"mini_world must be \(train people > 0, dev people > 0, seed >= 0\), got \(0, 20, 0\)"),
        ("profile: replacing a built-in one", lambda: register_profile(get_profile("smoke")),
         r"profile 'smoke' is built in and cannot be replaced"),
    ]
    return cases


BAD_PARAMETERS = _bad_parameters()


class TestUntrustedFiles:
    """Checkpoints never run code; parameters are checked first.

    Loading a checkpoint never runs code, whatever file sits under a checkpoint's name;
    parameters from notebooks, the command line and profiles are checked, with a clear
    message, before any work starts.
    """

    @pytest.mark.parametrize("fmt", PAYLOAD_FORMATS)
    def test_the_crafted_files_do_run_code_when_unpickled(self, fmt, tmp_path, ledger):
        """The control: loading the payload the unsafe way does write the marker file."""
        marker = tmp_path / "marker"
        unpickle(write_payload(tmp_path / "payload", marker, fmt), fmt)
        assert marker.read_text() == "code ran"

    @pytest.mark.parametrize("fmt", PAYLOAD_FORMATS)
    @pytest.mark.parametrize("loader", list(LOADERS))
    def test_no_loader_runs_code_from_a_checkpoint(self, loader, fmt, tmp_path, outputs, capsys, ledger):
        """A file that runs code when unpickled, under a checkpoint's name, is refused."""
        marker = tmp_path / "marker"
        payload = write_payload(tmp_path / "untrusted" / PAYLOAD_NAMES[loader], marker, fmt)
        ledger.bad_input("code-running checkpoint")
        try:
            LOADERS[loader](payload, tmp_path)
        except CheckpointError as error:
            text = str(error)
        else:
            text = capsys.readouterr().err  # the CLI's one-line error
        ledger.notes.update(message=text.strip().replace(f"{payload.parent}{os.sep}", "").replace(
            f"{tmp_path}{os.sep}", ""))
        assert "refusing to load it" in text
        assert not marker.exists(), "loading the checkpoint ran its code"

    def test_lib_never_unpickles(self):
        """No module of `lib` calls an unpickler or evaluates text: safetensors is the only way in."""
        found = []
        for module in sorted((REPO / "lib").glob("*.py")):
            for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Call):
                    name = ast.unparse(node.func)
                    if name in UNPICKLERS or name.split(".")[0] in UNPICKLERS:
                        found.append(f"{module.name}:{node.lineno}: {name}")
                if isinstance(node, ast.Import | ast.ImportFrom):
                    names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                    found += [f"{module.name}:{node.lineno}: import {n}" for n in names
                              if n.split(".")[0] in ("pickle", "marshal", "dill", "cloudpickle", "joblib", "shelve")]
        assert not found, found

    @pytest.mark.parametrize(("what", "call", "message"), BAD_PARAMETERS, ids=[c[0] for c in BAD_PARAMETERS])
    def test_bad_parameters_are_refused_with_a_clear_message(self, what, call, message, outputs, capsys,
                                                             monkeypatch, ledger):
        """Commands answer with a usage error (status 2, one message on stderr); notebooks and
        profiles raise a ValueError that names the parameter. Nothing runs before that."""

        def tripwire(*args, **kwargs):
            raise _TrainingStarted(f"work started although {what} should have been refused")

        for owner, name in ((P, "run"), (P, "run_london"), (gpu_run, "Matrix"), (lib.core.train.loop, "train")):
            monkeypatch.setattr(owner, name, tripwire)
        ledger.bad_input("bad parameter")
        command = what.startswith(("CLI", "gpu-run"))
        try:
            outcome = call()
        except SystemExit as exit_:  # argparse: usage error on stderr, status 2
            assert command and exit_.code == 2, exit_.code
            text = capsys.readouterr().err
        except ValueError as error:
            assert not command, f"a command ended with a traceback: {error!r}"
            text = str(error)
        else:
            assert command and outcome == 2, f"accepted: {outcome!r}"
            text = capsys.readouterr().err
        ledger.notes.update(message=text.strip().splitlines()[-1] if text.strip() else "")
        assert re.search(message, text), text
        assert not (outputs / "results").exists() and not (outputs / "checkpoints").exists()


# --------------------------------------------------------------------------------------
class TestNumericalFaults:
    """A non-finite loss stops training at a known step.

    A NaN or infinite loss stops training with a message naming the step; the last good
    checkpoint is kept, and resuming from it ends as the uninterrupted run.
    """

    @pytest.mark.parametrize("bad", ["nan", "inf"])
    def test_a_nonfinite_loss_stops_training_and_the_last_checkpoint_resumes(
            self, bad, reference_pretraining, tmp_path, profiles, monkeypatch, capsys, rng, ledger):
        """`python -m lib pretrain` gets a NaN or infinite loss at a random step after its
        second epoch: it stops naming the step, keeps the previous epoch's checkpoint, and
        the same command then ends with the reference run's weights and log."""
        reference = read_log(log_of(reference_pretraining))
        per_epoch = max(r["step"] for r in reference if r["epoch"] == 1)
        epochs = reference[-1]["epoch"]
        bad_step = rng.randrange(2 * per_epoch, epochs * per_epoch)
        epoch = bad_step // per_epoch + 1
        params = tmp_path / "model.params"
        real_train = lib.core.train.loop.train

        def inject(step, loss):
            return loss * float(bad) if step == bad_step else loss

        monkeypatch.setattr(lib.core.train.loop, "train", functools.partial(real_train, callbacks=[ReplaceLoss(inject)]))
        code = cli.main([*PRETRAIN_ARGS, str(params)])
        err = capsys.readouterr().err
        ledger.fault(f"{bad} loss")
        ledger.notes.update(bad_step=bad_step)
        assert code == 1, err
        assert f"at step {bad_step} (epoch {epoch})" in err and str(state_of(params)) in err, err
        assert not params.exists()
        tensors, meta = load_tensors(state_of(params))
        assert meta["epoch"] == epoch - 1 and all(torch.isfinite(t).all() for t in tensors.values())
        assert max(r["step"] for r in read_log(log_of(params))) == (epoch - 1) * per_epoch
        monkeypatch.setattr(lib.core.train.loop, "train", real_train)
        assert cli.main([*PRETRAIN_ARGS, str(params)]) == 0
        diffs = same_weights(reference_pretraining, params)
        if without_time(read_log(log_of(params))) != without_time(reference):
            diffs.append("metrics log differs")
        ledger.artefacts(checked=2, lost=len(diffs))
        assert not diffs


# --------------------------------------------------------------------------------------
@pytest.mark.slow
class TestOneProcessPerRun:
    """A run trains in one process at a time.

    A second process asked for a run that another process is training stops at once with
    a message naming that process, and touches none of the run's files; a run whose process
    was killed leaves no lock behind, so the next process resumes it.
    """

    RUN_ARGS = ["--profile", "reliability", "--device", "cpu", "--no-progress"]

    def test_a_second_process_is_refused_while_the_first_trains(
            self, uninterrupted, tmp_path, profiles, outputs, capsys, ledger):
        """While `python -m lib run pretrain` trains, the same command in another process
        exits with status 1 naming the first process; the first then ends exactly as the
        uninterrupted run."""
        rid = "pretrain-vanilla-seed0"
        log = tmp_path / "results" / "reliability" / f"{rid}.metrics.jsonl"
        first = start(["-m", "lib", "run", "pretrain", *self.RUN_ARGS], process_env(tmp_path),
                      tmp_path / "first.log")
        try:
            assert wait_until(lambda: logged_epoch(log) >= 1, first), "the first run never trained"
            ledger.bad_input("a second process for a run in training")
            code = cli.main(["run", "pretrain", *self.RUN_ARGS])
            err = capsys.readouterr().err
            still_training = first.poll() is None
            assert first.wait(timeout=600) == 0, (tmp_path / "first.log").read_text()[-2000:]
        finally:
            kill(first)
        assert code == 1 and f"process {first.pid} " in err and rid in err, err
        assert still_training, "the first run ended before the second asked: nothing was tested"
        assert not RunPaths.of("reliability", rid).lock.exists(), "a finished run left its lock"
        diffs = differences(run_outputs(uninterrupted[0], rid), run_outputs(tmp_path, rid), rid)
        ledger.artefacts(checked=1, lost=len(diffs))
        assert not diffs

    def test_a_killed_run_leaves_no_lock_behind(self, uninterrupted, tmp_path, profiles, outputs,
                                                ledger):
        """`python -m lib run pretrain` is SIGKILLed while it trains; the same command run
        next is not refused, resumes, and ends exactly as the uninterrupted run."""
        rid = "pretrain-vanilla-seed0"
        log = tmp_path / "results" / "reliability" / f"{rid}.metrics.jsonl"
        proc = start(["-m", "lib", "run", "pretrain", *self.RUN_ARGS], process_env(tmp_path),
                     tmp_path / "killed.log")
        assert wait_until(lambda: logged_epoch(log) >= 1, proc), "the run never trained"
        assert kill(proc) == -signal.SIGKILL, "the run ended before the kill"
        ledger.fault("SIGKILL of a run holding its lock")
        assert RunPaths.of("reliability", rid).lock.exists()  # left by the kill, unlocked
        assert cli.main(["run", "pretrain", *self.RUN_ARGS]) == 0
        assert not RunPaths.of("reliability", rid).lock.exists()
        diffs = differences(run_outputs(uninterrupted[0], rid), run_outputs(tmp_path, rid), rid)
        ledger.artefacts(checked=1, lost=len(diffs))
        assert not diffs


# --------------------------------------------------------------------------------------
@pytest.mark.slow
class TestDeterminism:
    """Two CPU runs with one seed are bit-identical.

    Two CPU runs with one seed give bit-identical losses, weights, predictions and
    log-probabilities, end to end through the pipeline.
    """

    def test_two_runs_with_one_seed_are_bit_identical(self, uninterrupted, ledger):
        """The matrix (London, pretraining, pretrain + finetune, finetune) run twice, once in
        the test's process and once by the GPU script's processes: every weight, snapshot,
        metrics log, prediction, log-probability and record metric is equal."""
        first, second = uninterrupted
        diffs, compared = [], 0
        for rid in RUNS:
            expected = run_outputs(first, rid)
            compared += len(expected)
            diffs += differences(expected, run_outputs(second, rid), rid)
        ledger.notes.update(compared=compared)
        assert compared >= 15 and not diffs, diffs
        losses = [r["loss"] for r in read_log(first / "results/reliability/pretrain-vanilla-seed0.metrics.jsonl")]
        assert len(losses) > 10 and len(set(losses)) > 1
