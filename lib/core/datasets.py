"""The two training sets made from the data: question finetuning and span-corruption
pretraining (with the recipe options that change what pretraining reads)."""

from __future__ import annotations

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


class CroppedSpanCorruption(SpanCorruptionDataset):
    """Span corruption of biographies whose text after the name starts at a random word.

    Each draw picks, per document, one of the word starts of its text after the head
    (the first word included, so the uncropped biography is one of the draws) and
    corrupts `head + text[start:]`. Everything a draw shows comes from the document itself.
    """

    # A crop leaves at least this many characters of text, so no draw is a name and a full stop.
    MIN_TEXT = 16

    def __init__(self, docs: list[str], vocab: Vocabulary, block_size: int = 128,
                 croppable: list[bool] | None = None) -> None:
        super().__init__(docs, vocab, block_size)
        croppable = [True] * len(docs) if croppable is None else croppable
        if len(croppable) != len(docs):
            raise ValueError("croppable needs one flag per document")
        self.heads, self.bodies, self.word_starts = [], [], []
        for doc, crop in zip(docs, croppable, strict=True):
            head, body = split_head(doc) if crop else ("", doc)
            self.heads.append(head)
            self.bodies.append(body)
            self.word_starts.append([0] + ([i + 1 for i, c in enumerate(body[: -self.MIN_TEXT])
                                            if c == " "] if crop and head else []))

    def cropped(self, generator: torch.Generator) -> list[str]:
        """This draw's documents."""
        u = torch.rand(len(self.bodies), generator=generator, dtype=torch.float64).tolist()
        return [head + body[starts[int(x * len(starts))]:]
                for head, body, starts, x in zip(self.heads, self.bodies, self.word_starts, u,
                                                 strict=True)]

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        docs = self.cropped(generator)
        ids = encode_documents(docs, self.vocab, self.ids.shape[1])
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
    if "crop" in recipe:  # biographies only: a question keeps its name and its answer together
        return CroppedSpanCorruption(docs + added, vocab, block_size,
                                     croppable=[True] * len(docs) + [False] * len(added))
    return SpanCorruptionDataset(docs + added, vocab, block_size)
