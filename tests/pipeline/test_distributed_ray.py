"""distributed_render.py on an embedded Ray (one start-up shared by the module): worker and driver kills."""

import logging
import re
import signal

import pytest

from tests.pipeline.distributed_testlib import (
    TINY,
    assert_exactly,
    embedded_ray,
    file_bytes,
    manifest_records,
    mtimes,
    run_main,
    start_driver,
    wait_for,
)

pytest.importorskip("bpy")
ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.blender, pytest.mark.ray]

N = 10


@pytest.fixture(scope="module")
def ray_address():
    """One embedded Ray with 2 CPUs for the whole module; drivers in other processes join it by address."""
    with embedded_ray() as address:
        yield address


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted, single-worker, in-process run of the same dataset."""
    data = tmp_path_factory.mktemp("reference")
    assert run_main([*TINY, "-d", "ds", "-n", str(N), "-b", str(N), "--data_dir", str(data), "-l", "--no_progress"]) == 0
    return data / "ds"


def test_sigkilled_worker_still_gives_every_sample_once(ray_address, reference, tmp_path, monkeypatch, capsys,
                                                        caplog):
    monkeypatch.setenv("NSD_FAULT", "kill@4")  # the worker rendering sample 4 SIGKILLs itself (once)
    with caplog.at_level(logging.INFO, logger="pipeline.distribution.driver"):
        code = run_main([*TINY, "-d", "ds", "-n", str(N), "-b", "3", "--data_dir", str(tmp_path), "--workers", "2",
                         "--recycle_after", "4", "--no_progress"])
    assert code == 0
    out = capsys.readouterr().out
    dataset = tmp_path / "ds"
    records = assert_exactly(dataset, N, 3)
    assert {r["shard"]: r["attempts"] for r in records} == {0: 1, 1: 2, 2: 1, 3: 1}
    assert all(r["node"] == ray.get_runtime_context().get_node_id() for r in records)
    assert "1 retried attempts, 0 failed" in out
    # 2 workers + 1 replacing the killed one (+ one replacing the recycled one if shards were still pending)
    started = int(out.split(" started)")[0].rsplit("(", 1)[1])
    assert started >= 3
    assert re.search(r"recycling worker \d after [4-9] samples", caplog.text)  # past --recycle_after 4
    (log,) = sorted((dataset / "logs").glob("*.log"))  # only the killed worker's log is kept
    text = log.read_text()
    assert "== shard 1 (samples 3-5)" in text and "NSD_FAULT: kill at sample 4" in text
    assert file_bytes(dataset) == file_bytes(reference)


def test_continue_after_the_ray_driver_was_killed(ray_address, reference, tmp_path, capsys):
    # workers hold a second shard while one per worker stays pending: the stalled shard holds up no other
    args = [*TINY, "-d", "ds", "-n", str(N), "-b", "2", "--data_dir", str(tmp_path), "--workers", "2", "--no_progress",
            "--queue_depth", "2"]
    dataset = tmp_path / "ds"
    # a separate driver joins the module's cluster; the worker reaching sample 7 (shard 3) stalls
    proc = start_driver([*args, "--address", ray_address], env={"NSD_FAULT": "pause@7"}, log=tmp_path / "driver.log")
    try:
        wait_for(lambda: len(manifest_records(dataset)) == 4, 180, "4 finished shards", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert sorted(r["shard"] for r in manifest_records(dataset)) == [0, 1, 2, 4]
    finished = [0, 1, 2, 3, 4, 5, 8, 9]
    before = mtimes(dataset, [*finished, 6])

    assert run_main([*args, "-c"]) == 0
    assert f"ds: {N} samples (1 rendered, 9 already complete)" in capsys.readouterr().out
    assert mtimes(dataset, [*finished, 6]) == before  # finished shards and sample 6 were not rendered again
    assert_exactly(dataset, N, 2)
    assert file_bytes(dataset) == file_bytes(reference)
