"""Pretraining and finetuning: one loop for both, resumable, logged, and deterministic on CPU.

`Trainer` runs epochs of `dataset.epoch(generator) -> (x, y)` batches through AdamW with the
schedule of `lib.core.train.config`. It keeps a JSON-lines metrics log and writes a resumable
training state every `checkpoint_every` epochs; a killed run restarted with the same arguments
continues from its last checkpoint and ends with the same weights as an uninterrupted run.
Tests reach into the loop through `Callback`s (stop early, replace a loss), not parameters.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist

# The text bar, also inside Jupyter (tqdm.auto would want ipywidgets there and warn).
from tqdm import tqdm

from lib.core.checkpoint import CheckpointError, save_weights
from lib.core.data import PAD_ID
from lib.core.metrics_log import append_lines, logged_seconds, truncate_log
from lib.core.model import lm_loss
from lib.core.train.config import TrainConfig, lr_multiplier, make_optimizer, schedule_tokens
from lib.core.train.graphed_step import StaticStep, make_rates_tensors, set_learning_rate
from lib.core.train.state import epoch_batches, load_state, save_state


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class EpochSource(Protocol):
    """What training reads: a whole epoch of (inputs, targets) at a time, drawn afresh from
    `generator` where the examples are random (span corruption), the same otherwise."""

    def __len__(self) -> int: ...

    def epoch(self, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]: ...


@dataclass
class TrainResult:
    """What a finished training reports to the record: its size, last loss and time, and where
    it resumed from if it was interrupted."""

    steps: int
    tokens: int
    epochs: int
    final_loss: float
    wall_time: float  # seconds of training, earlier interrupted processes' included
    resumed_from_epoch: int
    log_path: str | None
    # Steps replayed from a captured CUDA graph, and why capture failed if it did.
    graphed_steps: int = 0
    graph_failure: str | None = None
    earlier_seconds: float = 0.0  # the part of wall_time spent by earlier processes


class Callback:
    """A hook into the loop. The base class changes nothing; tests subclass it."""

    replaces_loss = False  # a loss hook needs eager steps (no captured CUDA graph)

    def on_loss(self, step: int, loss: torch.Tensor) -> torch.Tensor:
        return loss

    def stop(self, epochs_this_call: int) -> bool:
        """Whether to end the call after this many epochs (the state is kept, as if killed)."""
        return False


class StopAfterEpochs(Callback):
    """End the call after `epochs` epochs: an interruption at an epoch boundary."""

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def stop(self, epochs_this_call: int) -> bool:
        return epochs_this_call >= self.epochs


class ReplaceLoss(Callback):
    """Replace each step's loss by `fault(step, loss)` (to inject a NaN, for instance)."""

    replaces_loss = True

    def __init__(self, fault: Callable[[int, torch.Tensor], torch.Tensor]) -> None:
        self.fault = fault

    def on_loss(self, step: int, loss: torch.Tensor) -> torch.Tensor:
        return self.fault(step, loss)


def distributed_world() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless running inside an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


class Trainer:
    """Train `model` on `dataset`; `run()` trains (or resumes) to the end and returns a `TrainResult`.

    `state_path` holds the resumable state: if it exists the run continues from it. It is
    deleted once the run finishes, because the finished weights are the caller's to save.
    `cuda_graphs` runs every batch as a fixed-shape step (`lib.core.train.graphed_step`; a
    short last batch is padded), captured and replayed as a CUDA graph on a GPU: the same
    arithmetic, a fraction of the host's work. `epoch_checkpoints=False` writes no resumable
    state between epochs: for a machine whose files never come back, where each one only
    costs time. Under torchrun, every rank draws the same epoch, takes its slice of each
    global batch, and normalises its summed loss by the global count of target tokens, so the
    averaged gradient equals the single-process gradient of the same global batch.
    """

    def __init__(self, model: torch.nn.Module, dataset: EpochSource, cfg: TrainConfig, *, seed: int,
                 state_path: str | Path, log_path: str | Path | None = None,
                 device: str | torch.device = "cpu", progress: bool = True,
                 description: str = "train", snapshot_dir: str | Path | None = None,
                 amp: bool | None = None, compile_model: bool = False, cuda_graphs: bool = False,
                 epoch_checkpoints: bool = True, log_every: int | None = None,
                 callbacks: Sequence[Callback] = ()) -> None:
        self.model, self.dataset, self.cfg, self.seed = model, dataset, cfg, seed
        self.device = torch.device(device)
        self.state_path = Path(state_path)
        self.log_path = Path(log_path) if log_path is not None else None
        self.snapshot_dir = snapshot_dir
        self.description, self.progress = description, progress
        self.compile_model, self.epoch_checkpoints = compile_model, epoch_checkpoints
        self.callbacks = list(callbacks)
        on_gpu = self.device.type == "cuda"
        self.amp = (cfg.gpu_bf16 if on_gpu else cfg.cpu_bf16) if amp is None else amp
        model.to(self.device)
        torch.manual_seed(seed)
        self.generator = torch.Generator().manual_seed(seed)
        self.world, self.rank = distributed_world()
        # Fixed-shape steps: not with several processes, a compiled model or a loss hook.
        self.static = (cuda_graphs and self.world == 1 and not compile_model
                       and not any(c.replaces_loss for c in self.callbacks))
        self.optimizer = make_optimizer(model, cfg, fused=on_gpu, capturable=self.static and on_gpu)
        self.n = len(dataset)
        self.block = model.config.block_size
        _, self.final_tokens, _ = schedule_tokens(cfg, self.n, self.block)
        self.total_steps = math.ceil(self.n / cfg.batch_size) * cfg.epochs
        self.log_every = log_every or max(1, self.total_steps // 1000)
        self.fingerprint = {"train_config": asdict(cfg), "seed": seed, "examples": self.n,
                            "model_config": model.config.to_dict()}
        self.step, self.tokens, self.start_epoch, self.earlier = 0, 0, 0, 0.0
        self.last_loss = float("nan")
        self.log_lines: list[str] = []

    # ------------------------------------------------------------------ setting up
    def _resume(self) -> None:
        """Continue from the saved state, if any, and cut the log back to it."""
        if self.state_path.exists():
            meta = load_state(self.state_path, self.model, self.optimizer, self.generator)
            if meta["fingerprint"] != json.loads(json.dumps(self.fingerprint)):
                raise CheckpointError(
                    f"{self.state_path} belongs to a different run (other config, seed or data); "
                    "delete it or choose another output path")
            self.step, self.tokens, self.start_epoch = meta["step"], meta["tokens"], meta["epoch"]
            if self.log_path is not None:
                truncate_log(self.log_path, self.step)
                self.earlier = logged_seconds(self.log_path)
        elif self.log_path is not None and self.log_path.exists():
            self.log_path.unlink()
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)

    def _prepare(self) -> None:
        """What the steps run on: the graphed step, the compiled or distributed model, autocast."""
        device, cfg, on_gpu = self.device, self.cfg, self.device.type == "cuda"
        if self.static and on_gpu:  # after any resume: loading a state puts plain numbers back
            make_rates_tensors(self.optimizer, device)
        self.runner = StaticStep(self.model, self.optimizer, min(cfg.batch_size, self.n),
                                 self.block - 1, cfg.grad_clip, device, self.amp) if self.static else None
        self.is_main = self.rank == 0
        if not self.is_main:
            self.log_path, self.snapshot_dir = None, None
        trained = torch.compile(self.model) if self.compile_model else self.model
        if self.world > 1:
            trained = torch.nn.parallel.DistributedDataParallel(
                trained, device_ids=[device.index] if on_gpu else None)
        self.trained = trained
        self.autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if self.amp
                         else nullcontext())
        self.snapshot_epochs = set()
        if self.snapshot_dir is not None and cfg.snapshots:
            self.snapshot_epochs = {round(k * cfg.epochs / cfg.snapshots)
                                    for k in range(1, cfg.snapshots + 1)}
        self.bar = tqdm(total=self.total_steps, initial=self.step, desc=self.description,
                        disable=not (self.progress and self.is_main), unit="step", dynamic_ncols=True)
        self.started = time.time() - self.earlier
        self.loss_sum = torch.zeros((), device=device)
        self.loss_count = 0
        self.first_bad = torch.full((), -1, dtype=torch.long, device=device)
        # The step count on the device: recording where a loss first went bad must not make
        # the host wait for the device at every step (a copy of a Python int to the GPU does).
        self.step_on_device = torch.full((), self.step, dtype=torch.long, device=device)
        self.model.train()

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainResult:
        self._resume()
        self._prepare()
        for epoch in range(self.start_epoch, self.cfg.epochs):
            self._train_epoch(epoch)
            done = epoch + 1
            self._end_epoch(done)
            if any(c.stop(done - self.start_epoch) for c in self.callbacks):
                self.bar.close()
                return self._result(done)
        self.bar.close()
        if self.world > 1:
            dist.barrier()
        if self.is_main:
            self.state_path.unlink(missing_ok=True)
        self.model.eval()
        return self._result(self.cfg.epochs)

    def _train_epoch(self, epoch: int) -> None:
        x_all, y_all = self.dataset.epoch(self.generator)
        batches = epoch_batches(x_all, self.cfg, self.generator)
        # Lay the epoch out in batch order and send it to the device in one copy; each batch
        # is then a slice of it (no per-step indexing on the host, no per-step transfer).
        order = torch.cat(batches)
        x_host, y_host = x_all[order], y_all[order]
        lengths = (x_host != PAD_ID).sum(1)
        x_dev, y_dev = x_host.to(self.device), y_host.to(self.device)
        full_width = self.compile_model or self.static  # fixed shapes: every batch at full width
        per_example = (float((y_all != PAD_ID).sum()) / max(1, len(y_all))
                       if self.cfg.epoch_token_mean else 0.0)
        end = 0
        for batch in batches:
            start, end = end, end + len(batch)
            width = x_all.shape[1] if full_width else max(1, int(lengths[start:end].max()))
            target_tokens = int((y_host[start:end, :width] != PAD_ID).sum())
            self.tokens += len(batch) * (self.block - 1)
            lo, hi = start, end
            if self.world > 1:  # this rank's share, as `tensor_split` would cut the batch
                sizes = [len(part) for part in torch.arange(len(batch)).tensor_split(self.world)]
                lo = start + sum(sizes[:self.rank])
                hi = lo + sizes[self.rank]
            divisor = len(batch) * per_example if self.cfg.epoch_token_mean else target_tokens
            divisor = max(1.0, divisor)
            # The log shows what the steps minimise: the mean of the batches' means, or, with
            # epoch_token_mean, the mean per character over the batches since the last line.
            weight, count = (divisor, target_tokens) if self.cfg.epoch_token_mean else (1.0, 1)
            self._step(x_dev[lo:hi, :width], y_dev[lo:hi, :width], self.world / divisor,
                       log_weight=weight, log_count=count)
            if self.step % self.log_every == 0:
                self._flush(epoch)
        self._flush(epoch)
        if self.log_path is not None and self.log_lines:
            append_lines(self.log_path, self.log_lines)
            self.log_lines.clear()

    def _step(self, x: torch.Tensor, y: torch.Tensor, scale: float, log_weight: float = 1.0,
              log_count: int = 1) -> None:
        """One optimizer step on the summed loss times `scale` (1 / target tokens, times ranks;
        see `TrainConfig.epoch_token_mean`). The log's next line divides the sum of the losses
        times `log_weight` by the sum of the `log_count`s."""
        cfg = self.cfg
        mult = lr_multiplier(self.tokens, cfg.warmup_tokens, self.final_tokens, cfg.lr_floor,
                             cfg.clamp_schedule)
        set_learning_rate(self.optimizer, cfg.learning_rate * mult)
        runner = self.runner
        loss = runner(x, y, scale) if runner is not None and runner.fits(x) else None
        if loss is None:  # eager: no fixed shapes asked for, or the step cannot be captured
            with self.autocast:
                logits, _ = self.trained(x)
                loss = lm_loss(logits, y, reduction="sum") * scale
            for callback in self.callbacks:
                loss = callback.on_loss(self.step, loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
            self.optimizer.step()
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss.detach()),
                                     self.step_on_device, self.first_bad)
        self.step += 1
        self.step_on_device += 1
        self.loss_sum += loss.detach().float() * log_weight
        self.loss_count += log_count
        self.bar.update(1)

    def _flush(self, epoch: int) -> None:
        """Stop on a NaN or infinite loss; otherwise log the mean loss since the last line."""
        if self.world > 1:
            both = torch.stack([self.first_bad.float(), self.loss_sum.float()])
            dist.all_reduce(both[:1], op=dist.ReduceOp.MAX)
            dist.all_reduce(both[1:], op=dist.ReduceOp.SUM)
            bad, loss_total = int(both[0]), float(both[1]) / self.world
        else:
            bad, loss_total = int(self.first_bad), float(self.loss_sum)
        if bad >= 0:
            self.bar.close()
            raise TrainingDiverged(
                f"{self.description}: the loss became NaN or infinite at step {bad} (epoch "
                f"{epoch + 1}); training stopped; the last good checkpoint is {self.state_path}"
                + ("" if self.state_path.exists() else " (none was written yet)"))
        if self.loss_count:
            self.last_loss = loss_total / self.loss_count
            lr = float(self.optimizer.param_groups[0]["lr"])
            self.log_lines.append(json.dumps({
                "step": self.step, "epoch": epoch + 1, "tokens": self.tokens,
                "loss": round(self.last_loss, 6), "lr": lr,
                "time": round(time.time() - self.started, 3)}))
            self.bar.set_postfix(loss=f"{self.last_loss:.4f}", lr=f"{lr:.2e}")
            self.loss_sum = torch.zeros((), device=self.device)
            self.loss_count = 0

    def _end_epoch(self, done: int) -> None:
        """A weight snapshot where one is due, and the resumable state between epochs."""
        cfg = self.cfg
        if done in self.snapshot_epochs:
            save_weights(Path(self.snapshot_dir) / f"epoch{done:04d}.safetensors", self.model,
                         {"epoch": done, "step": self.step, "tokens": self.tokens,
                          "config": self.model.config.to_dict()})
        if (self.is_main and self.epoch_checkpoints and done < cfg.epochs and cfg.checkpoint_every
                and done % cfg.checkpoint_every == 0):
            save_state(self.state_path, self.model, self.optimizer, self.generator,
                       {"step": self.step, "tokens": self.tokens, "epoch": done,
                        "fingerprint": self.fingerprint})

    def _result(self, epochs: int) -> TrainResult:
        graphed = (0, None) if self.runner is None else (self.runner.replays, self.runner.failure)
        return TrainResult(self.step, self.tokens, epochs, self.last_loss,
                           time.time() - self.started, self.start_epoch,
                           str(self.log_path) if self.log_path else None, *graphed, self.earlier)


def train(model: torch.nn.Module, dataset: EpochSource, cfg: TrainConfig,
          **options: object) -> TrainResult:
    """`Trainer(model, dataset, cfg, **options).run()`: train, or resume, to the end."""
    return Trainer(model, dataset, cfg, **options).run()
