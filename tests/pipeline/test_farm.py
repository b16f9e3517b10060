"""The render farm on an embedded Ray: workers write their shards' HDF5 rows and the split files are virtual
datasets over them. With one worker SIGKILLed mid-render and another SIGKILLed with its rows file complete but
unpublished, every array of the virtual files equals a one-machine consolidation of the same samples."""

import io

import h5py
import imageio.v2 as imageio
import numpy as np
import pytest

from tests.pipeline.distributed_testlib import TINY, assert_exactly, embedded_ray, run_main
from tests.pipeline.farm_testlib import assert_same_split_files, classic_copy, is_virtual

pytest.importorskip("bpy")
ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.blender, pytest.mark.ray]

N = 14


@pytest.fixture(scope="module")
def ray_session():
    with embedded_ray():
        yield


def test_killed_workers_leave_virtual_files_equal_to_a_classic_consolidation(ray_session, tmp_path, monkeypatch,
                                                                            capsys):
    # the worker reaching sample 4 dies mid-render; the one finishing shard 3 (samples 9-11) dies with its rows
    # complete under their temporary name
    monkeypatch.setenv("NSD_FAULT", "kill@4,kill-rows@10")
    code = run_main([*TINY, "-d", "ds", "-n", str(N), "-b", "3", "--data_dir", str(tmp_path / "farm"),
                     "--workers", "2", "--publish_every", "0", "--no_progress"])
    assert code == 0
    assert "2 retried attempts, 0 failed" in capsys.readouterr().out
    farm = tmp_path / "farm" / "ds"
    records = assert_exactly(farm, N, 3)
    assert {r["shard"]: r["attempts"] for r in records} == {0: 1, 1: 2, 2: 1, 3: 2, 4: 1}
    by_shard = {r["shard"]: r["rows"] for r in records}
    assert [by_shard[s]["count"] for s in range(5)] == [3, 3, 3, 3, 2]
    # one file per shard, the killed attempt's temporary file removed, nothing listed twice
    assert sorted(p.name for p in (farm / "rows").iterdir()) == [f"shard-{s:05d}.h5" for s in range(5)]
    classic = classic_copy(farm, tmp_path / "classic")
    assert assert_same_split_files(farm, classic) == N
    assert all(is_virtual(p) for p in farm.glob("imgs_*.h5"))
    # the seed README's way of reading a bucket, through the virtual dataset
    f = h5py.File(farm / "imgs_00.h5", "r")
    img_idx = 0
    png_data = f["png_images"][img_idx]
    img = imageio.imread(io.BytesIO(png_data))
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8 and f["index"][:].tolist() == [0, 12]
    f.close()
