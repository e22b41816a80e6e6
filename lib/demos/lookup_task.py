"""A content-based lookup that one dot-product attention layer learns and a synthesizer cannot.

Each sequence lists `n_pairs` key/value pairs, `k1 v1 k2 v2 ... kN vN`, with distinct keys,
and ends with a query key `kq` equal to one of them; the answer is the value that followed
`kq`. Finding it means comparing the query's content with every earlier position's content,
which is exactly what a dot product q_t . k_s does and what a synthesizer's weights (a
function of position t's own vector) cannot do.

The model isolates one attention layer. Each position is embedded as its token plus the
token before it plus its position (the previous-token part is what a first attention layer
would supply in a deeper model, so a value position "knows" its key); then one residual
attention layer of the chosen variant, a LayerNorm and a linear readout at the last
position. There is no MLP, so nothing after the attention can pair keys with values.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from lib.core.attention import AttentionSpec, build_attention


@dataclass(frozen=True)
class LookupTask:
    """Token ids: keys are 0..n_keys-1, values n_keys..n_keys+n_values-1."""

    n_keys: int = 32
    n_values: int = 32
    n_pairs: int = 12

    def __post_init__(self) -> None:
        if not 1 <= self.n_pairs <= self.n_keys:
            raise ValueError(f"need 1 <= n_pairs <= n_keys, got {self.n_pairs}, {self.n_keys}")
        if self.n_values < 2:
            raise ValueError("need at least two values")

    @property
    def vocab_size(self) -> int:
        return self.n_keys + self.n_values

    @property
    def length(self) -> int:
        return 2 * self.n_pairs + 1


def make_batch(
    task: LookupTask, batch: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences (batch, length) and answers (batch,) as value indices 0..n_values-1."""
    keys = torch.rand(batch, task.n_keys, generator=generator).argsort(dim=1)[:, : task.n_pairs]
    values = torch.randint(0, task.n_values, (batch, task.n_pairs), generator=generator)
    which = torch.randint(0, task.n_pairs, (batch,), generator=generator)
    rows = torch.arange(batch)
    tokens = torch.empty(batch, task.length, dtype=torch.long)
    tokens[:, 0:-1:2] = keys
    tokens[:, 1:-1:2] = values + task.n_keys
    tokens[:, -1] = keys[rows, which]
    return tokens, values[rows, which]


def answer_by_scanning(task: LookupTask, tokens: torch.Tensor) -> torch.Tensor:
    """The reference answer, found the slow obvious way: the token after the query's match."""
    answers = []
    for row in tokens.tolist():
        query = row[-1]
        position = row[:-1].index(query)
        answers.append(row[position + 1] - task.n_keys)
    return torch.tensor(answers)


def best_guess_without_lookup(task: LookupTask, tokens: torch.Tensor) -> float:
    """Accuracy of the best rule that sees the bag of values but cannot pair them with keys.

    Given only which values occur, each of the n_pairs slots is equally likely to hold the
    query's key, so the best guess is the most frequent value, right with probability
    (its count) / n_pairs. This is the ceiling for attention that cannot compare contents.
    """
    values = tokens[:, 1:-1:2] - task.n_keys
    counts = F.one_hot(values, task.n_values).sum(dim=1)
    return (counts.max(dim=1).values.float() / task.n_pairs).mean().item()


class LookupModel(nn.Module):
    """Token + previous-token + position embedding, one attention layer, linear readout."""

    def __init__(self, task: LookupTask, variant: str, n_embd: int = 64, n_head: int = 4) -> None:
        super().__init__()
        self.tok = nn.Embedding(task.vocab_size, n_embd)
        self.prev = nn.Embedding(task.vocab_size + 1, n_embd)  # id vocab_size: no previous
        self.pos = nn.Parameter(torch.randn(task.length, n_embd) * 0.02)
        self.ln_in = nn.LayerNorm(n_embd)
        self.attn = build_attention(variant, AttentionSpec(n_embd, n_head, task.length))
        self.ln_out = nn.LayerNorm(n_embd)
        self.head = nn.Linear(n_embd, task.n_values)
        self.start_id = task.vocab_size

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Logits over the values, read at the last (query) position: (batch, n_values)."""
        previous = F.pad(tokens[:, :-1], (1, 0), value=self.start_id)
        x = self.tok(tokens) + self.prev(previous) + self.pos[: tokens.shape[1]]
        x = x + self.attn(self.ln_in(x))
        return self.head(self.ln_out(x[:, -1]))


@dataclass
class LearningCurve:
    """One variant's held-out accuracy and loss at each evaluation step of the lookup task."""

    variant: str
    steps: list[int] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def final_accuracy(self) -> float:
        return self.accuracy[-1]


@dataclass(frozen=True)
class LookupConfig:
    """The lookup experiment: the task, the one-layer model's size and the training schedule."""

    task: LookupTask = LookupTask()
    steps: int = 1200
    batch: int = 64
    lr: float = 3e-3
    n_embd: int = 64
    n_head: int = 4
    eval_every: int = 25
    eval_size: int = 2000
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def held_out_set(config: LookupConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """The fixed evaluation sequences and answers every variant is scored on."""
    return make_batch(config.task, config.eval_size, torch.Generator().manual_seed(config.seed + 2))


@contextmanager
def _single_thread() -> Iterator[None]:
    """Tiny matrices: one thread is faster than several and gives the same numbers anywhere."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_lookup(variant: str, config: LookupConfig = LookupConfig()) -> LearningCurve:
    """Train one model on fresh batches; accuracy on a fixed held-out set every eval_every."""
    with _single_thread():
        return _train(variant, config)


def _train(variant: str, config: LookupConfig) -> LearningCurve:
    torch.manual_seed(config.seed)
    model = LookupModel(config.task, variant, config.n_embd, config.n_head)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.0)
    data_gen = torch.Generator().manual_seed(config.seed + 1)
    eval_tokens, eval_answers = held_out_set(config)
    curve = LearningCurve(variant)
    start = time.perf_counter()
    for step in range(config.steps + 1):
        if step % config.eval_every == 0 or step == config.steps:
            model.eval()
            with torch.no_grad():
                logits = model(eval_tokens)
            curve.steps.append(step)
            curve.accuracy.append((logits.argmax(dim=1) == eval_answers).float().mean().item())
            curve.loss.append(F.cross_entropy(logits, eval_answers).item())
            model.train()
        if step == config.steps:
            break
        tokens, answers = make_batch(config.task, config.batch, data_gen)
        loss = F.cross_entropy(model(tokens), answers)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    curve.seconds = time.perf_counter() - start
    return curve


def run_lookup_experiment(
    variants: tuple[str, ...] = ("vanilla", "synthesizer"), config: LookupConfig = LookupConfig()
) -> dict[str, LearningCurve]:
    """Learning curves of each variant on the same task, data and seed."""
    return {name: train_lookup(name, config) for name in variants}
