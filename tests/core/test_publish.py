"""Atomic publishing: all or nothing at the final path, one temporary-name scheme, dead writers' debris removed."""

import os
import subprocess
import sys

import pytest

from core import publish
from core.process import hostname


def test_file_appears_whole_or_not_at_all(tmp_path):
    final = tmp_path / "out" / "report.json"
    publish.write_json(final, {"b": 1, "a": [1, 2]})
    assert final.read_text() == '{\n "a": [\n  1,\n  2\n ],\n "b": 1\n}\n'
    with pytest.raises(RuntimeError), publish.Staged(final) as staged:
        staged.path.write_text("half")
        raise RuntimeError("killed mid-write")
    assert final.read_text().startswith("{")  # the old file stays
    assert sorted(p.name for p in final.parent.iterdir()) == ["report.json"]  # no temporary left


def test_temp_name_keeps_suffix_and_names_its_owner(tmp_path):
    tmp = publish.temp_path(tmp_path / "scenes_train.h5")
    assert tmp.parent == tmp_path and tmp.name.startswith(".tmp-") and tmp.suffix == ".h5"
    assert publish.temp_owner(tmp) == (os.getpid(), hostname(), "scenes_train.h5")
    assert publish.temp_owner(tmp_path / "scenes_train.h5") is None


def test_folder_publish_keeps_the_first_writer(tmp_path):
    final = tmp_path / "000007"
    with publish.Staged(final, folder=True) as first:
        (first.path / "sample.json").write_text("first")
    with publish.Staged(final, folder=True) as second:
        (second.path / "sample.json").write_text("second")
    assert first.published and not second.published
    assert (final / "sample.json").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000007"]


def test_only_dead_writers_debris_is_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    dead_file = tmp_path / f".tmp-{dead_pid}-{hostname()}~imgs_00.h5"
    dead_dir = tmp_path / f".tmp-{dead_pid}-{hostname()}~000001"
    live = publish.temp_path(tmp_path / "imgs_01.h5")
    other_host = tmp_path / f".tmp-{dead_pid}-another-node~imgs_02.h5"
    for p in (dead_file, live, other_host):
        p.write_text("x")
    dead_dir.mkdir()
    (dead_dir / "view_00.exr").write_text("x")
    removed = publish.remove_dead_debris(tmp_path)
    assert removed == sorted([dead_dir, dead_file])
    assert live.exists() and other_host.exists()
