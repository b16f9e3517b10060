"""Faults of consolidation (docs/reliability.md): a full disk, and a kill -9 between the renames of one generation
beside an older one. Each asserts the message, the exit status and what is on disk afterwards."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.layouts.consolidate import consolidate
from pipeline.layouts.generations import GenerationMixError, check_generation
from pipeline.layouts.preprocess import preprocess
from tests.fixtures_raw import make_raw_dataset

REPO = Path(__file__).resolve().parents[2]


def _published(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("[!.]*.h5"))}


def _cli(dataset_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "preprocess_data.py"), "-d", dataset_dir.name, *args],
                          cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, "DATA_DIR": str(dataset_dir.parent)})


@pytest.fixture
def small_disk(tmp_path):
    """A tmpfs of `size` KiB at tmp_path/disk (CI runs as root, which may mount one); `resize(kib)` grows it."""
    mount = tmp_path / "disk"
    mount.mkdir()
    state = {"mounted": False}

    def make(kib: int) -> Path:
        opts = f"remount,size={kib}k" if state["mounted"] else f"size={kib}k"
        cmd = ["mount", "-o", opts, str(mount)] if state["mounted"] else ["mount", "-t", "tmpfs", "-o", opts,
                                                                          "tmpfs", str(mount)]
        subprocess.run(cmd, check=True)
        state["mounted"] = True
        return mount

    yield make
    if state["mounted"]:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _du_kib(folder: Path) -> int:
    """KiB the folder takes on a file system of 4 KiB blocks (tmpfs counts whole pages)."""
    return sum(4 * -(-p.stat().st_size // 4096) for p in folder.rglob("*")) + 4 * sum(1 for _ in folder.rglob("*"))


def test_full_disk_gives_one_line_and_leaves_no_temporary_file(tmp_path, small_disk):
    raw = make_raw_dataset(tmp_path / "src", "ds", 12, n_views=4, resolution=(32, 32))
    reference = tmp_path / "ref" / "ds"
    shutil.copytree(raw, reference)
    consolidate(reference)
    disk = small_disk(_du_kib(raw) + 96)  # the raw samples fit, the scene files do not
    shutil.copytree(raw, disk / "ds")
    result = _cli(disk / "ds", "-f")
    lines = [line for line in result.stderr.splitlines() if "ERROR" in line]
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and "no space left on device for" in lines[0] and "bytes needed" in lines[0] \
        and "bytes free" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not [p for p in (disk / "ds").iterdir() if p.name.startswith(".tmp-") or p.suffix == ".h5"]
    # with space, the same bytes as a consolidation that never met a full disk
    small_disk(_du_kib(raw) + 64 * 1024)
    assert _cli(disk / "ds", "-f").returncode == 0
    assert _published(disk / "ds") == _published(reference)


# Runs consolidation in a child that stalls after the first of its renames, so the test can SIGKILL it between two
# renames of one generation: the worst moment, when a new split file sits beside older ones.
_CHILD = """
import os, sys, time
from pathlib import Path
from pipeline.formats import hdf5
from pipeline.layouts.consolidate import consolidate
flag = Path(sys.argv[2])
real = os.replace
def replace(src, dst):
    real(src, dst)
    flag.write_text(str(dst))
    time.sleep(60)
hdf5.os.replace = replace
consolidate(Path(sys.argv[1]), jobs=1)
"""


def test_kill_between_renames_beside_an_older_generation_is_flagged_and_mended(tmp_path):
    dataset = make_raw_dataset(tmp_path, "ds", 24, n_views=3)
    aside = tmp_path / "aside"
    aside.mkdir()
    for index in range(12, 24):  # an older consolidation of the first half only
        shutil.move(str(dataset / "samples" / f"{index:06d}"), str(aside / f"{index:06d}"))
    consolidate(dataset)
    older = check_generation(dataset)
    for index in range(12, 24):  # more samples rendered since
        shutil.move(str(aside / f"{index:06d}"), str(dataset / "samples" / f"{index:06d}"))
    flag = tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(dataset), str(flag)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 120
    while not flag.exists():
        assert proc.poll() is None and time.monotonic() < deadline, "the consolidation never reached a rename"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with pytest.raises(GenerationMixError, match="come from another consolidation than consolidation.json") as err:
        check_generation(dataset)
    assert Path(flag.read_text()).name in str(err.value) and "preprocess_data.py -d ds -f" in str(err.value)
    # the next consolidation mends it: one generation again, new and different from the older one
    consolidate(dataset)
    assert check_generation(dataset) not in (None, older)


def test_preprocess_refuses_buckets_of_two_generations(tmp_path):
    dataset = make_raw_dataset(tmp_path, "ds", 24)
    consolidate(dataset)
    kept = {p.name: p.read_bytes() for p in dataset.glob("imgs_0[0-4].h5")}
    shutil.rmtree(dataset / "samples" / "000023")
    consolidate(dataset)  # another input: another generation
    for name, data in kept.items():  # buckets 0-4 from the older consolidation, as a torn publish would leave
        (dataset / name).write_bytes(data)
    with pytest.raises(GenerationMixError, match="imgs_00.h5"):
        preprocess(dataset, res=8)
    result = _cli(dataset, "-p", "-r", "8")
    assert result.returncode == 2 and "come from another consolidation" in result.stderr
    assert not list(dataset.glob("data_*.h5"))
