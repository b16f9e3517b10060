"""Faults and bad input at the render driver (docs/reliability.md): each case planted as a user would meet it,
with the message, the exit status and what is on disk afterwards asserted."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from core.lock import DatasetLock, DatasetLockedError
from pipeline.distribution.ray_session import TEMP_PREFIX, processes_of, session_dir
from tests.pipeline.distributed_testlib import REPO, TINY, manifest_records, run_main, start_driver, wait_for

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def _driver(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "distributed_render.py"), *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **(env or {})}, timeout=300, check=False)


@pytest.mark.parametrize("args, message", [
    (["-n", "-3"], "-n/--num_samples must be >= 1, got -3"),
    (["-n", "0"], "-n/--num_samples must be >= 1, got 0"),
    (["-b", "0"], "-b/--batch_size must be >= 1, got 0"),
    (["--threads", "0"], "--threads must be >= 1, got 0"),
    (["-d", "../escaped"], "must be a plain name inside DATA_DIR"),
    (["-d", "/abs/path"], "must be a plain name inside DATA_DIR"),
    (["-d", "a/b"], "must be a plain name inside DATA_DIR"),
])
def test_bad_arguments_fail_before_ray_with_one_line(tmp_path, capsys, args, message):
    start = time.perf_counter()
    code = run_main([*TINY, "-d", "ds", *args, "--data_dir", str(tmp_path), "--no_progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert err == [f"distributed_render.py: error: {err[0].split('error: ', 1)[1]}"] and message in err[0]
    assert time.perf_counter() - start < 5  # no Ray, no Blender was started
    assert list(tmp_path.iterdir()) == []  # nothing written, inside DATA_DIR or out of it
    assert not (tmp_path.parent / "escaped").exists()


def test_second_driver_on_a_dataset_is_refused_at_once(tmp_path):
    first = start_driver([*TINY, "-d", "ds", "-n", "40", "-b", "1", "-l", "--data_dir", str(tmp_path),
                          "--no_progress"], env={"NSD_FAULT": "pause@3"}, log=tmp_path / "first.log")
    try:
        wait_for(lambda: (tmp_path / "ds" / "samples" / "000002").is_dir(), 120, "the first driver's samples", first)
        for extra in ([], ["-c"]):
            second = _driver([*TINY, "-d", "ds", "-n", "40", "-b", "1", "-l", *extra, "--data_dir", str(tmp_path),
                              "--no_progress"])
            assert second.returncode == 2, second.stderr
            assert f"being written by distributed_render.py (pid {first.pid}" in second.stderr
    finally:
        first.kill()
        first.wait()
    records = manifest_records(tmp_path / "ds")
    assert len({r["shard"] for r in records}) == len(records)  # every shard at most once
    # the lock went with the SIGKILLed holder: -c continues at once
    assert run_main([*TINY, "-d", "ds", "-n", "5", "-b", "1", "-l", "-c", "--data_dir", str(tmp_path),
                     "--no_progress"]) == 0


def test_lock_names_its_holder_and_is_inherited_by_the_drivers_children(tmp_path, monkeypatch):
    with DatasetLock(tmp_path / "ds", "consolidation") as held:
        with pytest.raises(DatasetLockedError, match=rf"consolidation \(pid {os.getpid()} on "):
            subprocess_lock = DatasetLock(tmp_path / "ds", "render.py")
            # the same process asks again: flock locks are per open file, so this is refused like another process
            subprocess_lock.__enter__()
        monkeypatch.setenv(*next(iter(held.child_env().items())))
        with DatasetLock(tmp_path / "ds", "render.py (shard of the driver)") as child:
            assert child.inherited


def test_missing_asset_index_is_not_retried(tmp_path):
    result = _driver([*TINY, "-d", "ds", "-n", "4", "-b", "2", "-l", "--data_dir", str(tmp_path), "--no_progress",
                      "-p", "object.mesh_source = 'sweethome3d'"], env={"CACHE_DIR": str(tmp_path / "no-cache")})
    assert result.returncode == 2, result.stderr
    assert "no asset index at" in result.stderr and "python -m pipeline.assets fetch" in result.stderr
    assert "retrying" not in result.stderr + result.stdout


@pytest.mark.ray
@pytest.mark.slow
def test_sigkilled_drivers_ray_leftovers_are_stopped_by_the_next_run(tmp_path):
    driver = start_driver([*TINY, "-d", "ds", "-n", "400", "-b", "1", "--workers", "1", "--data_dir", str(tmp_path),
                           "--no_progress"], log=tmp_path / "driver.log")
    folder = session_dir(driver.pid)
    try:
        wait_for(lambda: (tmp_path / "ds" / "samples" / "000001").is_dir(), 180, "a rendered sample", driver)
        wait_for(lambda: len(processes_of(folder)) >= 4, 30, "the recorded Ray processes", driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    time.sleep(2)
    orphans = [p for p in processes_of(folder) if p.status() != psutil.STATUS_ZOMBIE]
    assert orphans, "expected Ray agents to outlive a SIGKILLed driver"
    result = _driver([*TINY, "-d", "ds", "-n", "2", "-b", "1", "-c", "--workers", "1", "--data_dir", str(tmp_path),
                      "--no_progress"])
    assert result.returncode == 0, result.stderr
    assert f"left by dead driver {driver.pid}" in result.stderr
    assert not folder.exists()
    assert not [p for p in orphans if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not [p for p in folder.parent.glob(f"{TEMP_PREFIX}*") if p.name == folder.name]
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["seed"] == 0


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MiB tmpfs (the machine's root mounts it; CI runs as root), grown with `grow(mib)`."""
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True)

    def grow(mib: int) -> None:
        subprocess.run(["mount", "-o", f"remount,size={mib}m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_ends_the_render_with_one_line_and_a_rerun_completes_it(tmp_path, small_disk):
    mount, grow = small_disk
    args = [*TINY, "-p", "rendering.resolution = 64", "-d", "ds", "-n", "60", "-b", "6", "-l", "--no_progress"]
    result = _driver([*args, "--data_dir", str(mount)])
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "no space left on device writing" in lines[0] and "bytes free" in lines[0]
    assert "retrying" not in result.stderr
    samples = mount / "ds" / "samples"
    assert not [p for p in samples.iterdir() if p.name.startswith(".tmp-")]  # no half-written sample
    grow(64)
    assert _driver([*args, "-c", "--data_dir", str(mount)]).returncode == 0
    assert run_main([*args, "--data_dir", str(tmp_path / "ref")]) == 0
    for ref in sorted((tmp_path / "ref" / "ds" / "samples").rglob("*")):
        if ref.is_file():
            assert (samples / ref.relative_to(tmp_path / "ref" / "ds" / "samples")).read_bytes() == ref.read_bytes()
