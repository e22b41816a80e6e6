"""lib.core.data: reading and validating the files, the vocabulary, the finetuning dataset."""

from __future__ import annotations

import warnings

import pytest

from lib.core import data as D
from lib.core import datasets as DS
from tests.conftest import write_files


def test_reference_files_load_without_warnings(data_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data = D.load(data_folder)
    assert (len(data.corpus), len(data.train), len(data.dev), len(data.test)) == (2937, 2000, 500, 437)
    assert data.checksums() == D.CHECKSUMS


def test_missing_folder_says_how_to_set_the_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("BIRTHPLACE_DATA", str(tmp_path / "nowhere"))
    with pytest.raises(D.DataError, match="BIRTHPLACE_DATA"):
        D.load()


def test_without_the_variable_the_shared_copy_beside_the_clone_is_found(tmp_path, monkeypatch):
    shared, local = tmp_path / "shared", tmp_path / "repo" / "data"
    monkeypatch.delenv("BIRTHPLACE_DATA", raising=False)
    monkeypatch.setattr(D, "REPO_ROOT", tmp_path / "repo")
    monkeypatch.setattr(D, "SHARED_DATA", shared)
    assert D.default_data_dir() == D.Path("data")  # neither copy exists: the documented default
    write_files(shared, wiki="x", train="x", dev="x", test="x")
    assert D.data_dir() == shared
    write_files(local, wiki="x", train="x", dev="x", test="x")
    assert D.data_dir() == local  # a local copy wins, as in the Makefile


def test_missing_file_is_named(tmp_path):
    folder = write_files(tmp_path / "d")
    (folder / "birth_dev.tsv").unlink()
    with pytest.raises(D.DataError, match=r"birth_dev\.tsv is missing.*BIRTHPLACE_DATA"):
        D.load(folder)


def test_checksum_mismatch_warns_loudly(tmp_path, data_folder):
    text = (data_folder / "birth_dev.tsv").read_text(encoding="utf-8")
    folder = write_files(tmp_path / "d", dev=text.replace("Atlanta", "Boston", 1))
    with pytest.warns(D.DataWarning, match=r"birth_dev\.tsv: SHA-256 differs.*not comparable"):
        D.load(folder)


def test_crlf_is_accepted_with_a_warning(tmp_path, data_folder):
    text = (data_folder / "birth_dev.tsv").read_text(encoding="utf-8")
    folder = write_files(tmp_path / "d", dev=text.replace("\n", "\r\n"))
    with pytest.warns(D.DataWarning) as caught:
        rows = D.parse_questions(folder / "birth_dev.tsv")
    messages = [str(w.message) for w in caught]
    assert any("CRLF" in m for m in messages)
    assert any("SHA-256 differs" in m for m in messages)  # the bytes changed, so does the checksum
    assert rows[0].place == "Atlanta" and len(rows) == 500


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"Where was A B born?\tParis\n\xff\xfe\n", r":2: not valid UTF-8"),
        ("Where was A B born?\tParis\nWhere was C D born?    Rome\n", r":2: expected exactly one tab, found 0 \(the tab seems to have been replaced by spaces\)"),
        ("Where was A B born?\tParis\tFrance\n", r":1: expected exactly one tab, found 2"),
        ("Where was A B born?\t\n", r":1: empty place"),
        ("\tParis\n", r":1: empty question"),
        ("Who is A B?\tParis\n", r":1: question is not of the form"),
        ("Where was A B born?\tParis\n\nWhere was C born?\tRome\n", r":2: empty line"),
        ("", r"the file is empty"),
        ("\n\n", r"the file is empty"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "birth_dev.tsv"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.warns(D.DataWarning), pytest.raises(D.DataError, match=message):
        D.parse_questions(path)


def test_trailing_empty_lines_are_ignored(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_text("Where was A B born?\tParis\n\n\n", encoding="utf-8")
    assert [r.place for r in D.parse_questions(path)] == ["Paris"]


def test_bom_is_removed_with_a_warning(tmp_path):
    path = tmp_path / "q.tsv"
    path.write_bytes(b"\xef\xbb\xbfWhere was A B born?\tParis\n")
    with pytest.warns(D.DataWarning, match=":1: byte-order mark"):
        assert D.parse_questions(path)[0].name == "A B"


def test_unlabelled_file_rejects_answers(tmp_path):
    path = tmp_path / "t.tsv"
    path.write_text("Where was A B born?\tParis\n", encoding="utf-8")
    with pytest.raises(D.DataError, match="without a tab"):
        D.parse_questions(path, labelled=False)


@pytest.mark.parametrize("special", [D.PAD_CHAR, D.MASK_CHAR])
def test_corpus_with_a_reserved_character_is_an_error(tmp_path, special):
    path = tmp_path / "wiki.txt"
    path.write_text(f"A B. Born in Paris.\nC D. Born in {special}Rome.\n", encoding="utf-8")
    with pytest.raises(D.DataError, match=f":2: the corpus contains the reserved character.*U\\+{ord(special):04X}"), \
            pytest.warns(D.DataWarning, match="SHA-256 differs"):
        D.read_corpus(path)


def test_vocabulary_layout(real_data):
    vocab = real_data.vocab
    assert vocab.itos[0] == "\u25a1" and vocab.itos[1] == "\u2047"
    chars = sorted(set("".join(real_data.corpus)))
    assert vocab.itos[2:] == chars
    assert vocab.decode(vocab.encode("Where was")) == "Where was"


def test_finetune_example_layout(real_data):
    ds = DS.FinetuneDataset(real_data.train[:3], real_data.vocab)
    x, y = ds[0]
    question, place = real_data.train[0].question, real_data.train[0].place
    s = question + D.MASK_CHAR + place + D.MASK_CHAR
    s = s + D.PAD_CHAR * (128 - len(s))
    assert real_data.vocab.decode(x) == s[:-1]
    target = real_data.vocab.decode(y)
    assert target == D.PAD_CHAR * len(question) + s[len(question) + 1:]
    # Only the answer and its closing mask are learned.
    learned = [c for c in target if c != D.PAD_CHAR]
    assert "".join(learned) == place + D.MASK_CHAR


def test_text_modes(real_data, tmp_path):
    accented = [q for q in real_data.dev if any(ord(c) > 127 for c in q.question)]
    assert len(accented) == 17
    row = accented[0]
    faithful = D.prepare_text(row.question, real_data.vocab, "faithful", "x")
    assert faithful == row.question.encode("ascii", "ignore").decode()
    assert D.prepare_text(row.question, real_data.vocab, "unicode", "x") == row.question
    with pytest.raises(D.DataError, match=r"dev:7: character '☃' \(U\+2603\) is not in the vocabulary"):
        D.prepare_text("Where was ☃ born?", real_data.vocab, "unicode", "dev:7")
    with pytest.raises(ValueError, match="unknown text mode"):
        D.prepare_text("x", real_data.vocab, "latin1", "x")


def test_too_long_example_is_an_error(real_data):
    row = D.Question("Where was " + "a" * 120 + " born?", "Paris", "a" * 120, 9)
    with pytest.raises(D.DataError, match="q:9: question and place need"):
        DS.FinetuneDataset([row], real_data.vocab, source="q")


def test_every_question_person_has_a_biography(real_data):
    names = {q.name for q in real_data.train + real_data.dev}
    assert names <= set(real_data.biographies)


def test_mini_world_is_seeded_and_self_contained(real_data):
    a = D.mini_world(real_data, 40, 20, seed=3)
    b = D.mini_world(real_data, 40, 20, seed=3)
    assert a == b and len(a.train) == 40 and len(a.dev) == 20
    for q in a.train + a.dev:
        assert real_data.biographies[q.name] in a.corpus
    with pytest.raises(ValueError, match="only"):
        D.mini_world(real_data, 10_000, 1, seed=0)


def test_data_dir_resolves_relative_paths_from_the_repository(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BIRTHPLACE_DATA", "../shared/data/birthplaces")
    assert D.data_dir() == D.REPO_ROOT / "../shared/data/birthplaces"
    monkeypatch.setenv("BIRTHPLACE_DATA", str(tmp_path))
    assert D.data_dir() == tmp_path
