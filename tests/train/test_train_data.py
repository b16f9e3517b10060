"""Scene-major dataset: contents, determinism, worker safety and clear errors."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from train.data import (
    DatasetError,
    ItemKey,
    SceneBatchSampler,
    SceneDataset,
    downsample,
    make_loader,
    split_path,
)


def test_item_content_matches_file_in_unit_range(scene_file: Path):
    ds = SceneDataset(scene_file, image_size=16)
    item = ds[ItemKey(scene=1, n_context=2, seed=5)]
    assert item["context_images"].shape == (2, 3, 16, 16) and item["context_images"].dtype == torch.float32
    assert item["query_image"].shape == (3, 16, 16) and item["query_viewpoint"].shape == (7,)
    order = np.random.default_rng(5).choice(4, size=3, replace=False)
    with h5py.File(scene_file) as f:
        raw, vps = f["images"][1], f["viewpoints"][1]
    np.testing.assert_array_equal(item["query_image"].permute(1, 2, 0).numpy(), raw[order[-1]] / np.float32(255))
    np.testing.assert_array_equal(item["context_viewpoints"].numpy(), vps[order[:2]])
    assert 0.0 <= item["context_images"].min() and item["context_images"].max() <= 1.0


def test_downsample_is_block_mean(scene_file: Path):
    x = np.random.default_rng(0).random((2, 8, 8, 3)).astype(np.float32)
    y = downsample(x, 2)
    assert y.shape == (2, 4, 4, 3)
    np.testing.assert_allclose(y[1, 2, 3], x[1, 4:6, 6:8].mean(axis=(0, 1)), rtol=1e-6)
    ds = SceneDataset(scene_file, image_size=8)
    assert ds[ItemKey(0, 1, 0)]["query_image"].shape == (3, 8, 8)
    with pytest.raises(DatasetError, match="not a multiple of image_size=5"):
        SceneDataset(scene_file, image_size=5)


def test_sampler_is_a_function_of_step_and_splits_over_ranks():
    full = SceneBatchSampler(10, 5, 4, 1, 3, seed=3, max_steps=7)
    batches = list(full)
    assert len(batches) == 7 and all(len(b) == 4 for b in batches)
    resumed = list(SceneBatchSampler(10, 5, 4, 1, 3, seed=3, start_step=4, max_steps=7))
    assert resumed == batches[4:]
    ranks = [list(SceneBatchSampler(10, 5, 4, 1, 3, seed=3, max_steps=7, rank=r, world_size=2)) for r in (0, 1)]
    assert [a + b for a, b in zip(*ranks, strict=True)] == batches
    # one epoch (10 // 4 = 2 steps) visits distinct scenes; context count is shared by the whole batch
    first_epoch = [k.scene for b in batches[:2] for k in b]
    assert len(set(first_epoch)) == 8
    assert all(len({k.n_context for k in b}) == 1 for b in batches)
    assert list(SceneBatchSampler(10, 5, 4, 1, 3, seed=4, max_steps=7)) != batches


def test_workers_give_the_same_batches_and_handles_do_not_travel(toy_data: Path):
    ds = SceneDataset(split_path(toy_data, "train"), image_size=16)
    assert ds._file is None  # opened lazily
    ds[ItemKey(0, 1, 0)]
    assert ds._file is not None
    assert pickle.loads(pickle.dumps(ds))._file is None
    sampler = SceneBatchSampler(len(ds), ds.num_views, 4, 1, 3, seed=0, max_steps=5)
    serial = list(make_loader(ds, sampler, num_workers=0))
    parallel = list(make_loader(ds, sampler, num_workers=2))
    assert len(serial) == len(parallel) == 5
    for a, b in zip(serial, parallel, strict=True):
        for key in a:
            torch.testing.assert_close(a[key], b[key], rtol=0, atol=0)


def test_missing_file_names_the_file_and_fix(tmp_path: Path):
    with pytest.raises(DatasetError, match=r"scenes_val\.h5: no such file.*--data"):
        split_path(tmp_path, "val")


def test_corrupt_file_fails_clearly(tmp_path: Path):
    bad = tmp_path / "scenes_train.h5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(DatasetError, match=f"{bad}: cannot read it as HDF5.*corrupt or truncated"):
        SceneDataset(bad)


def test_truncated_file_fails_clearly(scene_file: Path, tmp_path: Path):
    cut = tmp_path / "cut" / "scenes_train.h5"
    cut.parent.mkdir()
    data = scene_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(DatasetError, match=f"{cut}.*corrupt or truncated"):
        SceneDataset(cut, image_size=16)


@pytest.mark.parametrize("drop", ["images", "viewpoints"])
def test_missing_dataset_is_named(scene_file: Path, tmp_path: Path, drop: str):
    copy = tmp_path / "copy.h5"
    shutil.copy(scene_file, copy)
    with h5py.File(copy, "a") as f:
        del f[drop]
    with pytest.raises(DatasetError, match=rf"{copy}: lacks dataset\(s\) \['{drop}'\]"):
        SceneDataset(copy, image_size=16)


def test_wrong_shapes_are_refused(tmp_path: Path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f["images"] = np.zeros((2, 4, 8, 8, 3), np.uint8)
        f["viewpoints"] = np.zeros((2, 4, 5), np.float32)
    with pytest.raises(DatasetError, match=r"`viewpoints` has shape \(2, 4, 5\), expected \(2, 4, 7\)"):
        SceneDataset(path, image_size=8)


def test_batched_fetch_equals_item_by_item(toy_data: Path):
    ds = SceneDataset(split_path(toy_data, "train"), image_size=16)
    sampler = SceneBatchSampler(len(ds), ds.num_views, 6, 1, 3, seed=2, max_steps=4)
    for step in range(4):
        keys = sampler.batch(step)
        batched = ds.__getitems__(keys)
        single = [ds[k] for k in keys]
        for name, value in batched.items():
            torch.testing.assert_close(value, torch.stack([it[name] for it in single]), rtol=0, atol=0)
    mixed = [ItemKey(0, 1, 4), ItemKey(3, 2, 5)]  # different context counts fall back to item by item
    items = ds.__getitems__(mixed)
    assert [it["context_images"].shape[0] for it in items] == [1, 2]


def test_posed_views_match_the_file_pooled(tmp_path: Path):
    from train.data import PosedViewDataset
    from train.toydata import make_object_scene_file

    path = make_object_scene_file(tmp_path / "scenes_train.h5", num_scenes=2, num_views=6, size=16, voxel_size=8,
                                  light_per_view=True)
    fields = ("azimuth", "elevation", "radius", "light_azimuth", "normal", "mask", "voxels")
    ds = PosedViewDataset(path, 8, fields, "RenderNet", voxel_size=4)
    item = ds.read_views(1, np.array([4, 1]))
    with h5py.File(path) as f:
        images, normal, mask = f["images"][1][[4, 1]] / 255.0, f["normal"][1][[4, 1]].astype(np.float64), f["mask"][1][[4, 1]]
        az, vox = f["azimuth"][1][[4, 1]], f["voxels"][1].astype(np.float64)
    pool = lambda x: x.reshape(2, 8, 2, 8, 2, *x.shape[3:]).mean(axis=(2, 4))  # noqa: E731
    np.testing.assert_allclose(item["images"].permute(0, 2, 3, 1).numpy(), pool(images), atol=1e-6)
    np.testing.assert_allclose(item["mask"][:, 0].numpy(), pool(mask.astype(np.float64) / 255.0), atol=1e-6)
    n = pool(normal)
    length = np.linalg.norm(n, axis=-1, keepdims=True)
    n = np.where(length > 1e-6, n / np.maximum(length, 1e-6), 0)
    np.testing.assert_allclose(item["normal"].permute(0, 2, 3, 1).numpy(), n, atol=1e-5)
    np.testing.assert_array_equal(item["azimuth"].numpy(), az)
    np.testing.assert_allclose(item["voxels"].numpy(), vox.reshape(4, 2, 4, 2, 4, 2).mean(axis=(1, 3, 5)))
    assert item["voxels"].shape == (4, 4, 4) and item["view_index"].tolist() == [4, 1]
    state = pickle.loads(pickle.dumps(ds)).__dict__
    assert not {"_grid_cache", "_scalar_cache", "_dset_cache"} & set(state) and state["_file"] is None
