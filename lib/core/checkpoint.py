"""Checkpoints in safetensors: tensors and a JSON header only, so loading never runs code.

Two kinds share the format: *weights* (the model and its config, what `--writing-params-path`
names) and *training state* (weights plus optimizer moments, RNG states and progress),
which lets an interrupted run resume exactly where its last checkpoint left it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save_file

from lib.core.atomic import atomic_write

FORMAT = "attention-book/1"


class CheckpointError(ValueError):
    """A checkpoint file is missing, not safetensors, or not one of ours."""


def save_tensors(path: str | os.PathLike, tensors: dict[str, torch.Tensor], meta: dict) -> Path:
    """Write tensors with a JSON metadata header, atomically."""
    header = {"format": FORMAT, "meta": json.dumps(meta, sort_keys=True, default=str)}
    tensors = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=header))


def load_tensors(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Read a file written by `save_tensors`; anything else (a pickle, say) is refused."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        # Read the bytes once: safetensors' file loaders open the file by name for the header
        # and again for the tensors, so a checkpoint replaced in between (a run writing its
        # next one) could pair one version's header with the other's tensors.
        # Copies, so that the tensors own their memory: those `load` returns are views of the
        # immutable bytes objects it builds, and a resumed optimizer updates its state in place.
        raw = path.read_bytes()
        tensors = {key: value.clone() for key, value in load(raw).items()}
        header_size = int.from_bytes(raw[:8], "little")
        header = json.loads(raw[8 : 8 + header_size]).get("__metadata__") or {}
    except (SafetensorError, OSError, ValueError) as error:
        raise CheckpointError(
            f"{path} is not a safetensors checkpoint ({error}); refusing to load it "
            "(other formats such as pickle can execute code)"
        ) from None
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{path} is a safetensors file but not a checkpoint of this book")
    return tensors, json.loads(header["meta"])


def save_weights(path: str | os.PathLike, model: torch.nn.Module, meta: dict) -> Path:
    """A model's weights with `meta` (no optimizer state): what evaluation, snapshots and
    finetuning from a pretrained model load."""
    state = {k: v for k, v in model.state_dict().items()}
    return save_tensors(path, state, {"kind": "weights", **meta})


def load_weights(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict]:
    """Weights and metadata from a weights file, or the model's part of a training state, so
    either kind of checkpoint loads as a model."""
    tensors, meta = load_tensors(path)
    if meta.get("kind") not in ("weights", "state"):
        raise CheckpointError(f"{path} holds no model weights")
    weights = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    return (weights if meta.get("kind") == "state" else tensors), meta
