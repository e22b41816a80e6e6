"""What one training phase trains with: its settings, the learning-rate schedule and the optimizer.

AdamW (weight decay on matrix weights only, unless `decay_all_but_biases` asks for the classic
code's set), linear warmup then cosine decay by tokens seen with a 10 % floor, as in the classic
code; `clamp_schedule` keeps the rate at the floor after the cosine's end instead of letting it
rise again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class TrainConfig:
    """One training phase. Token counts drive the learning-rate schedule, as in the classic code."""

    epochs: int
    batch_size: int
    learning_rate: float
    warmup_tokens: int = 512 * 20
    # The cosine ends after final_epochs passes over the data (classic: 200).
    final_epochs: float = 200.0
    # The classic schedule keeps following the cosine after its end point (the rate rises
    # again); clamped schedules stay at the floor instead.
    clamp_schedule: bool = False
    lr_floor: float = 0.1
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    # Batches of similar-length examples waste less compute on padding (CPU speed-up).
    length_grouped: bool = False
    # Off: every epoch reads the examples in corpus order, as the classic code's DataLoader
    # does (it is built without shuffling). On: a fresh order every epoch.
    shuffle: bool = True
    # The classic code decays every parameter whose name lacks "bias" (its other filter word,
    # "LayerNorm.weight", names none of its modules), so its LayerNorm gains decay too. Off:
    # matrices only (embeddings included), never a gain or a bias.
    decay_all_but_biases: bool = False
    # How a batch's summed loss is normalised. Off: by the batch's own target characters, so
    # every batch weighs the same in a step; with length-grouped batches a character of a
    # short example then counts many times one of a long example. On: by the batch's size
    # times the epoch's mean target characters per example, so every character weighs the
    # same, as in the classic code's mixed batches, however the batches are grouped.
    epoch_token_mean: bool = False
    # Epochs between resumable checkpoints (0: only at the end).
    checkpoint_every: int = 1
    # How many weight snapshots to keep along the way (for "how much pretraining?").
    snapshots: int = 0
    # bf16 autocast on the CPU: weights, optimizer and loss stay float32; matrix products run
    # in bf16 where the CPU has bf16 instructions. Faster, but see `gpu_bf16`.
    cpu_bf16: bool = False
    # bf16 autocast on a GPU. Off: on the whole data, part-way through pretraining, bf16
    # gradients of the lower layers were found uncorrelated with the float64 ones (see the
    # performance appendix), and training in float32 is what the classic exercise does.
    gpu_bf16: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.warmup_tokens < 0 or self.final_epochs <= 0:
            raise ValueError("warmup_tokens must be >= 0 and final_epochs > 0")
        if self.length_grouped and not self.shuffle:
            raise ValueError("length_grouped batches reorder every epoch; they cannot keep the "
                             "corpus order (shuffle=False)")



def lr_multiplier(tokens: float, warmup_tokens: float, final_tokens: float, floor: float = 0.1,
                  clamp: bool = False) -> float:
    """Linear warmup to 1, then cosine decay to `floor` at `final_tokens`.

    Unclamped (the classic code), the cosine continues past `final_tokens`, so the rate
    climbs back towards 1 during long runs; clamped, it stays at the floor.
    """
    if tokens < warmup_tokens:
        return tokens / max(1.0, warmup_tokens)
    progress = (tokens - warmup_tokens) / max(1.0, final_tokens - warmup_tokens)
    if clamp:
        progress = min(progress, 1.0)
    return max(floor, 0.5 * (1.0 + math.cos(math.pi * progress)))


def schedule_tokens(cfg: TrainConfig, n_examples: int, block_size: int) -> tuple[int, int, int]:
    """(tokens per step at full batch, final tokens of the cosine, total tokens of the run)."""
    per_example = block_size - 1
    final = int(cfg.final_epochs * n_examples * block_size)
    return cfg.batch_size * per_example, final, cfg.epochs * n_examples * per_example


def make_optimizer(model: torch.nn.Module, cfg: TrainConfig, fused: bool = False,
                   capturable: bool = False) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices (dim >= 2) only, never on biases or LayerNorm; with
    `cfg.decay_all_but_biases`, on every parameter whose name lacks "bias", as the classic code
    does (`capturable`: its steps can be captured in a CUDA graph)."""
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if cfg.decay_all_but_biases:
        decay = [p for n, p in named if "bias" not in n]
        no_decay = [p for n, p in named if "bias" in n]
    else:
        decay = [p for _, p in named if p.dim() >= 2]
        no_decay = [p for _, p in named if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {"fused": True} if fused else {}
    if capturable:
        kwargs["capturable"] = True
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=tuple(cfg.betas), **kwargs)
