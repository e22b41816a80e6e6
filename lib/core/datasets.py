"""The two training sets made from the data: question finetuning and span-corruption
pretraining (with the recipe options that change what pretraining reads)."""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch

from lib.core.data import (
    MASK_CHAR,
    MASK_ID,
    PAD_ID,
    DataError,
    Question,
    Vocabulary,
    World,
    prefix_window,
    prepare_text,
)


class FinetuneDataset:
    """s = question + MASK + place + MASK, padded to the block; only the answer is learned.

    input = s[:-1]; target = s[1:] with every position before the answer set to pad, so
    the loss covers the place and its closing mask and nothing else.
    """

    def __init__(
        self,
        rows: list[Question],
        vocab: Vocabulary,
        block_size: int = 128,
        mode: str = "unicode",
        source: str = "questions",
    ) -> None:
        if any(r.place is None for r in rows):
            raise DataError(f"{source}: finetuning needs labelled rows")
        self.block_size = block_size
        xs, ys = [], []
        self.questions, self.places = [], []
        for r in rows:
            where = f"{source}:{r.line}"
            question = prepare_text(r.question, vocab, mode, where)
            place = prepare_text(r.place, vocab, mode, where)
            s = question + MASK_CHAR + place + MASK_CHAR
            if len(s) > block_size:
                raise DataError(f"{where}: question and place need {len(s)} characters, more "
                                f"than the block size {block_size}")
            ids = vocab.encode(s) + [PAD_ID] * (block_size - len(s))
            x, y = ids[:-1], ids[1:]
            y[: len(question)] = [PAD_ID] * len(question)
            xs.append(x)
            ys.append(y)
            self.questions.append(question)
            self.places.append(place)
        self.x = torch.tensor(xs, dtype=torch.long).reshape(-1, block_size - 1)
        self.y = torch.tensor(ys, dtype=torch.long).reshape(-1, block_size - 1)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[i], self.y[i]

    def epoch(self, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """All examples as (inputs, targets); finetuning data is the same every epoch."""
        return self.x, self.y


def encode_documents(docs: list[str], vocab: Vocabulary, width: int) -> torch.Tensor:
    """(documents, width) ids: each document's first `width` characters, pad after its end."""
    ids = torch.full((len(docs), width), PAD_ID, dtype=torch.long)
    for i, doc in enumerate(docs):
        enc = vocab.encode(doc[:width])
        ids[i, : len(enc)] = torch.tensor(enc, dtype=torch.long)
    return ids


@dataclass(frozen=True)
class Corruption:
    """The random choices behind one span-corruption example (for inspection and tests)."""

    length: int  # L, the truncated length
    start: int  # where the masked span begins
    masked: int  # its length


class SpanCorruptionDataset:
    """One span-corruption example per document per draw, vectorised over documents.

    Per document: truncate to L (drawn uniformly from 4 .. int(7/8 * block); a shorter
    document stays whole), mask a span of random length m (mean L/4, from 1 up to about
    L/2) at a random start, and write s = prefix + MASK + suffix + MASK + masked, padded;
    input = s[:-1], target = s[1:]. Draws come from a `torch.Generator`, so one seed gives
    the same examples on every machine.
    """

    def __init__(self, docs: list[str], vocab: Vocabulary, block_size: int = 128) -> None:
        if block_size < 8:
            raise ValueError(f"block_size must be at least 8 for span corruption, got {block_size}")
        self.block_size = block_size
        self.max_len = prefix_window(block_size)
        self.vocab = vocab
        self.docs = docs
        self.ids = encode_documents(docs, vocab, min(max(len(d) for d in docs), self.max_len))
        self.lengths = torch.tensor([len(d) for d in docs], dtype=torch.long)

    def __len__(self) -> int:
        return len(self.docs)

    def draw_choices(
        self, generator: torch.Generator, index: torch.Tensor | None = None,
        lengths: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random (L, start, masked length) for the documents `index` (default: all), whose
        lengths are `lengths` (default: the stored documents')."""
        lengths = self.lengths if lengths is None else lengths
        n = lengths if index is None else lengths[index]
        drawn = torch.randint(4, self.max_len + 1, (len(n),), generator=generator)
        length = torch.minimum(n, drawn)
        u = torch.rand(len(n), generator=generator, dtype=torch.float64)
        # m = 1 + floor(u * (L/2 - 1)): from 1 to about L/2, mean L/4.
        masked = 1 + torch.floor(u * (length / 2 - 1).clamp(min=0)).long()
        masked = torch.minimum(masked, (length - 1).clamp(min=1))
        v = torch.rand(len(n), generator=generator, dtype=torch.float64)
        start = torch.floor(v * (length - masked + 1)).long()
        return length, start, masked

    def build(
        self, index: torch.Tensor, length: torch.Tensor, start: torch.Tensor, masked: torch.Tensor,
        ids: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Assemble inputs and targets for the given choices with index arithmetic only
        (`ids`: this draw's encoded documents, when they differ from draw to draw)."""
        docs = (self.ids if ids is None else ids)[index]
        t = self.block_size
        j = torch.arange(t).unsqueeze(0)
        p, m, ln = start.unsqueeze(1), masked.unsqueeze(1), length.unsqueeze(1)
        suffix = ln - p - m
        second_mask = p + suffix + 1
        src = torch.zeros(len(index), t, dtype=torch.long)
        src = torch.where(j < p, j, src)
        in_suffix = (j > p) & (j <= p + suffix)
        src = torch.where(in_suffix, j - 1 + m, src)
        in_masked = (j > second_mask) & (j <= second_mask + m)
        src = torch.where(in_masked, p + j - second_mask - 1, src)
        src = src.clamp(max=docs.shape[1] - 1)
        s = torch.gather(docs, 1, src)
        s = torch.where((j == p) | (j == second_mask), torch.full_like(s, MASK_ID), s)
        s = torch.where(j > second_mask + m, torch.full_like(s, PAD_ID), s)
        return s[:, :-1].contiguous(), s[:, 1:].contiguous()

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """A fresh draw for every document: (inputs, targets) of shape (docs, block - 1)."""
        index = torch.arange(len(self.docs))
        return self.build(index, *self.draw_choices(generator, index))

    def example(self, i: int, generator: torch.Generator) -> tuple[str, Corruption]:
        """One example as text (pad and mask visible), with the choices that made it."""
        index = torch.tensor([i])
        length, start, masked = self.draw_choices(generator, index)
        x, y = self.build(index, length, start, masked)
        text = self.vocab.decode(torch.cat([x[0, :1], y[0]]).tolist())
        return text, Corruption(int(length), int(start), int(masked))


# --------------------------------------------------------------------------------------
# Pretraining recipes beyond the classic exercise (each a named option of the corpus)
# --------------------------------------------------------------------------------------
RECIPES = {
    "mixed": "the training people's questions and answers join the pretraining corpus as "
             "documents (never a dev or test person's)",
    "crop": "each draw keeps a biography's opening name and starts its text at a random word, "
            "so text past the 112-character window is read beside the name",
    "fullname": "each draw, for half the biographies that refer to their person by surname "
                "alone or by he/she, writes the full name at the first such mention",
}


def qa_documents(train: list[Question]) -> list[str]:
    """Mixed training: each training question with its answer, as one pretraining document."""
    if any(q.place is None for q in train):
        raise DataError("mixed training needs labelled training questions")
    return [f"{q.question} {q.place}" for q in train]


def split_head(doc: str) -> tuple[str, str]:
    """A biography's opening name (through `NAME. `) and the text after it.

    The head ends at the first '. ' whose preceding word is longer than one letter, so an
    initial ('John F. Kennedy. ...') does not end it. A document without one has no head.
    """
    at = 0
    while (dot := doc.find(". ", at)) != -1:
        word = doc[:dot].rsplit(" ", 1)[-1]
        if len(word) > 1:
            return doc[: dot + 2], doc[dot + 2:]
        at = dot + 2
    return "", doc


_PRONOUN = re.compile(r"\b(?:[Hh]e|[Ss]he)\b")


def surname(name: str) -> str:
    """The last word before any title after a comma, with the lower-case particles before it:
    'Stephen Carter, Baron Carter of Barnes' -> 'Carter', 'Hector de Castro' -> 'de Castro'."""
    words = name.split(",")[0].split()
    first = len(words) - 1
    while first > 1 and words[first - 1].islower():
        first -= 1
    return " ".join(words[first:]) if words else ""


def _inside_longer_name(body: str, at: int) -> bool:
    """Whether the word starting at `at` follows a capitalised word directly ('Anthony
    Blake'), so it is part of another form of the name rather than the surname alone."""
    before = body[:at]
    if not before.endswith(" "):
        return False
    previous = before[:-1].rsplit(" ", 1)[-1]
    return bool(previous) and previous[0].isupper() and previous[-1].isalpha()


def with_full_name(head: str, body: str) -> str | None:
    """Name repetition: `body` with its first mention of the person by surname alone or by
    he/she replaced by the full name from `head`; None when the body already writes the full
    name or has no such mention (then there is nothing to rewrite)."""
    name = head[:-2] if head.endswith(". ") else ""
    last = surname(name)
    if not name or not last or name in body:
        return None
    mentions = [m for m in re.finditer(rf"\b{re.escape(last)}\b", body)
                if not _inside_longer_name(body, m.start())]
    mentions += list(_PRONOUN.finditer(body))
    if not mentions:
        return None
    first = min(mentions, key=lambda m: m.start())
    return body[: first.start()] + name + body[first.end():]


class RewrittenSpanCorruption(SpanCorruptionDataset):
    """Span corruption of biographies that change from draw to draw: with `fullname`, half the
    rewritable ones (drawn afresh each time) name their person in full at the first other
    mention (`with_full_name`); with `crop`, the text after the name starts at a random word
    (the first word included, so the uncropped biography is one of the draws). Documents
    flagged not `rewritable` (mixed training's questions) stay as they are. Everything a draw
    shows comes from the document itself.
    """

    # A crop leaves at least this many characters of text, so no draw is a name and a full stop.
    MIN_TEXT = 16

    def __init__(self, docs: list[str], vocab: Vocabulary, block_size: int = 128,
                 rewritable: list[bool] | None = None, *, crop: bool = False,
                 fullname: bool = False) -> None:
        rewritable = [True] * len(docs) if rewritable is None else rewritable
        if len(rewritable) != len(docs):
            raise ValueError("rewritable needs one flag per document")
        self.crop, self.fullname = crop, fullname
        self.heads: list[str] = []
        self.forms: list[list[str]] = []  # per document: its text after the head, then its rewrite
        self.word_starts: list[list[list[int]]] = []  # per document and form: where a crop may start
        for doc, rewrite in zip(docs, rewritable, strict=True):
            head, body = split_head(doc) if rewrite else ("", doc)
            forms = [body]
            if fullname and head and (renamed := with_full_name(head, body)) is not None:
                forms.append(renamed)
            self.heads.append(head)
            self.forms.append(forms)
            self.word_starts.append([self._starts(form, crop and bool(head)) for form in forms])
        longest = max(len(h) + len(f) for h, forms in zip(self.heads, self.forms, strict=True)
                      for f in forms)
        super().__init__(docs, vocab, block_size)
        self.width = min(longest, self.max_len)

    def _starts(self, body: str, crop: bool) -> list[int]:
        return [0] + ([i + 1 for i, c in enumerate(body[: -self.MIN_TEXT]) if c == " "]
                      if crop else [])

    def drawn(self, generator: torch.Generator) -> list[str]:
        """This draw's documents. Random numbers are drawn per option in a fixed order
        (name repetition, then the crop), so a crop-only draw is the same with or without
        the name-repetition code."""
        n = len(self.forms)
        form = [0] * n
        if self.fullname:
            coin = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
            form = [int(len(forms) > 1 and x < 0.5) for forms, x in zip(self.forms, coin, strict=True)]
        if self.crop:
            u = torch.rand(n, generator=generator, dtype=torch.float64).tolist()
        else:
            u = [0.0] * n
        out = []
        for head, forms, starts, f, x in zip(self.heads, self.forms, self.word_starts, form, u,
                                            strict=True):
            body = forms[f]
            out.append(head + body[starts[f][int(x * len(starts[f]))]:])
        return out

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        docs = self.drawn(generator)
        ids = encode_documents(docs, self.vocab, self.width)
        lengths = torch.tensor([len(d) for d in docs], dtype=torch.long)
        index = torch.arange(len(docs))
        return self.build(index, *self.draw_choices(generator, index, lengths), ids=ids)


def pretraining_dataset(world: World, vocab: Vocabulary, block_size: int,
                        recipe: tuple[str, ...] = ()) -> SpanCorruptionDataset:
    """The span-corruption data a pretraining run reads: the world's biographies, changed
    only by the named recipe options (none: the classic exercise)."""
    unknown = set(recipe) - set(RECIPES)
    if unknown:
        raise ValueError(f"unknown recipe options {sorted(unknown)}; choose from {', '.join(RECIPES)}")
    docs = list(world.corpus)
    added = qa_documents(world.train) if "mixed" in recipe else []
    if "crop" in recipe or "fullname" in recipe:
        # Biographies only: a question keeps its name and its answer together.
        return RewrittenSpanCorruption(docs + added, vocab, block_size,
                                       rewritable=[True] * len(docs) + [False] * len(added),
                                       crop="crop" in recipe, fullname="fullname" in recipe)
    return SpanCorruptionDataset(docs + added, vocab, block_size)
