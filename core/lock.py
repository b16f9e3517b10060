"""One lock per dataset folder, taken by every writer: render drivers, render.py, consolidation, exports, imports.

The lock is an exclusive `flock` on `DATA_DIR/NAME/.lock`, held for the writer's whole run and released by the
kernel when the process dies (a SIGKILLed writer never leaves a stale lock). The file records the holder (pid,
host, what it does), so a second writer is refused at once with a message naming them.

A writer that starts helper processes for the same job (the render driver's per-shard `render.py` processes)
hands its lock down through the environment: `LOCK_ENV` names the folder whose lock the parent holds, and a
child asking for that folder's lock runs under the parent's instead of being refused.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from core.process import hostname

LOCK_NAME = ".lock"
LOCK_ENV = "NSD_DATASET_LOCK_HELD"


class DatasetLockedError(RuntimeError):
    """Another writer holds the dataset folder's lock; the message names it."""


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process (it recorded nothing)"
    since = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(holder.get("since", 0)))
    return f"{holder.get('what', 'a writer')} (pid {holder.get('pid')} on {holder.get('host')}, since {since})"


class DatasetLock:
    """The exclusive writer lock of one dataset folder, as a context manager.

    Args:
        dataset_dir: `DATA_DIR/NAME` (created if missing).
        what: what the holder does, shown to a refused second writer (e.g. "distributed_render.py").

    Raises (on enter):
        DatasetLockedError: another process holds the lock.
    """

    def __init__(self, dataset_dir: str | os.PathLike, what: str) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.what = what
        self.path = self.dataset_dir / LOCK_NAME
        self._fd: int | None = None
        self.inherited = False

    def __enter__(self) -> DatasetLock:
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        if os.environ.get(LOCK_ENV) == str(self.dataset_dir.resolve()):
            self.inherited = True  # our parent holds it for this very job
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(self.dataset_dir)
            os.close(fd)
            raise DatasetLockedError(
                f"{self.dataset_dir} is being written by {_describe(holder)}; wait for it to finish "
                "(or stop it) before writing this dataset") from None
        info = {"pid": os.getpid(), "host": hostname(), "what": self.what, "since": int(time.time())}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(info, sort_keys=True) + "\n").encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def child_env(self) -> dict[str, str]:
        """Environment entries that let a child process of this job write under this lock."""
        return {LOCK_ENV: str(self.dataset_dir.resolve())}


def check_unlocked(dataset_dir: str | os.PathLike, what: str) -> None:
    """Raises DatasetLockedError when another writer holds the folder's lock (takes and drops it otherwise)."""
    if Path(dataset_dir).is_dir():
        with DatasetLock(dataset_dir, what):
            pass


def read_holder(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """What the current (or last) holder recorded in the lock file; {} when nothing readable is there."""
    try:
        return json.loads((Path(dataset_dir) / LOCK_NAME).read_text() or "{}")
    except (OSError, ValueError):
        return {}
