"""Fault injection for the reliability tests: processes to kill, writes to crash, files to damage.

Also a ledger of what each test did (faults injected, bad inputs tried, artefacts checked
after a fault and how many were lost or torn). With `BOOK_RELIABILITY_LEDGER` set, the
ledger is written to that JSON file, which `python -m tools.reliability` turns into the
record the reliability appendix reads.

Run as a module, it is the writer the atomic-write tests kill:
`python -m tests.faults rewrite KIND PATH` rewrites one artefact with the project's own
writer, alternating two versions, until it is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from lib.core.train.config import TrainConfig
from lib.runs.profiles import Profile, get_profile

REPO = Path(__file__).resolve().parent.parent
LEDGER_ENV = "BOOK_RELIABILITY_LEDGER"


# --------------------------------------------------------------------------------------
# A profile with room to interrupt: more epochs and a checkpoint after each one
# --------------------------------------------------------------------------------------
def reliability_profile() -> Profile:
    """`smoke`, with one layer, 10 pretraining epochs and a checkpoint after every epoch.

    Smoke pretraining is 3 epochs of 4 steps, too short to kill at a random point after
    its first checkpoint; this profile keeps its minutes-not-hours cost and adds room.
    """
    quick = {"clamp_schedule": True, "warmup_tokens": 0, "checkpoint_every": 1,
             "learning_rate": 3e-3, "batch_size": 8}
    return get_profile("smoke").with_changes(
        name="reliability",
        description="the reliability tests' profile: smoke with room to interrupt",
        n_layer=1,
        pretrain=TrainConfig(epochs=10, final_epochs=10, length_grouped=True, snapshots=2, **quick),
        finetune_scratch=TrainConfig(epochs=3, final_epochs=3, **quick),
        finetune_pretrained=TrainConfig(epochs=2, final_epochs=2, **quick),
        mini_world=(40, 4, 0),
    )


def whole_world_profile() -> Profile:
    """`smoke` on the whole data: every row of every file is used, so every bad row matters."""
    return get_profile("smoke").with_changes(name="reliability-whole", mini_world=None,
                                             description="smoke on the whole data")


def process_env(root: Path, **extra: str) -> dict[str, str]:
    """Environment for a child process: outputs under `root`, the test profiles known by name."""
    profiles = root / "profiles.json"
    root.mkdir(parents=True, exist_ok=True)
    profiles.write_text(json.dumps([reliability_profile().to_dict()]), encoding="utf-8")
    return {**os.environ, "BOOK_RESULTS": str(root / "results"),
            "BOOK_CHECKPOINTS": str(root / "checkpoints"), "BOOK_EXTRA_PROFILES": str(profiles),
            "TQDM_DISABLE": "1", "PYTHONPATH": str(REPO), **extra}


# --------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------
def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `python ARGS` in its own process group (so a kill reaches its children too)."""
    handle = open(log, "wb")  # noqa: SIM115 - closed by the caller's wait()
    return subprocess.Popen([sys.executable, *args], cwd=REPO, env=env, stdout=handle,
                            stderr=subprocess.STDOUT, start_new_session=True)


def kill(proc: subprocess.Popen) -> int:
    """SIGKILL the whole process group of `proc`, as a power cut would; return its status."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return proc.wait(timeout=60)


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen | None = None,
               timeout: float = 300.0, poll: float = 0.005) -> bool:
    """Poll `condition` until it holds (True), or `proc` exits or time runs out (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc is not None and proc.poll() is not None:
            return condition()
        time.sleep(poll)
    return False


# --------------------------------------------------------------------------------------
# The ledger
# --------------------------------------------------------------------------------------
@dataclass
class Ledger:
    """What one test did: faults injected, bad inputs tried, artefacts checked and lost."""

    faults: Counter = field(default_factory=Counter)
    bad_inputs: Counter = field(default_factory=Counter)
    checked: int = 0
    lost: int = 0
    notes: dict = field(default_factory=dict)

    def fault(self, kind: str, n: int = 1) -> None:
        self.faults[kind] += n

    def bad_input(self, kind: str, n: int = 1) -> None:
        self.bad_inputs[kind] += n

    def artefacts(self, checked: int, lost: int) -> None:
        """Count artefacts compared after a fault; `lost` are those missing, torn or changed."""
        self.checked += checked
        self.lost += lost

    def to_dict(self) -> dict:
        return {"faults": dict(self.faults), "bad_inputs": dict(self.bad_inputs),
                "checked": self.checked, "lost": self.lost, "notes": self.notes}


def save_ledgers(ledgers: dict[str, Ledger]) -> None:
    """Merge these tests' ledgers into the file named by `$BOOK_RELIABILITY_LEDGER`, if set."""
    target = os.environ.get(LEDGER_ENV)
    if not target or not ledgers:
        return
    path = Path(target)
    merged = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    merged.update({nodeid: ledger.to_dict() for nodeid, ledger in ledgers.items()})
    path.write_text(json.dumps(merged, indent=1, sort_keys=True), encoding="utf-8")


# --------------------------------------------------------------------------------------
# Crashing a write
# --------------------------------------------------------------------------------------
class SimulatedCrash(OSError):
    """Raised where a real crash would have stopped the process."""


def crash_while_writing(fd: int) -> None:
    """Stands in for `os.fsync`: tear the file just written to half its size, then crash."""
    size = os.fstat(fd).st_size
    os.ftruncate(fd, size // 2)
    raise SimulatedCrash(f"simulated crash after writing {size // 2} of {size} bytes")


# --------------------------------------------------------------------------------------
# Artefacts in two versions, written by the project's own writers
# --------------------------------------------------------------------------------------
ARTEFACTS = ("weights", "record", "predictions", "details", "stored notebook")


def artefact_path(kind: str, root: Path) -> Path:
    """Where the tests put an artefact of `kind` (named as the pipeline names it)."""
    return {
        "weights": root / "checkpoints" / "snapshots" / "epoch0001.safetensors",
        "record": root / "results" / "smoke" / "finetune-vanilla-seed0.json",
        "predictions": root / "results" / "smoke" / "finetune-vanilla-seed0.predictions.txt",
        "details": root / "results" / "smoke" / "finetune-vanilla-seed0.details.json",
        "stored notebook": root / "runs" / "smoke" / "london.ipynb",
    }[kind]


def _model(version: int):
    from lib.core.model import GPT, GPTConfig

    torch.manual_seed(version)
    return GPT(GPTConfig(vocab_size=64, block_size=64, n_layer=2, n_head=2, n_embd=128))


def _notebook(version: int):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# London baseline"),
                nbformat.v4.new_code_cell("print('version')")]
    nb.cells[1].outputs = [nbformat.v4.new_output(
        "stream", name="stdout", text="".join(f"version {version} line {i}\n" for i in range(30000)))]
    return nb


def write_version(kind: str, path: Path, version: int) -> None:
    """Write version 0 or 1 of an artefact with the writer the project uses for it."""
    if kind == "weights":
        from lib.core.checkpoint import save_weights

        model = _model(version)
        save_weights(path, model, {"config": model.config.to_dict(), "version": version})
    elif kind == "record":
        from lib.runs.records import write_record

        write_record({"run_id": path.stem, "kind": "finetune", "profile": path.parent.name,
                      "metrics": {"version": version}, "padding": [version] * 100_000},
                     root=path.parent.parent)
    elif kind == "predictions":
        from lib.core.evaluate import write_predictions

        write_predictions(path, [f"Place {version}.{i}" for i in range(50_000)])
    elif kind == "details":
        from lib.core.atomic import atomic_write_json

        atomic_write_json(path, {"dev": [{"name": f"N{i}", "prediction": f"P{version}"}
                                         for i in range(20_000)]})
    elif kind == "stored notebook":
        _store_notebook(path, version)
    else:
        raise ValueError(f"unknown artefact kind {kind!r}")


def _store_notebook(path: Path, version: int) -> None:
    """Store a run notebook through `lib.runs.experiments.execute`, with papermill's execution
    replaced by writing a ready notebook (the write under test is the storing, not the run)."""
    import nbformat
    import papermill

    from lib.runs import experiments
    from lib.runs.matrix import Run

    def fake_execute(template, out, **_):
        nbformat.write(_notebook(version), out)

    if experiments.stored_notebook(path.parent.name, "london") != path:
        raise ValueError(f"set BOOK_RUNS={path.parent.parent} to store notebooks at {path}")
    real, papermill.execute_notebook = papermill.execute_notebook, fake_execute
    try:
        experiments.execute(Run("london"), path.parent.name, device="cpu")
    finally:
        papermill.execute_notebook = real


def read_version(kind: str, path: Path) -> object:
    """Read an artefact with the reader the project uses for it (raises if it is torn)."""
    if kind == "weights":
        from lib.core.checkpoint import load_weights

        tensors, meta = load_weights(path)
        digest = hashlib.sha256()
        for key in sorted(tensors):
            digest.update(key.encode() + tensors[key].numpy().tobytes())
        return meta["version"], digest.hexdigest()
    if kind == "record":
        from lib.runs.records import read_record

        return read_record(path)
    if kind == "predictions":
        from lib.core.evaluate import read_predictions

        return read_predictions(path)
    if kind == "details":
        return json.loads(path.read_text(encoding="utf-8"))
    if kind == "stored notebook":
        import nbformat

        nb = nbformat.read(path, as_version=4)
        return nb.cells[0].source, nb.cells[1].outputs[0]["text"]
    raise ValueError(f"unknown artefact kind {kind!r}")


def rewrite_forever(kind: str, path: Path) -> None:
    """Alternate versions 0 and 1 of the artefact until killed."""
    version = 0
    while True:
        write_version(kind, path, version)
        version = 1 - version


# --------------------------------------------------------------------------------------
# Untrusted files
# --------------------------------------------------------------------------------------
class Payload:
    """Unpickling this object runs code: it writes the file `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('code ran')",)


PAYLOAD_FORMATS = ("pickle", "torch.save")


def write_payload(path: Path, marker: Path, fmt: str) -> Path:
    """A file that runs code when unpickled, as a raw pickle or a `torch.save` archive."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"model.tok_emb.weight": Payload(marker)}
    if fmt == "pickle":
        path.write_bytes(pickle.dumps(content))
    elif fmt == "torch.save":
        torch.save(content, path)
    else:
        raise ValueError(f"unknown payload format {fmt!r}")
    return path


def unpickle(path: Path, fmt: str) -> None:
    """Load the file the unsafe way (what the project must never do)."""
    if fmt == "pickle":
        pickle.loads(path.read_bytes())  # noqa: S301 - the point of the control
    else:
        torch.load(path, weights_only=False)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "rewrite":
        raise SystemExit("usage: python -m tests.faults rewrite KIND PATH")
    rewrite_forever(sys.argv[2], Path(sys.argv[3]))
