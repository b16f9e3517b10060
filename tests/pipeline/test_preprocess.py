"""Preprocessing (-p): data_{res}[_lab].h5 layout, split order, scaled intrinsics, dense targets, statistics."""

from __future__ import annotations

import json

import h5py
import numpy as np

import paths
import preprocess_data
from pipeline.formats.exr import read_view_exr
from pipeline.layouts.consolidate import consolidate
from tests.fixtures_raw import make_raw_dataset, view_path


def test_preprocess_layout_and_values(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    dataset_dir = make_raw_dataset(tmp_path, "prep", n_samples=13, resolution=(16, 16))
    assert preprocess_data.main(["-d", "prep", "-f", "-p", "-r", "8", "-c", "-q", "-j", "1"]) == 0
    with h5py.File(dataset_dir / "data_8.h5", "r") as fh:
        assert fh["images"].shape == (13, 3, 8, 8) and fh["images"].dtype == np.float16
        assert fh["depth"].shape == (13, 8, 8) and fh["instance"].shape == (13, 8, 8)
        # train rows (buckets 0-9) first, then val (10), then test (11); each sorted by index
        assert fh["index"][:].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12, 10, 11]
        assert json.loads(fh.attrs["split_rows"]) == {"train": [0, 11], "val": [11, 12], "test": [12, 13]}
        images = fh["images"][:].astype(np.float32)
        assert 0.0 <= images.min() and images.max() <= 1.0
        assert np.allclose(fh["mean"][:], images[:11].mean(axis=(0, 2, 3)), atol=1e-3)
        k_raw = np.asarray(json.loads((dataset_dir / "samples/000000/sample.json").read_text())["views"][0]["K"])
        assert np.allclose(fh["K"][0][:2], k_raw[:2] / 2, atol=1e-4)  # 16 -> 8 px
        # nearest-neighbour labels: every id in the small map exists in the render; depth NaN exactly off objects
        view = read_view_exr(view_path(dataset_dir, 12))
        row = 10
        assert set(np.unique(fh["instance"][row])) <= set(np.unique(view.instance))
        assert np.array_equal(np.isnan(fh["depth"][row]), fh["instance"][row] == 0)
    assert preprocess_data.main(["-d", "prep", "-p", "-r", "8", "-l", "-b", "0-9", "-q", "-j", "1"]) == 0
    with h5py.File(dataset_dir / "data_8_lab.h5", "r") as fh:
        assert fh.attrs["colour_space"] == "lab" and fh["images"].shape[0] == 11
        assert 0.0 <= float(fh["images"][:, 0].min()) and float(fh["images"][:, 0].max()) <= 1.0  # L / 100


def test_preprocess_needs_buckets(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    make_raw_dataset(tmp_path, "noprep", n_samples=2)
    assert preprocess_data.main(["-d", "noprep", "-p", "-q"]) == 2
    ring = make_raw_dataset(tmp_path, "ringprep", n_samples=2, n_views=2)
    consolidate(ring)
    assert preprocess_data.main(["-d", "ringprep", "-p", "-q"]) == 2
