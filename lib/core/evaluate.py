"""Evaluation: batched greedy decoding with a key/value cache, accuracy, baselines, probes.

Decoding groups prompts of equal length so that no padding is needed (learned position
embeddings make left-padding change the answer), encodes each group's prefix once, then
appends one character per step using cached keys and values. `decode_reference` does the
same by recomputing the whole prefix for one prompt at a time; the tests check both agree.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lib.core.atomic import atomic_write_text
from lib.core.data import (
    MASK_CHAR,
    MASK_ID,
    Question,
    Vocabulary,
    parse_questions,
    prefix_window,
    prepare_text,
    read_lines,
)


@dataclass(frozen=True)
class Decoded:
    """A greedy continuation: the generated ids (without the stop mask) and their log-probability.

    `logprob` sums the log-probabilities of every chosen id, the closing mask included
    when it was generated, so it is the model's probability of the whole answer.
    """

    ids: list[int]
    logprob: float
    stopped: bool


def _max_new(prompt_len: int, max_new: int, block_size: int) -> int:
    return max(0, min(max_new, block_size - prompt_len))


@torch.no_grad()
def decode_reference(model: torch.nn.Module, prompt: list[int], max_new: int = 32, stop_id: int = MASK_ID,
                     device: str | torch.device = "cpu") -> Decoded:
    """Greedy decoding of one prompt, recomputing the whole prefix at every step (slow, plain).

    It is the specification the batched decoder is tested against.
    """
    model.eval()
    ids = list(prompt)
    out, logprob = [], 0.0
    for _ in range(_max_new(len(prompt), max_new, model.config.block_size)):
        logits, _ = model(torch.tensor([ids], device=device))
        logp = torch.log_softmax(logits[0, -1].float(), dim=-1)
        nxt = int(torch.argmax(logp))
        logprob += float(logp[nxt])
        if nxt == stop_id:
            return Decoded(out, logprob, True)
        out.append(nxt)
        ids.append(nxt)
    return Decoded(out, logprob, False)


@torch.no_grad()
def decode_batched(model: torch.nn.Module, prompts: Sequence[Sequence[int]], max_new: int = 32,
                   stop_id: int = MASK_ID, device: str | torch.device = "cpu",
                   batch_size: int = 512, use_cache: bool | None = None) -> list[Decoded]:
    """Greedy decoding of many prompts at once.

    With a KV cache (vanilla attention), prompts of any lengths share one batch: they are
    left-padded, each row gets its own positions, and padding is masked out of attention.
    Without one (research variants), prompts are grouped by length and recomputed each step.
    """
    model.eval()
    device = torch.device(device)
    use_cache = model.supports_cache if use_cache is None else use_cache
    for i, p in enumerate(prompts):
        if len(p) == 0:
            raise ValueError(f"prompt {i} is empty")
    if use_cache:
        groups = [list(range(s, min(s + batch_size, len(prompts))))
                  for s in range(0, len(prompts), batch_size)]
    else:
        by_length: dict[int, list[int]] = {}
        for i, p in enumerate(prompts):
            by_length.setdefault(len(p), []).append(i)
        groups = [members[s : s + batch_size] for _, members in sorted(by_length.items())
                  for s in range(0, len(members), batch_size)]
    results: list[Decoded | None] = [None] * len(prompts)
    for chunk in groups:
        rows = [list(prompts[i]) for i in chunk]
        for i, decoded in zip(chunk, _decode_group(model, rows, max_new, stop_id, device, use_cache),
                              strict=True):
            results[i] = decoded
    return results  # type: ignore[return-value]


def _decode_group(model, rows: list[list[int]], max_new: int, stop_id: int, device: torch.device,
                  use_cache: bool) -> list[Decoded]:
    block = model.config.block_size
    lengths = torch.tensor([len(r) for r in rows], device=device)
    width = int(lengths.max())
    pads = width - lengths
    limits = torch.tensor([_max_new(len(r), max_new, block) for r in rows], device=device)
    steps = int(limits.max())
    x = torch.tensor([[0] * (width - len(r)) + r for r in rows], device=device)
    n = len(rows)
    generated = torch.zeros(n, 0, dtype=torch.long, device=device)
    logprob = torch.zeros(n, dtype=torch.float64, device=device)
    done = limits == 0
    stop_at = limits.clone()
    stopped = torch.zeros(n, dtype=torch.bool, device=device)
    caches = None
    columns = torch.arange(width + steps, device=device)
    key_valid = columns[None, :] >= pads[:, None]
    for t in range(steps):
        if use_cache:
            new = x if t == 0 else generated[:, -1:]
            first = 0 if t == 0 else width + t - 1
            # Rows past their own limit keep running until the batch ends; clamp their positions.
            positions = (columns[first : width + t][None, :] - pads[:, None]).clamp(0, block - 1)
            logits, caches = model.forward_cached(new, caches, positions,
                                                  key_valid[:, : width + t])
        else:
            logits, _ = model(torch.cat([x, generated], dim=1))
        logp = torch.log_softmax(logits[:, -1].float(), dim=-1)
        nxt = logp.argmax(dim=-1)
        chosen = logp.gather(1, nxt[:, None])[:, 0].double()
        logprob += torch.where(done, torch.zeros_like(chosen), chosen)
        newly = ~done & (nxt == stop_id)
        stop_at = torch.where(newly, torch.full_like(stop_at, t), stop_at)
        stopped |= newly
        done |= newly | (t + 1 >= limits)
        generated = torch.cat([generated, nxt[:, None]], dim=1)
        if bool(done.all()):
            break
    generated, logprob = generated.cpu(), logprob.cpu()
    stop_at, stopped = stop_at.cpu(), stopped.cpu()
    return [Decoded(generated[r, : int(stop_at[r])].tolist(), float(logprob[r]), bool(stopped[r]))
            for r in range(n)]


def question_prompts(rows: Sequence[Question], vocab: Vocabulary, mode: str = "unicode",
                     source: str = "questions") -> list[list[int]]:
    """Each question followed by the mask that asks for its answer."""
    return [vocab.encode(prepare_text(r.question, vocab, mode, f"{source}:{r.line}") + MASK_CHAR)
            for r in rows]


@dataclass
class Predictions:
    """A model's answers to a question file, in its order, with each answer's log-probability
    (what the confidence analyses read)."""

    places: list[str]
    logprobs: list[float]

    @property
    def confidences(self) -> list[float]:
        """The model's probability of each whole answer (closing mask included)."""
        return [float(np.exp(lp)) for lp in self.logprobs]


def predict(model: torch.nn.Module, rows: Sequence[Question], vocab: Vocabulary,
            mode: str = "unicode", device: str | torch.device = "cpu",
            source: str = "questions") -> Predictions:
    """Greedy answers to questions, with their log-probabilities, decoded the classic way:
    the question and a mask as the prompt, the answer ending at the next mask."""
    decoded = decode_batched(model, question_prompts(rows, vocab, mode, source), device=device)
    return Predictions([vocab.decode(d.ids) for d in decoded], [d.logprob for d in decoded])


@dataclass(frozen=True)
class Score:
    """Right answers out of questions asked: exact matches, as the classic exercise counts."""

    correct: int
    total: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.total if self.total else float("nan")

    def to_dict(self) -> dict:
        return {"correct": self.correct, "total": self.total, "accuracy": self.accuracy}


def score(predictions: Sequence[str], rows: Sequence[Question]) -> Score:
    """Exact-match accuracy of predicted places against the labelled rows."""
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} questions")
    golds = [r.place for r in rows]
    if any(g is None for g in golds):
        raise ValueError("these questions have no gold places (unlabelled file)")
    return Score(sum(p == g for p, g in zip(predictions, golds, strict=True)), len(rows))


def write_predictions(path: str | os.PathLike, predictions: Sequence[str]) -> Path:
    """One prediction per line, in input order, written atomically."""
    return atomic_write_text(path, "".join(p + "\n" for p in predictions))


def read_predictions(path: str | os.PathLike) -> list[str]:
    """One answer per line, as `write_predictions` writes them.

    An empty line is an (empty) answer. Files written elsewhere may lack the final newline
    or end lines with CRLF; neither changes the answers.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not valid UTF-8 (byte {error.start + 1})") from None
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def score_file(predictions_path: str | os.PathLike, questions_path: str | os.PathLike) -> Score:
    """Score a predictions file against a labelled question file, exactly as the book scores runs.

    So a reader's own predictions (from this code or the exercise's) compare with the book's.
    """
    if "\t" not in read_lines(questions_path)[0]:
        raise ValueError(f"{questions_path} holds questions without answers; score against a "
                         "labelled file such as birth_dev.tsv")
    rows = parse_questions(questions_path)
    predictions = read_predictions(predictions_path)
    if len(predictions) != len(rows):
        raise ValueError(f"{predictions_path} has {len(predictions)} lines but {questions_path} has "
                         f"{len(rows)} questions; a predictions file holds one answer per line, "
                         "in the order of the questions")
    return score(predictions, rows)


def london_baseline(rows: Sequence[Question], place: str = "London") -> list[str]:
    """Always answer the same place (the classic baseline answers London)."""
    return [place] * len(rows)


def most_common_place(rows: Sequence[Question]) -> str:
    """The most frequent birthplace among `rows`: the constant baseline's answer."""
    return Counter(r.place for r in rows).most_common(1)[0][0]


@dataclass
class ProbeResult:
    """Greedy completions of two prompts per person, scored against their own place and a control's."""

    names: list[str]
    places: list[str]
    control_places: list[str]
    name_completions: list[str]
    bio_completions: list[str | None]  # None where the place is not inside the window

    @staticmethod
    def _hits(completions, places) -> list[bool | None]:
        return [None if c is None else c.strip().startswith(p) for c, p in
                zip(completions, places, strict=True)]

    def summary(self) -> dict:
        out = {}
        for probe, completions in (("name", self.name_completions), ("bio", self.bio_completions)):
            for against, places in (("gold", self.places), ("control", self.control_places)):
                hits = [h for h in self._hits(completions, places) if h is not None]
                out[f"{probe}_{against}_correct"] = sum(hits)
                out[f"{probe}_{against}_total"] = len(hits)
        return out

    def per_person(self) -> list[dict]:
        name_gold = self._hits(self.name_completions, self.places)
        bio_gold = self._hits(self.bio_completions, self.places)
        return [{"name": n, "place": p, "name_probe": ng, "bio_probe": bg,
                 "name_completion": nc, "bio_completion": bc}
                for n, p, ng, bg, nc, bc in zip(self.names, self.places, name_gold, bio_gold,
                                                self.name_completions, self.bio_completions,
                                                strict=True)]


def control_places(places: Sequence[str]) -> list[str]:
    """Each person's control place: the next person's (cyclically) that differs from their own."""
    out = []
    for i in range(len(places)):
        j = (i + 1) % len(places)
        while places[j] == places[i] and j != i:
            j = (j + 1) % len(places)
        out.append(places[j])
    return out


def knowledge_probe(model: torch.nn.Module, rows: Sequence[Question], biographies: dict[str, str],
                    vocab: Vocabulary, device: str | torch.device = "cpu",
                    max_prefix: int | None = None, max_new: int = 24) -> ProbeResult:
    """What a pretrained model stored, asked without any finetuning.

    Two prompts per person: "NAME. NAME was born in " and the person's biography cut
    just before the first mention of the place (only where that mention ends inside the
    first `max_prefix` characters, default 7/8 of the block: the longest prefix that
    pretraining ever shows). Each completion is scored against the person's own place and,
    as a control, against the place of the next person in the list with a different place.
    """
    block = model.config.block_size
    max_prefix = prefix_window(block) if max_prefix is None else max_prefix
    rows = [r for r in rows if r.place is not None]
    places = [r.place for r in rows]
    controls = control_places(places)

    def keep(text: str) -> str:
        return "".join(c for c in text if c in vocab)

    name_prompts = [vocab.encode(keep(f"{r.name}. {r.name} was born in ")) for r in rows]
    bio_prompts, bio_index = [], []
    for i, r in enumerate(rows):
        bio = biographies.get(r.name)
        at = -1 if bio is None else bio.find(r.place)
        if at > 0 and at + len(r.place) <= max_prefix:
            bio_prompts.append(vocab.encode(bio[:at]))
            bio_index.append(i)
    name_out = decode_batched(model, name_prompts, max_new=max_new, device=device)
    bio_out = decode_batched(model, bio_prompts, max_new=max_new, device=device)
    bio_completions: list[str | None] = [None] * len(rows)
    for i, d in zip(bio_index, bio_out, strict=True):
        bio_completions[i] = vocab.decode(d.ids)
    return ProbeResult([r.name for r in rows], places, controls,
                       [vocab.decode(d.ids) for d in name_out], bio_completions)
