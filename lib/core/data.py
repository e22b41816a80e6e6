"""The birthplace data: reading, validating, the shared vocabulary, and the worlds of people.

Files are read from the folder named by the environment variable `BIRTHPLACE_DATA`
(default `data/`). Damaged copies of these files circulate, so loading checks them
before any training starts: a bad row is an error naming file and line, a checksum
mismatch is a loud warning that results are not comparable with published figures.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

PAD_CHAR = "\u25a1"  # □, id 0
MASK_CHAR = "\u2047"  # ⁇, id 1
PAD_ID, MASK_ID = 0, 1


def prefix_window(block_size: int) -> int:
    """The longest document prefix span corruption ever shows: 7/8 of the block (the classic
    exercise's rule), which the probes and the essays also use."""
    return int(block_size * 7 / 8)

FILES = {
    "wiki": "wiki.txt",
    "train": "birth_places_train.tsv",
    "dev": "birth_dev.tsv",
    "test": "birth_test_inputs.tsv",
}
# The reference copies (see the data folder's README); other copies may be damaged.
CHECKSUMS = {
    "wiki.txt": "823bb536fca77c8b5a15b34b0dead6355d0cf1f806e822464bca28806c2fd055",
    "birth_places_train.tsv": "02364dfca78e23d2583a19f03a2d8cddd90ee3e1a3795ddec7f0addadea30b0d",
    "birth_dev.tsv": "101a56073eba0db9aad5e2aaf1aa9bf8bdae966ae3aaed8fc8cda5edfa7856da",
    "birth_test_inputs.tsv": "5ccd3b2a1682e0daf90d59488aef8805ef21b9d35795cc3bdabdea79d293aa1f",
}
# Lines of the reference copies: a damaged copy that lost rows says how many in its warning.
REFERENCE_LINES = {"wiki.txt": 2937, "birth_places_train.tsv": 2000, "birth_dev.tsv": 500,
                   "birth_test_inputs.tsv": 437}
REPO_ROOT = Path(__file__).resolve().parents[2]
QUESTION_RE = re.compile(r"^Where was (?P<name>\S.*\S|\S) born\?$")
TEXT_MODES = ("unicode", "faithful")


class DataError(ValueError):
    """A data file is missing or malformed; the message names the file and line."""


class DataWarning(UserWarning):
    """A data file differs from the reference copy; results may not be comparable."""


SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "birthplaces"


def default_data_dir() -> Path:
    """`data/` when it holds the files, else the shared copy beside the clone (as the Makefile).

    So `jupyter-book build .` or a notebook started by hand finds the data without
    `$BIRTHPLACE_DATA`, exactly where `make` would look.
    """
    local = REPO_ROOT / "data"
    if not (local / FILES["wiki"]).is_file() and (SHARED_DATA / FILES["wiki"]).is_file():
        return SHARED_DATA
    return Path("data")


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The data folder: `path`, else `$BIRTHPLACE_DATA`, else `default_data_dir()`.

    A relative path that does not exist from the working directory is taken relative to
    the repository root, so chapters (which execute inside `book/...`) find the same files.
    """
    if path is None and "BIRTHPLACE_DATA" not in os.environ:
        path = default_data_dir()
    root = Path(path if path is not None else os.environ["BIRTHPLACE_DATA"])
    if not root.is_absolute() and not root.exists() and (REPO_ROOT / root).exists():
        return REPO_ROOT / root
    return root


def data_file(kind: str, folder: str | os.PathLike | None = None) -> Path:
    """Path of one of the four files (`wiki`, `train`, `dev`, `test`); checks it exists."""
    if kind not in FILES:
        raise ValueError(f"unknown data file {kind!r}; choose one of {', '.join(FILES)}")
    root = data_dir(folder)
    hint = (
        "Set the environment variable BIRTHPLACE_DATA to the folder holding "
        f"{', '.join(FILES.values())} (for example "
        "`export BIRTHPLACE_DATA=../shared/data/birthplaces`), or copy them into data/."
    )
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist. {hint}")
    path = root / FILES[kind]
    if not path.is_file():
        raise DataError(f"data file {path} is missing. {hint}")
    return path


def sha256(path: str | os.PathLike) -> str:
    """A file's SHA-256 digest, to compare with the reference checksums of the data."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass(frozen=True)
class FileCheck:
    """One data file compared with its reference copy: `ok`, `DIFFERS` or `MISSING`."""

    name: str
    status: str
    detail: str = ""


def check_folder(folder: str | os.PathLike) -> list[FileCheck]:
    """Compare the four files of `folder` with the reference copies' SHA-256.

    Loading only warns about a differing copy; this says up front, file by file, whether a
    newcomer's copies are the ones the book's figures were computed from.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data folder {folder} does not exist")
    checks = []
    for name in FILES.values():
        path = folder / name
        if not path.is_file():
            checks.append(FileCheck(name, "MISSING"))
            continue
        digest = sha256(path)
        if digest == CHECKSUMS[name]:
            checks.append(FileCheck(name, "ok"))
            continue
        raw = path.read_bytes()
        lines = len(raw.rstrip(b"\r\n").split(b"\n")) if raw.strip() else 0
        checks.append(FileCheck(name, "DIFFERS", (
            f"SHA-256 {digest[:12]}... instead of {CHECKSUMS[name][:12]}..., {lines} lines "
            f"(the reference copy has {REFERENCE_LINES[name]})")))
    return checks


def read_lines(path: str | os.PathLike) -> list[str]:
    """The lines of a UTF-8 text file, validated, with trailing empty lines dropped.

    Decisions: a BOM is removed with a warning; CRLF line endings are accepted with a
    warning (the text is the same, but the file is not the reference copy); invalid
    UTF-8, an empty file, or an empty line before the last row is an error.
    """
    path = Path(path)
    raw = path.read_bytes()
    expected = CHECKSUMS.get(path.name)
    if expected is not None and hashlib.sha256(raw).hexdigest() != expected:
        count = len(raw.rstrip(b"\r\n").split(b"\n")) if raw.strip() else 0
        warnings.warn(
            f"{path}: SHA-256 differs from the reference copy of {path.name}; the file may be "
            "damaged or edited, and results computed from it are not comparable with the "
            f"book's or published figures ({count} lines; the reference copy has "
            f"{REFERENCE_LINES[path.name]}).",
            DataWarning,
            stacklevel=2,
        )
    if raw.startswith(b"\xef\xbb\xbf"):
        warnings.warn(f"{path}:1: byte-order mark removed", DataWarning, stacklevel=2)
        raw = raw[3:]
    byte_lines = raw.split(b"\n")
    lines = []
    crlf_line = None
    for number, chunk in enumerate(byte_lines, start=1):
        try:
            line = chunk.decode("utf-8")
        except UnicodeDecodeError as error:
            raise DataError(
                f"{path}:{number}: not valid UTF-8 (byte {chunk[error.start]:#04x} at "
                f"column {error.start + 1})"
            ) from None
        if line.endswith("\r"):
            crlf_line = crlf_line or number
            line = line[:-1]
        lines.append(line)
    if crlf_line is not None:
        warnings.warn(
            f"{path}:{crlf_line}: CRLF line endings converted to LF", DataWarning, stacklevel=2
        )
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise DataError(f"{path}: the file is empty")
    for number, line in enumerate(lines, start=1):
        if line == "":
            raise DataError(f"{path}:{number}: empty line (a row is missing)")
        if "\r" in line:
            raise DataError(f"{path}:{number}: stray carriage return inside the line")
    return lines


@dataclass(frozen=True)
class Question:
    """One row of a question file; `place` is None for the unlabelled test file."""

    question: str
    place: str | None
    name: str
    line: int


def parse_questions(path: str | os.PathLike, labelled: bool = True) -> list[Question]:
    """Rows `Where was NAME born?<TAB>PLACE` (or the question alone when unlabelled)."""
    rows = []
    for number, line in enumerate(read_lines(path), start=1):
        where = f"{path}:{number}"
        tabs = line.count("\t")
        if labelled and tabs != 1:
            hint = ""
            if tabs == 0 and re.search(r"\? {2,}", line):
                hint = " (the tab seems to have been replaced by spaces)"
            raise DataError(f"{where}: expected exactly one tab, found {tabs}{hint}: {line!r}")
        if not labelled and tabs:
            raise DataError(f"{where}: expected a question without a tab: {line!r}")
        question, place = line.split("\t") if labelled else (line, None)
        if not question.strip():
            raise DataError(f"{where}: empty question")
        if labelled and not place.strip():
            raise DataError(f"{where}: empty place")
        match = QUESTION_RE.match(question)
        if match is None:
            raise DataError(f"{where}: question is not of the form 'Where was NAME born?': "
                            f"{question!r}")
        rows.append(Question(question, place, match.group("name"), number))
    return rows


def read_corpus(path: str | os.PathLike) -> list[str]:
    """The biographies of `wiki.txt`, one per line; pad or mask characters are an error."""
    docs = read_lines(path)
    for number, doc in enumerate(docs, start=1):
        for special in (PAD_CHAR, MASK_CHAR):
            if special in doc:
                raise DataError(
                    f"{path}:{number}: the corpus contains the reserved character "
                    f"{special!r} (U+{ord(special):04X}), which the vocabulary uses as "
                    f"{'pad' if special == PAD_CHAR else 'mask'}"
                )
    return docs


class Vocabulary:
    """Id 0 is pad (□), id 1 is mask (⁇), then the sorted distinct characters of the corpus."""

    def __init__(self, corpus: list[str]) -> None:
        chars = sorted(set("".join(corpus)))
        for special in (PAD_CHAR, MASK_CHAR):
            if special in chars:
                raise DataError(f"the corpus contains the reserved character {special!r}")
        self.itos = [PAD_CHAR, MASK_CHAR, *chars]
        self.stoi = {c: i for i, c in enumerate(self.itos)}

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, char: str) -> bool:
        return char in self.stoi

    def encode(self, text: str) -> list[int]:
        try:
            return [self.stoi[c] for c in text]
        except KeyError as error:
            raise DataError(f"character {error.args[0]!r} is not in the vocabulary") from None

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.itos[int(i)] for i in ids)


def prepare_text(text: str, vocab: Vocabulary, mode: str, where: str) -> str:
    """Apply the question-file text behaviour.

    `faithful` drops every non-ASCII character, as the classic exercise code does;
    `unicode` keeps every character the vocabulary knows. Either way, a character the
    vocabulary lacks is an error naming it and the line.
    """
    if mode not in TEXT_MODES:
        raise ValueError(f"unknown text mode {mode!r}; choose one of {', '.join(TEXT_MODES)}")
    if mode == "faithful":
        text = text.encode("ascii", errors="ignore").decode("ascii")
    for char in text:
        if char not in vocab:
            raise DataError(f"{where}: character {char!r} (U+{ord(char):04X}) is not in the "
                            "vocabulary of wiki.txt")
    return text


@dataclass
class BirthplaceData:
    """The four files, loaded and validated once, with the shared vocabulary."""

    corpus: list[str]
    train: list[Question]
    dev: list[Question]
    test: list[Question]
    folder: Path

    @cached_property
    def vocab(self) -> Vocabulary:
        return Vocabulary(self.corpus)

    @cached_property
    def biographies(self) -> dict[str, str]:
        """Each person's biography, found as the document that begins with `NAME.`."""
        return biography_index(self.corpus, [q.name for q in self.train + self.dev + self.test])

    def checksums(self) -> dict[str, str]:
        return {name: sha256(self.folder / name) for name in FILES.values()}


def biography_index(corpus: list[str], names: list[str]) -> dict[str, str]:
    """Map each name to the first document that begins with `NAME.` (names without one are left out)."""
    by_head: dict[str, str] = {}
    for doc in corpus:
        dot = doc.find(".")
        while dot != -1:
            by_head.setdefault(doc[:dot], doc)
            dot = doc.find(".", dot + 1)
            if dot > 200:
                break
    return {name: by_head[name] for name in names if name in by_head}


def load(folder: str | os.PathLike | None = None) -> BirthplaceData:
    """Read and validate all four files from `folder` (default `$BIRTHPLACE_DATA`)."""
    corpus = read_corpus(data_file("wiki", folder))
    train = parse_questions(data_file("train", folder))
    dev = parse_questions(data_file("dev", folder))
    test = parse_questions(data_file("test", folder), labelled=False)
    return BirthplaceData(corpus, train, dev, test, data_dir(folder))


@dataclass(frozen=True)
class World:
    """The people an experiment trains and evaluates on: the whole data or a mini world."""

    corpus: list[str]
    train: list[Question]
    dev: list[Question]
    description: str


def mini_world(data: BirthplaceData, n_train: int, n_dev: int, seed: int) -> World:
    """A fixed, seeded sample of people with biographies: their documents and questions only.

    The vocabulary stays that of the whole corpus, so models and datasets remain compatible.
    """
    bios = data.biographies
    rng = np.random.default_rng(seed)
    train_pool = [q for q in data.train if q.name in bios]
    dev_pool = [q for q in data.dev if q.name in bios]
    if n_train > len(train_pool) or n_dev > len(dev_pool):
        raise ValueError(f"mini world asks for {n_train} train and {n_dev} dev people; "
                         f"only {len(train_pool)} and {len(dev_pool)} have biographies")
    train = [train_pool[i] for i in sorted(rng.choice(len(train_pool), n_train, replace=False))]
    dev = [dev_pool[i] for i in sorted(rng.choice(len(dev_pool), n_dev, replace=False))]
    names = list(dict.fromkeys(q.name for q in train + dev))
    corpus = [bios[n] for n in names]
    return World(corpus, train, dev,
                 f"mini world: {len(train)} train and {len(dev)} dev people (seed {seed}), "
                 f"{len(corpus)} biographies, {sum(map(len, corpus)):,} characters")


def unread_people(data: BirthplaceData, world: World, n: int, seed: int = 0) -> list[Question]:
    """A seeded sample of up to `n` people whose biography exists but is not in the world's
    corpus (none for the whole data): the probes' control for "stored". A model that never
    read someone can still guess their place from the name or from the biography's opening;
    what a probe finds for these people is that guess rate."""
    read = set(world.corpus)
    bios = data.biographies
    seen: set[str] = set()
    pool = []
    for q in data.train + data.dev:
        if q.place is not None and q.name in bios and bios[q.name] not in read and q.name not in seen:
            seen.add(q.name)
            pool.append(q)
    rng = np.random.default_rng(seed)
    return [pool[i] for i in sorted(rng.choice(len(pool), min(n, len(pool)), replace=False))]


def full_world(data: BirthplaceData) -> World:
    """The whole data as a world: every biography and every training and dev question, as
    the classic exercise uses them."""
    return World(data.corpus, data.train, data.dev,
                 f"whole data: {len(data.train)} train and {len(data.dev)} dev questions, "
                 f"{len(data.corpus)} biographies")
