"""The resumable training state (safetensors) and the order of an epoch's batches: the two
things that make a resumed run end with the same weights as an uninterrupted one."""

from __future__ import annotations

from pathlib import Path

import torch

from lib.core.checkpoint import CheckpointError, load_tensors, save_tensors
from lib.core.data import PAD_ID
from lib.core.train.config import TrainConfig


def epoch_batches(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches for one epoch: shuffled, grouped by length and then shuffled, or in
    corpus order (`shuffle` off, as the classic code reads its data)."""
    if not cfg.shuffle:
        return list(torch.arange(len(x)).split(cfg.batch_size))
    order = torch.randperm(len(x), generator=generator)
    if cfg.length_grouped:
        lengths = (x != PAD_ID).sum(1)
        order = order[torch.argsort(lengths[order], stable=True)]
        batches = list(order.split(cfg.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return list(order.split(cfg.batch_size))


def computed_positions(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> int:
    """Positions one epoch of `x` costs when batches are formed by `cfg` (`epoch_batches`)
    and each is cut to its longest example, as the training loop cuts them: how much
    padding the batching leaves for the model to compute."""
    lengths = (x != PAD_ID).sum(1)
    return sum(len(b) * max(1, int(lengths[b].max())) for b in epoch_batches(x, cfg, generator))


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               generator: torch.Generator, meta: dict) -> None:
    """Everything a run needs to continue exactly: weights, optimizer moments, both RNGs."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    tensors["rng.torch"] = torch.get_rng_state()
    tensors["rng.data"] = generator.get_state()
    if torch.cuda.is_available():
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    groups = [{k: (float(v) if isinstance(v, torch.Tensor) else v) for k, v in g.items()
               if k != "params"} | {"params": g["params"]} for g in opt["param_groups"]]
    save_tensors(path, tensors, {**meta, "kind": "state", "param_groups": groups})


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               generator: torch.Generator) -> dict:
    """Put a saved state back into `model`, `optimizer`, the global RNGs and `generator`."""
    tensors, meta = load_tensors(path)
    if meta.get("kind") != "state":
        raise CheckpointError(f"{path} is not a training state")
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    torch.set_rng_state(tensors["rng.torch"])
    generator.set_state(tensors["rng.data"])
    if "rng.cuda" in tensors and torch.cuda.is_available():
        torch.cuda.set_rng_state(tensors["rng.cuda"])
    return meta
