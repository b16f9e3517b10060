"""The trainer's default thread count: the cores idle at start, shared by torchrun's local processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from train import threads


def test_free_cores_sees_a_busy_process():
    """Idle cores are measured from /proc/stat: a busy loop beside the measurement takes about one core away."""
    cores = os.cpu_count() or 1
    alone = threads.free_cores(0.3)
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        beside = threads.free_cores(0.3)
    finally:
        busy.kill()
        busy.wait()
    assert 0.0 <= beside <= cores and 0.0 <= alone <= cores
    assert beside < cores - 0.5, (alone, beside)


def test_pick_threads_rounds_and_shares_the_free_cores(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(threads, "free_cores", lambda seconds=0.0: 1.6)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert threads.pick_threads(0) == 2
    assert threads.pick_threads(3) == 3  # an explicit --threads wins
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert threads.pick_threads(0) == 1
    monkeypatch.setattr(threads, "free_cores", lambda seconds=0.0: 0.1)
    assert threads.pick_threads(0) == 1  # never fewer than one
