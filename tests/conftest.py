"""Shared fixtures: the real data (from BIRTHPLACE_DATA) and a scratch results folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from lib.core import data as D

REPO = Path(__file__).resolve().parent.parent
# The same default as the Makefile: data/ when it holds the files, else the shared copy.
if "BIRTHPLACE_DATA" not in os.environ and not (REPO / "data" / "wiki.txt").is_file():
    os.environ["BIRTHPLACE_DATA"] = str(REPO.parent / "shared" / "data" / "birthplaces")


@pytest.fixture(scope="session")
def data_folder() -> Path:
    folder = D.data_dir()
    if not (folder / "wiki.txt").is_file():
        pytest.fail(f"the data files are not in {folder}; set BIRTHPLACE_DATA (see README)")
    return folder


@pytest.fixture(scope="session")
def real_data(data_folder) -> D.BirthplaceData:
    return D.load(data_folder)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: one thread is faster and does not fight other processes for cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def scratch(tmp_path, monkeypatch) -> Path:
    """Results and checkpoints go to a temporary folder, never into the repository."""
    monkeypatch.setenv("BOOK_RESULTS", str(tmp_path / "results"))
    monkeypatch.setenv("BOOK_CHECKPOINTS", str(tmp_path / "checkpoints"))
    return tmp_path


@pytest.fixture(scope="session")
def smoke_matrix(tmp_path_factory) -> Path:
    """The smoke experiment matrix run once through papermill into a scratch folder (its
    results/, checkpoints/ and runs/); shared by the notebook and gpu-run checks. Tests
    that change files copy it first."""
    from lib.runs.experiments import run_matrix

    root = tmp_path_factory.mktemp("smoke-matrix")
    with pytest.MonkeyPatch.context() as mp:
        for key, sub in (("BOOK_RESULTS", "results"), ("BOOK_CHECKPOINTS", "checkpoints"),
                         ("BOOK_RUNS", "runs")):
            mp.setenv(key, str(root / sub))
        statuses = run_matrix("smoke", log=lambda line: None)
    (root / "statuses.json").write_text(json.dumps(statuses))
    return root


def write_files(folder: Path, **texts: str | bytes) -> Path:
    """A data folder whose files are the reference copies except those given here."""
    folder.mkdir(parents=True, exist_ok=True)
    source = D.data_dir()
    for kind, name in D.FILES.items():
        content = texts.get(kind)
        if content is None:
            (folder / name).write_bytes((source / name).read_bytes())
        elif isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            (folder / name).write_text(content, encoding="utf-8")
    return folder


os.environ.setdefault("TQDM_DISABLE", "1")
