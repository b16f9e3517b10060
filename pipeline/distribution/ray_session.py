"""The driver's Ray connection: a running cluster (`--address`), or an embedded one on every core of this machine.

An embedded Ray is shut down on every way out of the driver (return, exception, Ctrl-C, SIGTERM). A driver
killed with SIGKILL cannot do that, and Ray's dashboard and runtime-env agents then live on, orphaned (seen:
over 60 s), under names (`ray::DashboardAgent`) that say nothing of their session. So each embedded Ray keeps
its files under `/tmp/nsd-driver-ray-<driver pid>` (Ray's temp dir; short, since Ray's socket paths must fit in
107 bytes) with `processes.json`, the pids and start times of the driver's Ray processes; the next driver on
this machine stops the recorded processes of every such folder whose driver is dead and deletes the folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil

from core import publish
from core.process import pid_alive

logger = logging.getLogger(__name__)

TEMP_PREFIX = "nsd-driver-ray-"


def _temp_root() -> Path:
    return Path(tempfile.gettempdir())


def session_dir(pid: int | None = None) -> Path:
    """The temp dir of the embedded Ray of driver `pid` (this process by default)."""
    return _temp_root() / f"{TEMP_PREFIX}{os.getpid() if pid is None else pid}"


RECORD = "processes.json"


def record_processes(folder: Path) -> None:
    """Writes the pids and start times of this driver's descendants (its embedded Ray) to `folder/processes.json`."""
    if not folder.is_dir():  # the session is over already
        return
    procs = []
    for proc in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            procs.append({"pid": proc.pid, "create_time": proc.create_time()})
    with contextlib.suppress(OSError):
        publish.write_json(folder / RECORD, sorted(procs, key=lambda p: p["pid"]))


def processes_of(folder: Path) -> list[psutil.Process]:
    """The recorded processes of `folder` that still run (matched by pid and start time, never a reused pid)."""
    try:
        recorded = json.loads((folder / RECORD).read_text())
    except (OSError, ValueError):
        return []
    found = []
    for item in recorded:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied, KeyError, TypeError):
            proc = psutil.Process(int(item["pid"]))
            if abs(proc.create_time() - float(item["create_time"])) < 0.01:
                found.append(proc)
    return found


def clean_dead_sessions() -> list[Path]:
    """Stops the leftover Ray processes of embedded sessions whose driver died, and deletes their folders."""
    cleaned = []
    for folder in sorted(_temp_root().glob(f"{TEMP_PREFIX}*")):
        pid = folder.name[len(TEMP_PREFIX):]
        if not pid.isdigit() or pid_alive(int(pid)):
            continue
        procs = processes_of(folder)
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.terminate()
        _, alive = psutil.wait_procs(procs, timeout=5)
        for proc in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        shutil.rmtree(folder, ignore_errors=True)
        logger.warning("stopped %d Ray process(es) left by dead driver %s (%s)", len(procs), pid, folder)
        cleaned.append(folder)
    return cleaned


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through the `finally` that shuts Ray down


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[None]:
    """Connects to the cluster at `address`, or starts an embedded Ray on every core; shuts down what it started.

    A SIGTERM during the session exits through the shutdown too (exit status 143).
    """
    import ray

    if ray.is_initialized():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _exit_on_sigterm)
    own_dir = None
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            clean_dead_sessions()
            own_dir = session_dir()
            ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, _temp_dir=str(own_dir))
            record_processes(own_dir)
            # the agents start a moment after init returns: record again once they are up
            timer = threading.Timer(3.0, record_processes, args=(own_dir,))
            timer.daemon = True
            timer.start()
        try:
            yield
        finally:
            start = time.perf_counter()
            ray.shutdown()
            logger.debug("ray.shutdown took %.1f s", time.perf_counter() - start)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if own_dir is not None:
            for proc in processes_of(own_dir):  # agents that outlive shutdown would hold the folder
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            shutil.rmtree(own_dir, ignore_errors=True)
