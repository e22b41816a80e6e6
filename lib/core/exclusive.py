"""One process per run: an advisory lock on a file beside the run's checkpoints.

Two processes training the same run would both resume from its checkpoint and append to its
metrics log, or one would delete the log the other writes. That happens easily with runs
that take many hours: a second copy of a driver started while the first still runs. The
lock (`flock`) belongs to the open file, so the kernel releases it when its process ends,
however it ends: a killed run leaves at most an unlocked file, which the next process takes.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

try:
    import fcntl
except ImportError:  # not on Windows: there the lock is skipped, not faked
    fcntl = None


class RunBusyError(RuntimeError):
    """Another live process holds this run's lock."""


def _same_file(path: Path, handle) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(handle.fileno()).st_ino
    except FileNotFoundError:
        return False


@contextmanager
def one_process(lock_path: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold `lock_path` while the block runs, or raise `RunBusyError` at once if another
    process holds it (the message names that process and says `what` is busy). The file is
    removed when the block ends."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    for _ in range(10):
        handle = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - closed below
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise RunBusyError(f"{what} is already running ({holder}); wait for it to finish or "
                               f"stop that process (its lock: {lock_path})") from None
        if _same_file(lock_path, handle):
            break
        handle.close()  # its holder removed it between our open and our lock: open it anew
    else:
        raise RunBusyError(f"could not take the lock {lock_path} for {what}: it keeps being replaced")
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()}\n")
        handle.flush()
        yield
    finally:
        lock_path.unlink(missing_ok=True)  # while still held, so nobody locks the old file for good
        handle.close()
