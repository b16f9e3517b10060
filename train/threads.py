"""How many torch CPU threads a training process takes: the cores that are free when it starts.

Measured (bench/bench_train.py, "Trainer under load"): at the CPU defaults a second torch thread gains little on
an idle 2-core machine, while beside a busy process two threads train slower than one even with passive OpenMP
waits, because each step waits for the thread whose core is taken. So `--threads 0` (the default) counts the cores
that were idle over a short window and splits them between the processes of a `torchrun` job.
"""

from __future__ import annotations

import logging
import os
import time

log = logging.getLogger(__name__)

#: Seconds over which idle CPU time is sampled at start (long enough to see a busy process, short beside a run).
SAMPLE_SECONDS = 0.3


def _cpu_times() -> tuple[float, float] | None:
    """(idle, total) jiffies since boot from /proc/stat, or None where there is no /proc (not Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return idle, sum(fields[:8])


def free_cores(seconds: float = SAMPLE_SECONDS) -> float:
    """Cores left idle by other processes over `seconds` (falls back to cores minus the 1-minute load average)."""
    cores = os.cpu_count() or 1
    before = _cpu_times()
    if before is None:
        return max(0.0, cores - os.getloadavg()[0])
    time.sleep(seconds)
    after = _cpu_times()
    total = after[1] - before[1]
    if total <= 0:
        return float(cores)
    return cores * (after[0] - before[0]) / total


def pick_threads(requested: int) -> int:
    """`requested` threads if > 0, else the free cores at start shared by this machine's training processes."""
    if requested > 0:
        return requested
    local = max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1")))
    threads = max(1, int(free_cores() / local + 0.5))
    log.info("torch CPU threads: %d (free cores at start, shared by %d local process%s; --threads sets it)",
             threads, local, "" if local == 1 else "es")
    return threads
