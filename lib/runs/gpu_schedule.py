"""Running the jobs of `make gpu-run` side by side: at most one pretraining at a time, a job
not started when it would not finish before the deadline, every change saved at once (the
order and the reasons are in `lib.runs.gpu_run`'s docstring)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from lib.runs.gpu_plan import (
    finished_before,
    graph_use,
    needs_pretraining,
    training_speed,
)
from lib.runs.matrix import Run, RunPaths, run_id
from lib.runs.records import REPO_ROOT, results_root

# Seconds kept free before the deadline to stop the jobs and pack (at most a tenth of it).

STOP_GRACE_S = 10.0  # after SIGTERM, before SIGKILL
POLL_S = 0.5


@dataclass
class Running:
    """A job's process while it runs."""

    job: Run
    process: subprocess.Popen
    log: IO
    started: float
    pretraining: bool
    pretrained_at: float | None = None


@dataclass
class Matrix:
    """Runs jobs as processes, at most `slots` at once and one pretraining at a time, in
    the order given; calls `changed` with every job's entry so far whenever one starts or ends."""

    profile: str
    jobs: list[Run]
    slots: int
    device: str
    environment: dict[str, str]
    stop_at: float | None = None
    force: bool = False
    changed: Callable[[list[dict]], None] = lambda entries: None
    poll: float = POLL_S
    started: float = field(default_factory=time.time)

    def __post_init__(self) -> None:
        self.pending: list[Run] = list(self.jobs)
        self.running: list[Running] = []
        self.entries: dict[str, dict] = {}
        self.durations: dict[str, list[float]] = {}
        self.log_dir = results_root() / self.profile / "logs"

    def command(self, job: Run) -> list[str]:
        cmd = [sys.executable, "-m", "lib", "run", job.kind, "--profile", job.profile(self.profile),
               "--variant", job.variant, "--seed", str(job.seed), "--device", self.device,
               "--no-progress"]
        return cmd + (["--force"] if self.force else [])

    def run(self) -> list[dict]:
        """Every job's entry (status, seconds, speed...), in the order of `jobs`."""
        try:
            for job in list(self.pending):
                if not self.force and finished_before(job.profile(self.profile), job):
                    self.pending.remove(job)
                    self._note(job, "already done")
            while self.pending or self.running:
                events = self._reap()
                self._notice_pretrainings_done()
                if self.stop_at is not None and time.time() >= self.stop_at:
                    self._stop_all("stopped at the deadline")
                    self._give_up_pending("the deadline came")
                    events = True
                events |= self._start_what_may()
                if events:
                    self.changed(self.entries_in_order())
                if self.pending or self.running:
                    time.sleep(self.poll)
        finally:
            if self.running or self.pending:  # interrupted: leave no process behind
                self._stop_all("stopped (interrupted)")
                self._give_up_pending("interrupted")
        return self.entries_in_order()

    def entries_in_order(self) -> list[dict]:
        now = time.time()
        for running in self.running:
            self._note(running.job, "running", started=running.started, ended=now,
                       pretrained_at=running.pretrained_at)
        return [self.entries[job.key] for job in self.jobs if job.key in self.entries]

    def may_start(self, job: Run) -> bool:
        """A job that will pretrain waits while another job pretrains."""
        return not (needs_pretraining(job.profile(self.profile), job, self.force)
                    and any(r.pretraining for r in self.running))

    def estimate(self, job: Run) -> float | None:
        """Seconds the job should take: the longest finished job of its kind (in this
        invocation, or in earlier ones on the same device), if any."""
        return max(self.durations.get(job.kind, []), default=None)

    def _start_what_may(self) -> bool:
        started = False
        while len(self.running) < self.slots:
            job = next((j for j in self.pending if self.may_start(j)), None)
            if job is None:
                break
            self.pending.remove(job)
            started = True
            left = None if self.stop_at is None else self.stop_at - time.time()
            needed = self.estimate(job)
            if left is not None and needed is not None and needed > left:
                self._note(job, "not started",
                           reason=f"would not finish: a {job.kind} job took {needed:.0f} s, "
                                  f"{left:.0f} s were left")
                print(f"  not started (would not finish in time): {job.key}", flush=True)
                continue
            self.running.append(self._start(job))
        return started

    def _start(self, job: Run) -> Running:
        path = self.log_dir / f"{job.key}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "w")  # closed when reaped or stopped
        pretraining = needs_pretraining(job.profile(self.profile), job, self.force)
        process = subprocess.Popen(self.command(job), cwd=REPO_ROOT, stdout=log,
                                   stderr=subprocess.STDOUT, env=self.environment)
        print(f"  started: {job.key}" + (" (pretraining)" if pretraining else ""), flush=True)
        return Running(job, process, log, time.time(), pretraining)

    def _notice_pretrainings_done(self) -> None:
        for running in self.running:
            if not running.pretraining:
                continue
            record = RunPaths.of(running.job.profile(self.profile),
                                 run_id("pretrain", running.job.variant, running.job.seed)).record
            try:
                done = record.stat().st_mtime >= running.started
            except FileNotFoundError:
                done = False
            if done:
                running.pretraining, running.pretrained_at = False, time.time()

    def _reap(self) -> bool:
        ended = [r for r in self.running if r.process.poll() is not None]
        for running in ended:
            self.running.remove(running)
            running.log.close()
            code = running.process.returncode
            status = "done" if code == 0 else "failed"
            entry = self._note(running.job, status, returncode=code, started=running.started,
                               ended=time.time(), pretrained_at=running.pretrained_at)
            if status == "done":
                self.durations.setdefault(running.job.kind, []).append(entry["seconds"])
            else:
                tail = (self.log_dir / f"{running.job.key}.log").read_text().splitlines()[-15:]
                print("\n".join(tail), flush=True)
        return bool(ended)

    def _stop_all(self, status: str) -> None:
        """Stopped, not failed: no record is written for these jobs."""
        for running in list(self.running):
            running.process.terminate()
        for running in list(self.running):
            try:
                running.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                running.process.kill()
                running.process.wait()
            running.log.close()
            self.running.remove(running)
            self._note(running.job, status, started=running.started, ended=time.time(),
                       pretrained_at=running.pretrained_at)

    def _give_up_pending(self, reason: str) -> None:
        for job in self.pending:
            self._note(job, "not started", reason=reason)
            print(f"  not started ({reason}): {job.key}", flush=True)
        self.pending = []

    def _note(self, job: Run, status: str, returncode: int | None = None,
              started: float | None = None, ended: float | None = None,
              pretrained_at: float | None = None, reason: str | None = None) -> dict:
        entry = {"run_id": job.key, "kind": job.kind, "variant": job.variant, "seed": job.seed,
                 "status": status, "returncode": returncode, "seconds": 0.0}
        if job.recipe:
            entry["recipe"] = list(job.recipe)
        if started is not None:
            entry.update(started_s=round(started - self.started, 1),
                         seconds=round((ended or time.time()) - started, 1),
                         log=f"logs/{job.key}.log",
                         steps_per_second=training_speed(job.profile(self.profile), job),
                         cuda_graphs=graph_use(job.profile(self.profile), job))
        if pretrained_at is not None:
            entry["pretrained_after_s"] = round(pretrained_at - started, 1)
        if reason is not None:
            entry["reason"] = reason
        self.entries[job.key] = entry
        if status not in ("running", "not started"):
            took = f" in {entry['seconds']} s" if started is not None else ""
            print(f"  {status}: {job.key}{took}", flush=True)
        return entry
