"""distributed_render.py in local mode (-l, no Ray) with real Blender: exact output, failures, resume after a kill."""

import json
import shutil
import signal

import pytest

from tests.pipeline.distributed_testlib import (
    TINY,
    assert_exactly,
    file_bytes,
    manifest_records,
    mtimes,
    run_main,
    sample_names,
    start_driver,
)

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

N = 7


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted run: one shard, one worker."""
    data = tmp_path_factory.mktemp("reference")
    assert run_main([*TINY, "-d", "ds", "-n", str(N), "-b", str(N), "--data_dir", str(data), "-l", "--no_progress"]) == 0
    return data / "ds"


def test_local_run_renders_exactly_the_requested_samples(tmp_path, reference, capsys):
    code = run_main([*TINY, "-d", "ds", "-n", str(N), "-b", "3", "--data_dir", str(tmp_path), "-l", "--no_progress"])
    assert code == 0
    dataset = tmp_path / "ds"
    assert_exactly(dataset, N, 3)
    assert not (dataset / "logs").exists()
    out = capsys.readouterr().out
    assert f"ds: {N} samples ({N} rendered, 0 already complete)" in out and "samples/s" in out and "0 failed" in out
    assert file_bytes(dataset) == file_bytes(reference)


def test_failing_shard_exits_nonzero_with_its_logs_and_resume_completes(tmp_path, reference, monkeypatch, capsys):
    args = [*TINY, "-d", "ds", "-n", str(N), "-b", "3", "--data_dir", str(tmp_path), "-l", "--no_progress"]
    monkeypatch.setenv("NSD_FAULT", "raise-always@4")
    assert run_main([*args, "--retries", "1"]) == 1
    err = capsys.readouterr().err
    assert "shard 1 (samples 3-5) failed after 2 attempts" in err
    logs = err.split("logs: ")[1].split()[0:2]
    logs = [p.rstrip(",") for p in logs]
    assert len(logs) == 2
    for log in logs:
        assert "InjectedFault: NSD_FAULT injected an exception at sample 4" in open(log).read()
    dataset = tmp_path / "ds"
    assert [r["shard"] for r in manifest_records(dataset)] == [0, 2]
    assert sample_names(dataset) == ["000000", "000001", "000002", "000003", "000006"]

    monkeypatch.delenv("NSD_FAULT")
    assert run_main([*args, "-c"]) == 0
    assert f"ds: {N} samples (2 rendered, 5 already complete)" in capsys.readouterr().out
    assert_exactly(dataset, N, 3)
    assert file_bytes(dataset) == file_bytes(reference)


def test_continue_after_the_driver_was_killed(tmp_path, reference, capsys):
    """In local mode the driver renders itself: the fault hook SIGKILLs it in the middle of shard 1."""
    args = [*TINY, "-d", "ds", "-n", str(N), "-b", "3", "--data_dir", str(tmp_path), "-l", "--no_progress"]
    proc = start_driver(args, env={"NSD_FAULT": "kill@4"}, log=tmp_path / "driver.log")
    assert proc.wait(timeout=120) == -signal.SIGKILL
    dataset = tmp_path / "ds"
    assert [r["shard"] for r in manifest_records(dataset)] == [0]
    assert [n for n in sample_names(dataset) if n.isdigit()] == ["000000", "000001", "000002", "000003"]
    before = mtimes(dataset, [0, 1, 2, 3])

    assert run_main([*args, "-c"]) == 0
    assert f"ds: {N} samples (3 rendered, 4 already complete)" in capsys.readouterr().out
    assert mtimes(dataset, [0, 1, 2, 3]) == before  # finished shard and published sample 3 not rendered again
    assert_exactly(dataset, N, 3)
    assert file_bytes(dataset) == file_bytes(reference)


@pytest.mark.stock_blender
def test_shards_in_a_stock_blender(tmp_path):
    blender = shutil.which("blender")
    if blender is None:
        pytest.skip("no stock Blender binary on PATH (Debian package `blender`)")
    args = [*TINY, "-d", "ds", "-n", "4", "-b", "2", "--data_dir", str(tmp_path), "-l", "--no_progress",
            "--blender", blender]
    assert run_main(args) == 0
    dataset = tmp_path / "ds"
    records = assert_exactly(dataset, 4, 2)
    sidecar = json.loads((dataset / "samples" / "000000" / "sample.json").read_text())
    assert {r["blender_version"] for r in records} == {sidecar["blender_version"]}
    assert not sidecar["blender_version"].startswith("5.0")  # really rendered by the stock binary
    assert not (dataset / "logs").exists()
