"""The render farm's rows in one process (-l): a run whose driver was SIGKILLed is resumed and extended, adding
only the missing shards; --drop_raw leaves the HDF5 alone; bad flag combinations are refused with one line."""

import json
import signal

import h5py
import pytest

from tests.pipeline.distributed_testlib import (
    TINY,
    assert_exactly,
    manifest_records,
    run_main,
    start_driver,
    wait_for,
)
from tests.pipeline.farm_testlib import assert_same_split_files, classic_copy

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in sorted(folder.iterdir())}


def test_resumed_run_adds_only_the_missing_shards(tmp_path, capsys):
    args = [*TINY, "-d", "ds", "-b", "2", "-l", "--data_dir", str(tmp_path / "farm"), "--publish_every", "0",
            "--no_progress"]
    farm = tmp_path / "farm" / "ds"
    proc = start_driver([*args, "-n", "8"], env={"NSD_FAULT": "pause@5"}, log=tmp_path / "driver.log")
    try:
        wait_for(lambda: len(manifest_records(farm)) == 2, 180, "2 finished shards", proc)
        wait_for(lambda: (farm / "imgs_00.h5").is_file() and (farm / "samples" / "000004").is_dir(), 60,
                 "the virtual files of 2 shards", proc)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    before = _mtimes(farm / "rows")
    assert sorted(before) == ["shard-00000.h5", "shard-00001.h5"]
    with h5py.File(farm / "imgs_00.h5", "r") as fh:  # trainable already: the rows of the listed shards
        assert fh["index"][:].tolist() == [0]
    # continue, asking for more samples: shards 0-1 stay as they are, 2-5 are added
    assert run_main([*args, "-n", "12", "-c"]) == 0
    assert "ds: 12 samples (7 rendered, 5 already complete)" in capsys.readouterr().out
    assert {k: v for k, v in _mtimes(farm / "rows").items() if k in before} == before
    assert sorted(_mtimes(farm / "rows")) == [f"shard-{s:05d}.h5" for s in range(6)]
    assert_exactly(farm, 12, 2)
    classic = classic_copy(farm, tmp_path / "classic")
    assert assert_same_split_files(farm, classic) == 12
    # nothing left to do: the files are written again from the manifest, the same arrays
    assert run_main([*args, "-n", "12", "-c"]) == 0
    assert assert_same_split_files(farm, classic) == 12


def test_drop_raw_keeps_the_hdf5_alone_and_no_rows_keeps_the_old_way(tmp_path):
    base = [*TINY, "-b", "2", "-n", "3", "-l", "--data_dir", str(tmp_path), "--no_progress"]
    assert run_main([*base, "-d", "dropped", "--drop_raw"]) == 0
    dropped = tmp_path / "dropped"
    assert sorted(p.name for p in (dropped / "samples" / "000001").iterdir()) == ["sample.json"]
    with h5py.File(dropped / "imgs_01.h5", "r") as fh:
        assert len(fh["png_images"][0]) > 0 and fh["index"][:].tolist() == [1]
    mtimes = _mtimes(dropped / "rows")
    assert run_main([*base, "-d", "dropped", "--drop_raw", "-c"]) == 0  # finished: nothing rendered again
    assert _mtimes(dropped / "rows") == mtimes
    assert run_main([*base, "-d", "plain", "--no_rows"]) == 0
    plain = tmp_path / "plain"
    assert not (plain / "rows").exists() and not list(plain.glob("*.h5"))
    assert all("rows" not in r for r in manifest_records(plain))
    assert json.loads((dropped / "consolidation.json").read_text())["virtual"] is True


def test_drop_raw_with_no_rows_is_refused(tmp_path, capsys):
    assert run_main([*TINY, "-d", "ds", "--drop_raw", "--no_rows", "--data_dir", str(tmp_path)]) == 2
    assert "--drop_raw deletes views once their HDF5 rows are published" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
