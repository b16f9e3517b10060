"""An interrupted consolidation (exception or SIGKILL of the writer) leaves the previous good files or nothing."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pytest

from core.publish import temp_owner
from pipeline.layouts import consolidate as consolidate_mod
from pipeline.layouts.consolidate import consolidate
from tests.fixtures_raw import make_raw_dataset

REPO = Path(__file__).resolve().parents[2]

# Runs consolidation in a child process whose writer announces (flag file) that it has written rows to its
# temporary files and then stalls, so that the test can SIGKILL it mid-way.
_CHILD = """
import sys, time
from pathlib import Path
from pipeline.layouts import consolidate as c
flag = Path(sys.argv[2])
original = c._BucketWriter.add
calls = [0]
def add(self, *a, **k):
    original(self, *a, **k)
    calls[0] += 1
    if calls[0] == 5:
        for w in c._open_writers_for_test:
            w.fh.flush()
        flag.write_text("mid-way")
        time.sleep(60)
init = c._BucketWriter.__init__
c._open_writers_for_test = []
def init2(self, *a, **k):
    init(self, *a, **k)
    c._open_writers_for_test.append(self)
c._BucketWriter.__init__ = init2
c._BucketWriter.add = add
c.consolidate(Path(sys.argv[1]), jobs=1)
"""


def digest(folder: Path) -> dict[str, str]:
    """sha256 of the published files (temporary ones start with a dot, core.publish)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("[!.]*.h5"))}


def kill_mid_way(dataset_dir: Path, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(dataset_dir), str(flag)], cwd=REPO,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + 60
        while not flag.exists():
            assert proc.poll() is None, "child exited before reaching the middle of the run"
            assert time.monotonic() < deadline, "child never reached the middle of the run"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_sigkill_leaves_previous_files_then_rerun_is_identical(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "kill", n_samples=24)
    consolidate(dataset_dir, jobs=1)
    good = digest(dataset_dir)
    # Make the next run differ so that a half-published run would show.
    (dataset_dir / "samples" / "000013").rename(dataset_dir / "samples" / ".tmp-000013-1")
    kill_mid_way(dataset_dir, tmp_path)
    assert digest(dataset_dir) == good, "a killed run changed the published files"
    debris = [p.name for p in dataset_dir.iterdir() if ".tmp-" in p.name]
    # The core temporary-name scheme: hidden, naming the dead writer and the file it was writing.
    assert debris and all(temp_owner(name) and temp_owner(name)[2].endswith(".h5") for name in debris)
    for path in dataset_dir.glob("[!.]*.h5"):
        with h5py.File(path, "r") as fh:
            assert fh["index"].shape[0] == fh["png_images"].shape[0]
    # The next run clears the debris and publishes the new content, the same bytes as any other run.
    consolidate(dataset_dir, jobs=1)
    assert not [p for p in dataset_dir.iterdir() if ".tmp-" in p.name]
    after = digest(dataset_dir)
    assert after["imgs_01.h5"] != good["imgs_01.h5"]  # sample 13 is gone from bucket 1
    consolidate(dataset_dir, jobs=1)
    assert digest(dataset_dir) == after


def test_sigkill_without_previous_files_leaves_no_output(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "fresh", n_samples=12)
    kill_mid_way(dataset_dir, tmp_path)
    assert not list(dataset_dir.glob("[!.]*.h5"))
    assert not (dataset_dir / "splits.json").exists()


def test_exception_mid_way_cleans_up(tmp_path, monkeypatch):
    dataset_dir = make_raw_dataset(tmp_path, "boom", n_samples=12)
    consolidate(dataset_dir, jobs=1)
    good = digest(dataset_dir)
    original, calls = consolidate_mod._BucketWriter.add, []

    def failing_add(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise RuntimeError("injected failure")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(consolidate_mod._BucketWriter, "add", failing_add)
    with pytest.raises(RuntimeError, match="injected failure"):
        consolidate(dataset_dir, jobs=1)
    assert digest(dataset_dir) == good
    assert not [p for p in dataset_dir.iterdir() if ".tmp-" in p.name]
