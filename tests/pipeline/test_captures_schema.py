"""Imports land in the schema renders consolidate to (docs/formats.md §3), so a model trained on one reads the
other with no conversion; the trainer's reader accepts them; the writer's byte-level choices hold."""

from __future__ import annotations

import zlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.captures import gqn
from pipeline.captures.scene import SceneArrays, scene_from_xyzyp
from pipeline.captures.writer import SceneFiles, write_scenes
from pipeline.layouts.consolidate import consolidate
from tests.fixtures_raw import make_raw_dataset
from tests.pipeline.captures_helpers import random_scene, write_gqn_file
from train.data import SceneDataset, inspect_scene_file


def _schema(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {"datasets": {k: (f[k].dtype.str, f[k].ndim, f[k].compression, f[k].chunks[:1]) for k in f},
                "attrs": set(f.attrs)}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("gqn")
    rng = np.random.default_rng(5)
    write_gqn_file(root / "src" / "train" / "0001-of-2160.tfrecord", [random_scene(rng, 10, 64) for _ in range(3)])
    write_gqn_file(root / "src" / "test" / "0001-of-0240.tfrecord", [random_scene(rng, 10, 64)])
    gqn.import_gqn(root / "src", root / "rooms", "rooms_ring_camera", jobs=1)
    return root / "rooms"


def test_same_schema_as_consolidated_renders(tmp_path: Path, imported: Path) -> None:
    rendered = make_raw_dataset(tmp_path, "twin", n_samples=12, n_views=3, resolution=(16, 16), exr=False)
    consolidate(rendered, jobs=1)
    for split in ("train", "val", "test"):
        ours, theirs = _schema(imported / f"scenes_{split}.h5"), _schema(rendered / f"scenes_{split}.h5")
        assert ours["datasets"]["images"][:3] == theirs["datasets"]["images"][:3]  # uint8, 5-D, gzip
        assert ours["datasets"]["images"][3] == theirs["datasets"]["images"][3] == (1,)  # one scene per chunk
        for key in theirs["datasets"]:
            assert ours["datasets"][key][:2] == theirs["datasets"][key][:2], key
        assert set(ours["datasets"]) == set(theirs["datasets"])
        assert theirs["attrs"] <= ours["attrs"]  # every §3 attribute, plus what says K is assumed


def test_trainer_reads_imports(imported: Path) -> None:
    info = inspect_scene_file(imported / "scenes_train.h5")
    assert (info.num_scenes, info.num_views, info.height, info.width) == (3, 10, 64, 64)
    dataset = SceneDataset(imported / "scenes_train.h5", image_size=32)
    assert len(dataset) == 3 and dataset.num_views == 10


def test_image_chunks_inflate_with_zlib(imported: Path) -> None:
    with h5py.File(imported / "scenes_train.h5", "r") as f:
        mask, chunk = f["images"].id.read_direct_chunk((1, 0, 0, 0, 0))
        assert mask == 0
        raw = np.frombuffer(zlib.decompress(chunk), np.uint8).reshape(10, 64, 64, 3)
        np.testing.assert_array_equal(raw, f["images"][1])


def _scene(index: int) -> SceneArrays:
    images, cams = random_scene(np.random.default_rng(index), 4, 8)
    return scene_from_xyzyp(index, images, cams, np.eye(3))


def test_writer_is_deterministic_and_atomic(tmp_path: Path) -> None:
    scenes = [("train", _scene(i)) for i in range(3)] + [("test", _scene(11))]
    write_scenes(tmp_path / "a" / "same", scenes, {"importer": "test"})
    write_scenes(tmp_path / "b" / "same", scenes, {"importer": "test"})
    for split in ("train", "val", "test"):
        a = (tmp_path / "a" / "same" / f"scenes_{split}.h5").read_bytes()
        assert a == (tmp_path / "b" / "same" / f"scenes_{split}.h5").read_bytes()

    def failing():
        yield "train", _scene(0)
        raise RuntimeError("reader failed")

    with pytest.raises(RuntimeError):
        write_scenes(tmp_path / "c", failing(), {})
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == []
    with pytest.raises(ValueError, match="rows must be sorted by scene index"):
        write_scenes(tmp_path / "d", [("train", _scene(2)), ("train", _scene(1))], {})
    assert not list((tmp_path / "d").iterdir())
    with pytest.raises(ValueError, match="a scene file holds one size"):
        with SceneFiles(tmp_path / "e", {}) as files:
            files.add("train", _scene(0))
            images, cams = random_scene(np.random.default_rng(1), 3, 8)
            files.add("train", scene_from_xyzyp(1, images, cams, np.eye(3)))
