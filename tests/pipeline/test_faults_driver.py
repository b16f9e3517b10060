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


def _render(data, *extra, env=None):
    return _driver([*TINY, "-d", "ds", "-n", "4", "-b", "2", "-l", "--data_dir", str(data), "--no_progress", *extra],
                   env=env)


def test_deleted_dataset_json_and_another_config_is_refused(tmp_path):
    assert _render(tmp_path, "-n", "2").returncode == 0
    (tmp_path / "ds" / "dataset.json").unlink()
    result = _render(tmp_path, "-c", "-p", "rendering.resolution = 48")
    assert result.returncode == 2 and "config_hash" in result.stderr, result.stderr
    assert "retrying" not in result.stderr
    sizes = {json.loads(p.read_text())["resolution"][0] for p in (tmp_path / "ds" / "samples").glob("*/sample.json")}
    assert sizes == {32}  # no 48 px sample among the 32 px ones
    # the same config continues, and gets its dataset.json back
    assert _render(tmp_path, "-c").returncode == 0
    assert json.loads((tmp_path / "ds" / "dataset.json").read_text())["layout"]["views"] == 1


def test_corrupt_dataset_json_is_named_even_when_every_shard_is_finished(tmp_path):
    assert _render(tmp_path).returncode == 0
    (tmp_path / "ds" / "dataset.json").write_bytes(b"\xff\xfe garbage")
    result = _render(tmp_path, "-c")
    assert result.returncode == 2
    assert f"{tmp_path / 'ds' / 'dataset.json'} is not valid JSON" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("field, value", [("config_hash", "0" * 64), ("seed", 7)])
def test_forged_manifest_line_is_refused(tmp_path, field, value):
    assert _render(tmp_path).returncode == 0
    manifest = tmp_path / "ds" / "manifest.jsonl"
    lines = manifest.read_text().splitlines()
    record = json.loads(lines[0])
    record[field] = value
    manifest.write_text("\n".join([json.dumps(record, sort_keys=True), *lines[1:]]) + "\n")
    result = _render(tmp_path, "-c")
    assert result.returncode == 2 and "was rendered differently from this run" in result.stderr
    assert field in result.stderr


def test_reindexed_mesh_folder_is_not_mixed_in(tmp_path):
    from pipeline import assets

    meshes, cache = tmp_path / "meshes", tmp_path / "cache"
    (meshes / "cube").mkdir(parents=True)
    cube = "OFF\n8 6 0\n" + "".join(f"{x} {y} {z}\n" for x in (0, 1) for y in (0, 1) for z in (0, 1)) + \
        "4 0 1 3 2\n4 4 6 7 5\n4 0 4 5 1\n4 2 3 7 6\n4 0 2 6 4\n4 1 5 7 3\n"
    (meshes / "cube" / "a.off").write_text(cube)
    assets.index_folder(meshes, name="mine", cache_dir=cache)
    env = {"CACHE_DIR": str(cache)}
    bind = ["-p", "object.mesh_source = 'folder-mine'"]
    assert _render(tmp_path, "-n", "2", *bind, env=env).returncode == 0
    (meshes / "cone").mkdir()
    (meshes / "cone" / "b.off").write_text(cube)
    assets.index_folder(meshes, name="mine", cache_dir=cache)
    result = _render(tmp_path, "-c", *bind, env=env)
    assert result.returncode == 2 and "assets_digest" in result.stderr and "re-indexed" in result.stderr
    classes = {tuple(json.loads(p.read_text())["classes"]) for p in (tmp_path / "ds" / "samples").glob("*/sample.json")}
    assert classes == {("cube",)}
