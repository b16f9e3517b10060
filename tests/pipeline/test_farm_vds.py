"""Shard rows and the virtual split files over them, on raw datasets made by the test fixture (no Blender): the
virtual files equal a one-machine consolidation array by array, unlisted shard files and half-written ones are
never part of them, and --compact gives classic single files with the same arrays."""

import json
import os

import h5py
import numpy as np
import pytest

import paths
import preprocess_data
from pipeline.layouts.farm_rows import rows_path, write_shard_rows
from pipeline.layouts.generations import check_generation
from pipeline.layouts.virtual import publish_virtual
from tests.fixtures_raw import make_raw_dataset
from tests.pipeline.farm_testlib import assert_same_split_files, classic_copy, is_virtual


def _shards(n: int, size: int) -> list[list[int]]:
    return [list(range(s, min(n, s + size))) for s in range(0, n, size)]


@pytest.mark.parametrize("views, n, size", [(1, 27, 5), (3, 26, 4)])
def test_virtual_split_files_equal_a_one_machine_consolidation(tmp_path, views, n, size):
    farm = make_raw_dataset(tmp_path / "farm", "ds", n, n_views=views)
    rows = [write_shard_rows(farm, shard, indices) for shard, indices in enumerate(_shards(n, size))]
    totals = publish_virtual(farm, rows)
    classic = classic_copy(farm, tmp_path / "classic")
    assert assert_same_split_files(farm, classic) == n == sum(totals.values())
    assert all(is_virtual(p) for p in farm.glob("*.h5"))
    assert check_generation(farm) == check_generation(classic) is not None  # readers' generation checks hold
    report = json.loads((farm / "consolidation.json").read_text())
    assert report["virtual"] is True and report["shards"] == len(rows) and report["rows"] == totals
    # the virtual files point into rows/ by relative names: the dataset folder moves as a whole
    moved = tmp_path / "moved"
    os.rename(farm.parent, moved)
    assert assert_same_split_files(moved / "ds", classic) == n


def test_only_listed_shards_count(tmp_path):
    farm = make_raw_dataset(tmp_path / "farm", "ds", 12, n_views=2)
    listed = [write_shard_rows(farm, 0, range(0, 6))]
    write_shard_rows(farm, 1, range(6, 12))  # published but not in the manifest (its worker died before the line)

    def die(tmp):  # a worker killed while its rows file is complete under its temporary name
        assert tmp.is_file() and tmp.name.startswith(".tmp-")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_shard_rows(farm, 2, range(6, 12), before_publish=die)
    assert sorted(p.name for p in (farm / "rows").iterdir()) == ["shard-00000.h5", "shard-00001.h5"]
    publish_virtual(farm, listed)
    with h5py.File(farm / "scenes_train.h5", "r") as fh:
        assert fh["scene_index"][:].tolist() == [0, 1, 2, 3, 4, 5]
    with h5py.File(farm / "scenes_val.h5", "r") as fh:  # no val scene yet: an empty dataset of the right shape
        assert fh["images"].shape == (0, 2, 12, 16, 3)


def test_seed_readme_snippet_reads_imgs_00_through_the_virtual_dataset(tmp_path):
    import io

    import imageio.v2 as imageio

    farm = make_raw_dataset(tmp_path / "farm", "ds", 30, n_views=1)
    publish_virtual(farm, [write_shard_rows(farm, s, ix) for s, ix in enumerate(_shards(30, 7))])
    # the selfstudy README's way, verbatim but for the path
    f = h5py.File(farm / "imgs_00.h5", "r")
    img_idx = 0
    png_data = f["png_images"][img_idx]
    img = imageio.imread(io.BytesIO(png_data))
    assert f["png_images"].is_virtual and img.shape == (12, 16, 3) and img.dtype == np.uint8
    assert f["index"][:].tolist() == [0, 12, 24]
    f.close()


def test_compact_writes_single_files_with_the_same_arrays(tmp_path, monkeypatch):
    farm = make_raw_dataset(tmp_path / "farm", "ds", 20, n_views=1)
    publish_virtual(farm, [write_shard_rows(farm, s, ix) for s, ix in enumerate(_shards(20, 6))])
    generation = check_generation(farm)
    monkeypatch.setattr(paths, "DATA_DIR", farm.parent)
    assert preprocess_data.main(["-d", "ds", "--compact", "-q"]) == 0
    classic = classic_copy(farm, tmp_path / "classic")
    assert assert_same_split_files(farm, classic) == 20
    assert not any(is_virtual(p) for p in farm.glob("*.h5"))
    os.rename(farm / "rows", tmp_path / "rows-gone")  # the single files need the shards no more
    assert assert_same_split_files(farm, classic) == 20 and check_generation(farm) == generation
    assert json.loads((farm / "consolidation.json").read_text())["virtual"] is False
    # compacting again: nothing virtual is left; one line naming why
    assert preprocess_data.main(["-d", "ds", "--compact", "-q"]) == 2


def test_rows_of_a_shard_with_missing_samples_are_refused(tmp_path):
    farm = make_raw_dataset(tmp_path / "farm", "ds", 4, n_views=1)
    with pytest.raises(ValueError, match=r"samples \[4, 5\] of shard 1 are not rendered"):
        write_shard_rows(farm, 1, range(2, 6))
    assert not rows_path(farm, 1).exists() and not (farm / "rows").exists()
