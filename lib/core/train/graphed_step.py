"""One training step with fixed shapes, replayed as a CUDA graph on a GPU.

A model this small spends most of an eager step in the host, launching several hundred tiny
kernels one by one. Captured once as a CUDA graph (forward, loss, backward, clipping and
AdamW), a whole step is one launch. Capture needs fixed shapes and fixed memory: inputs are
copied into static buffers at the full block width (padding adds no loss and, the model
being causal, changes no earlier position), the loss scale and the learning rate live in
device tensors, and the optimizer is built `capturable`. An epoch's short last batch is
padded with whole rows of padding (targets PAD, so they add no loss and no gradient), so
every step of a run replays the same graph. On the CPU the same step runs eagerly on the
same buffers, which is how the tests check everything but the capture.

The first few steps run eagerly on a side stream (CUDA lazily sets up its libraries during
them); the last of them runs with synchronising calls turned into errors, because a step
that waits for the host cannot be captured (and trying corrupts the capture). Then the step
is captured. If the check or the capture fails, `failure` says why, the capture stream is
left (the caller's stream is current again) and the caller goes on eagerly.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch

from lib.core.data import PAD_ID
from lib.core.model import lm_loss

WARMUP_STEPS = 3


def set_learning_rate(optimizer: torch.optim.Optimizer, value: float) -> None:
    """Set every group's rate; in place where it is a device tensor a graph reads."""
    for group in optimizer.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value


def make_rates_tensors(optimizer: torch.optim.Optimizer, device: torch.device) -> None:
    """Turn each group's learning rate into a device tensor (a captured step reads it there)."""
    for group in optimizer.param_groups:
        group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=device)


class StaticStep:
    """Training steps on batches of one fixed size, `rows` x `width` token ids."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, rows: int,
                 width: int, grad_clip: float, device: torch.device, amp: bool) -> None:
        self.model, self.optimizer, self.grad_clip = model, optimizer, grad_clip
        self.device = torch.device(device)
        self.capture = self.device.type == "cuda"
        self.amp = amp and self.capture
        self.x = torch.zeros(rows, width, dtype=torch.long, device=self.device)
        self.y = torch.full((rows, width), PAD_ID, dtype=torch.long, device=self.device)
        self.scale = torch.ones((), dtype=torch.float32, device=self.device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.loss: torch.Tensor | None = None
        self.warm = 0
        self.failure: str | None = None
        self.replays = 0
        self.side = torch.cuda.Stream(self.device) if self.capture else None

    def fits(self, x: torch.Tensor) -> bool:
        """A batch of the buffers' width and at most their rows (fewer: it is padded)."""
        rows, width = self.x.shape
        return self.failure is None and x.shape[1] == width and 0 < x.shape[0] <= rows

    def _load(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """Copy the batch into the static buffers; rows it lacks become padding rows."""
        n = x.shape[0]
        self.x[:n].copy_(x, non_blocking=True)
        self.y[:n].copy_(y, non_blocking=True)
        if n < self.x.shape[0]:
            self.x[n:].fill_(PAD_ID)
            self.y[n:].fill_(PAD_ID)

    def _body(self) -> torch.Tensor:
        """Forward, loss (summed, times the scale), backward, clipping, AdamW: the captured work."""
        # No cast cache under capture: cached casts would outlive the step they were made in.
        context = (torch.autocast(self.device.type, dtype=torch.bfloat16, cache_enabled=False)
                   if self.amp else nullcontext())
        with context:
            logits, _ = self.model(self.x)
            loss = lm_loss(logits, self.y, reduction="sum") * self.scale
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        return loss.detach()

    def __call__(self, x: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor | None:
        """One step on (x, y) with the loss multiplied by `scale`; its loss, or None when the
        step cannot be captured (then `failure` says why and the caller steps eagerly)."""
        self._load(x, y)
        self.scale.fill_(scale)
        if self.graph is not None:
            self.graph.replay()
            self.replays += 1
            return self.loss
        if not self.capture:
            self.optimizer.zero_grad(set_to_none=True)
            return self._body()
        if self.warm < WARMUP_STEPS:
            return self._warm_up(last=self.warm == WARMUP_STEPS - 1)
        return self._capture()

    def _warm_up(self, last: bool) -> torch.Tensor | None:
        """An eager step on the side stream; the last one refuses to synchronise with the host."""
        current = torch.cuda.current_stream(self.device)
        self.side.wait_stream(current)
        previous_mode = torch.cuda.get_sync_debug_mode()
        try:
            with torch.cuda.stream(self.side):
                self.optimizer.zero_grad(set_to_none=True)
                if last:
                    torch.cuda.set_sync_debug_mode("error")
                loss = self._body()
        except RuntimeError as error:
            if not last:
                raise
            # A host sync in the step: capture would fail on it. The step may have stopped
            # half-way; the caller redoes it eagerly from fresh gradients.
            self.failure = "a synchronising call in the step: " + _first_line(error)
            return None
        finally:
            torch.cuda.set_sync_debug_mode(previous_mode)
            current.wait_stream(self.side)
        self.warm += 1
        return loss

    def _capture(self) -> torch.Tensor | None:
        """Capture the step as a graph and replay it once; None (and `failure`) if it fails."""
        self.optimizer.zero_grad(set_to_none=True)
        before = torch.cuda.current_stream(self.device)
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self.loss = self._body()
        except Exception as error:  # an operation that cannot be captured: stay eager
            self.failure = "capture failed: " + _first_line(error)
            self.loss = None
            leave_capture(graph, before)
            self.optimizer.zero_grad(set_to_none=True)
            return None
        self.graph = graph
        self.graph.replay()
        self.replays += 1
        return self.loss


def leave_capture(graph: torch.cuda.CUDAGraph, stream: torch.cuda.Stream) -> None:
    """After a failed capture: end it if it is still open and make `stream` current again.

    `torch.cuda.graph` ends the capture on exit, but when ending raises (a capture broken by
    an illegal call), it never switches back from its capture stream; eager steps that went
    on there would race the caller's stream.
    """
    if torch.cuda.is_current_stream_capturing():
        try:
            graph.capture_end()
        except RuntimeError:
            pass  # the capture is over either way; the partial graph is dropped
    torch.cuda.set_stream(stream)
    torch.cuda.synchronize(stream.device)


def _first_line(error: BaseException) -> str:
    """`Type: message` of the error's first cause (a failed capture end hides the real one)."""
    cause = error
    while True:
        inner = cause.__cause__ or (None if cause.__suppress_context__ else cause.__context__)
        if inner is None:
            break
        cause = inner
    text = f"{type(cause).__name__}: {cause}".strip().splitlines()
    return text[0] if text else type(cause).__name__
