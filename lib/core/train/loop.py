"""Pretraining and finetuning: one loop for both, resumable, logged, and deterministic on CPU.

AdamW (weight decay on matrix weights only), linear warmup then cosine decay by tokens
seen with a 10 % floor, gradient-norm clipping. The loop keeps a JSON-lines metrics log
and writes a resumable training state (safetensors) every `checkpoint_every` epochs; a
killed run restarted with the same arguments continues from its last checkpoint and ends
with the same weights as an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.distributed as dist
import torch.nn.functional as F

# The text bar, also inside Jupyter (tqdm.auto would want ipywidgets there and warn).
from tqdm import tqdm

from lib.core.atomic import atomic_write_text
from lib.core.checkpoint import CheckpointError, load_tensors, save_tensors, save_weights
from lib.core.data import PAD_ID
from lib.core.train.graphed_step import StaticStep, make_rates_tensors, set_learning_rate
from lib.runs.profiles import TrainConfig


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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
                   capturable: bool = False):
    """AdamW with weight decay on matrices (dim >= 2) only, never on biases or LayerNorm
    (`capturable`: its steps can be captured in a CUDA graph)."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    kwargs = {"fused": True} if fused else {}
    if capturable:
        kwargs["capturable"] = True
    return torch.optim.AdamW(groups, lr=cfg.learning_rate, betas=tuple(cfg.betas), **kwargs)


@dataclass
class TrainResult:
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


def _logged_seconds(log_path: Path | None) -> float:
    """The training time an earlier process logged last (0 without a log): a resumed run's
    clock continues from it, so its log and record count every process's time."""
    if log_path is None or not log_path.exists():
        return 0.0
    lines = [line for line in log_path.read_text().splitlines() if line.strip()]
    return float(json.loads(lines[-1])["time"]) if lines else 0.0


def _batches(x: torch.Tensor, cfg: TrainConfig, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches for one epoch: shuffled, or grouped by length and then shuffled."""
    order = torch.randperm(len(x), generator=generator)
    if cfg.length_grouped:
        lengths = (x != PAD_ID).sum(1)
        order = order[torch.argsort(lengths[order], stable=True)]
        batches = list(order.split(cfg.batch_size))
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return list(order.split(cfg.batch_size))


def _save_state(path: Path, model, optimizer, generator, meta: dict) -> None:
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


def _load_state(path: Path, model, optimizer, generator) -> dict:
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


def _truncate_log(log_path: Path, last_step: int) -> None:
    """Drop log lines written after the checkpoint we resume from.

    The log is appended to, so a process killed mid-append leaves a torn last line; it
    was written after the checkpoint, so it goes too.
    """
    if not log_path.exists():
        return
    kept = []
    for line in log_path.read_text().splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            break
        if row is not None and row["step"] <= last_step:
            kept.append(line)
    atomic_write_text(log_path, "".join(line + "\n" for line in kept))


def train(
    model: torch.nn.Module,
    dataset,
    cfg: TrainConfig,
    *,
    seed: int,
    state_path: str | Path,
    log_path: str | Path | None = None,
    device: str | torch.device = "cpu",
    progress: bool = True,
    description: str = "train",
    snapshot_dir: str | Path | None = None,
    amp: bool | None = None,
    compile_model: bool = False,
    cuda_graphs: bool = False,
    epoch_checkpoints: bool = True,
    log_every: int | None = None,
    stop_after_epochs: int | None = None,
    fault: Callable[[int, torch.Tensor], torch.Tensor] | None = None,
) -> TrainResult:
    """Train `model` on `dataset` (anything with `epoch(generator) -> (x, y)`).

    `state_path` holds the resumable state: if it exists the run continues from it. It is
    deleted once the run finishes, because the finished weights are the caller's to save.
    `stop_after_epochs` ends the call early (used by tests that simulate interruption);
    `fault` may replace the loss of a step (used by tests that inject a NaN).
    `cuda_graphs` runs every batch as a fixed-shape step (`lib.core.train.graphed_step`; a short last
    batch is padded), captured and replayed as a CUDA graph on a GPU; the same arithmetic, a
    fraction of the host's work.
    `epoch_checkpoints=False` writes no resumable state between epochs (`checkpoint_every`
    is ignored): for a machine whose files never come back, where each one only costs time.
    """
    device = torch.device(device)
    state_path = Path(state_path)
    log_path = Path(log_path) if log_path is not None else None
    on_gpu = device.type == "cuda"
    amp = (cfg.gpu_bf16 if on_gpu else cfg.cpu_bf16) if amp is None else amp
    model.to(device)
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    # Under torchrun, every rank draws the same epoch, takes its slice of each global batch,
    # and normalises its summed loss by the global count of target tokens, so the averaged
    # gradient equals the single-process gradient of the same global batch.
    world, rank = distributed_world()
    # Fixed-shape steps: not with several processes, a compiled model or an injected fault.
    static = cuda_graphs and world == 1 and fault is None and not compile_model
    optimizer = make_optimizer(model, cfg, fused=on_gpu, capturable=static and on_gpu)
    n = len(dataset)
    block = model.config.block_size
    _, final_tokens, total_tokens = schedule_tokens(cfg, n, block)
    steps_per_epoch = math.ceil(n / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    log_every = log_every or max(1, total_steps // 1000)
    fingerprint = {"train_config": asdict(cfg), "seed": seed, "examples": n,
                   "model_config": model.config.to_dict()}

    step, tokens, start_epoch = 0, 0, 0
    earlier = 0.0
    if state_path.exists():
        meta = _load_state(state_path, model, optimizer, generator)
        if meta["fingerprint"] != json.loads(json.dumps(fingerprint)):
            raise CheckpointError(
                f"{state_path} belongs to a different run (other config, seed or data); "
                "delete it or choose another output path"
            )
        step, tokens, start_epoch = meta["step"], meta["tokens"], meta["epoch"]
        if log_path is not None:
            _truncate_log(log_path, step)
            earlier = _logged_seconds(log_path)
    elif log_path is not None and log_path.exists():
        log_path.unlink()
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)

    if static and on_gpu:  # after any resume: loading a state puts plain numbers back
        make_rates_tensors(optimizer, device)
    runner = StaticStep(model, optimizer, min(cfg.batch_size, n), block - 1, cfg.grad_clip, device,
                        amp) if static else None
    is_main = rank == 0
    if not is_main:
        log_path, snapshot_dir = None, None
    trained = torch.compile(model) if compile_model else model
    if world > 1:
        trained = torch.nn.parallel.DistributedDataParallel(
            trained, device_ids=[device.index] if on_gpu else None)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if amp
                else nullcontext())
    snapshot_epochs = set()
    if snapshot_dir is not None and cfg.snapshots:
        snapshot_epochs = {round(k * cfg.epochs / cfg.snapshots) for k in range(1, cfg.snapshots + 1)}

    bar = tqdm(total=total_steps, initial=step, desc=description, disable=not (progress and is_main),
               unit="step", dynamic_ncols=True)
    started = time.time() - earlier
    loss_sum = torch.zeros((), device=device)
    loss_count = 0
    first_bad = torch.full((), -1, dtype=torch.long, device=device)
    last_loss = float("nan")
    log_lines: list[str] = []
    model.train()

    def flush(epoch: int) -> None:
        nonlocal loss_sum, loss_count, last_loss
        if world > 1:
            both = torch.stack([first_bad.float(), loss_sum.float()])
            dist.all_reduce(both[:1], op=dist.ReduceOp.MAX)
            dist.all_reduce(both[1:], op=dist.ReduceOp.SUM)
            bad, loss_total = int(both[0]), float(both[1]) / world
        else:
            bad, loss_total = int(first_bad), float(loss_sum)
        if bad >= 0:
            bar.close()
            raise TrainingDiverged(
                f"{description}: the loss became NaN or infinite at step {bad} (epoch {epoch + 1}); "
                f"training stopped; the last good checkpoint is {state_path}"
                + ("" if state_path.exists() else " (none was written yet)")
            )
        if loss_count:
            last_loss = loss_total / loss_count
            lr = float(optimizer.param_groups[0]["lr"])
            log_lines.append(json.dumps({"step": step, "epoch": epoch + 1, "tokens": tokens,
                                         "loss": round(last_loss, 6), "lr": lr,
                                         "time": round(time.time() - started, 3)}))
            bar.set_postfix(loss=f"{last_loss:.4f}", lr=f"{lr:.2e}")
            loss_sum = torch.zeros((), device=device)
            loss_count = 0

    def graph_report() -> tuple[int, str | None]:
        return (0, None) if runner is None else (runner.replays, runner.failure)

    def write_log() -> None:
        if log_path is not None and log_lines:
            with open(log_path, "a", encoding="utf-8") as handle:
                handle.write("".join(line + "\n" for line in log_lines))
            log_lines.clear()

    # The step count on the device: recording where a loss first went bad must not make the
    # host wait for the device at every step (a copy of a Python int to the GPU does).
    step_on_device = torch.full((), step, dtype=torch.long, device=device)
    full_width = compile_model or static  # fixed shapes: every batch at the block's width
    epoch = start_epoch
    for epoch in range(start_epoch, cfg.epochs):
        x_all, y_all = dataset.epoch(generator)
        batches = _batches(x_all, cfg, generator)
        # Lay the epoch out in batch order and send it to the device in one copy; each batch
        # is then a slice of it (no per-step indexing on the host, no per-step transfer).
        order = torch.cat(batches)
        x_host, y_host = x_all[order], y_all[order]
        lengths = (x_host != PAD_ID).sum(1)
        x_dev, y_dev = x_host.to(device), y_host.to(device)
        end = 0
        for batch in batches:
            start, end = end, end + len(batch)
            width = x_all.shape[1] if full_width else max(1, int(lengths[start:end].max()))
            target_tokens = int((y_host[start:end, :width] != PAD_ID).sum())
            tokens += len(batch) * (block - 1)
            lo, hi = start, end
            if world > 1:  # this rank's share, as `tensor_split` would cut the batch
                sizes = [len(part) for part in torch.arange(len(batch)).tensor_split(world)]
                lo = start + sum(sizes[:rank])
                hi = lo + sizes[rank]
            x = x_dev[lo:hi, :width]
            y = y_dev[lo:hi, :width]
            mult = lr_multiplier(tokens, cfg.warmup_tokens, final_tokens, cfg.lr_floor,
                                 cfg.clamp_schedule)
            set_learning_rate(optimizer, cfg.learning_rate * mult)
            scale = world / max(1, target_tokens)
            loss = runner(x, y, scale) if runner is not None and runner.fits(x) else None
            if loss is None:  # eager: no fixed shapes asked for, or the step cannot be captured
                with autocast:
                    logits, _ = trained(x)
                    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                           y.reshape(-1), ignore_index=PAD_ID, reduction="sum")
                    loss = loss * scale
                if fault is not None:
                    loss = fault(step, loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                optimizer.step()
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()),
                                    step_on_device, first_bad)
            step += 1
            step_on_device += 1
            loss_sum += loss.detach().float()
            loss_count += 1
            bar.update(1)
            if step % log_every == 0:
                flush(epoch)
        flush(epoch)
        write_log()
        done = epoch + 1
        if done in snapshot_epochs:
            save_weights(Path(snapshot_dir) / f"epoch{done:04d}.safetensors", model,
                         {"epoch": done, "step": step, "tokens": tokens,
                          "config": model.config.to_dict()})
        if (is_main and epoch_checkpoints and done < cfg.epochs and cfg.checkpoint_every
                and done % cfg.checkpoint_every == 0):
            _save_state(state_path, model, optimizer, generator,
                        {"step": step, "tokens": tokens, "epoch": done,
                         "fingerprint": fingerprint})
        if stop_after_epochs is not None and done - start_epoch >= stop_after_epochs:
            bar.close()
            return TrainResult(step, tokens, done, last_loss, time.time() - started,
                               start_epoch, str(log_path) if log_path else None, *graph_report(),
                               earlier)
    bar.close()
    if world > 1:
        dist.barrier()
    if is_main:
        state_path.unlink(missing_ok=True)
    model.eval()
    return TrainResult(step, tokens, cfg.epochs, last_loss, time.time() - started, start_epoch,
                       str(log_path) if log_path else None, *graph_report(), earlier)


def distributed_world() -> tuple[int, int]:
    """(world size, rank): (1, 0) unless running inside an initialised process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def read_log(log_path: str | Path) -> list[dict]:
    """The metrics log as a list of dicts (step, epoch, tokens, loss, lr, time)."""
    return [json.loads(line) for line in Path(log_path).read_text().splitlines() if line.strip()]
