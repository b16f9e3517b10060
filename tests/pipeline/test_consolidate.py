"""Consolidation (preprocess_data.py -f): round trips, bad samples, scene-major files, PNG input, the codecs."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from pathlib import Path

import h5py
import imageio.v2 as imageio
import numpy as np
import pytest
from PIL import Image

import paths
import preprocess_data
from pipeline.formats.depth import decode_depth, encode_depth, encode_depth_cm8
from pipeline.formats.exr import read_view_exr
from pipeline.formats.png import decode_png, encode_png16, linear_to_srgb8
from pipeline.layouts import consolidate as consolidate_mod
from pipeline.layouts.consolidate import consolidate
from tests.fixtures_raw import corrupt_exr, make_raw_dataset, view_path


def hashes(folder: Path) -> dict[str, str]:
    """sha256 of every consolidated output file in ``folder``."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.h5"))}


def read_rows(dataset_dir: Path) -> dict[int, dict]:
    """All rows of all bucket files, by sample index."""
    rows = {}
    for path in sorted(dataset_dir.glob("imgs_*.h5")):
        with h5py.File(path, "r") as fh:
            for r, index in enumerate(fh["index"][:]):
                rows[int(index)] = {k: fh[k][r] for k in fh} | {"_file": path.name}
    return rows


def test_depth_codec_edges():
    depth = np.array([np.inf, 0.0, 0.0004, 0.0006, 1.2344, 1.2346, 65.534, 65.6, 1e9], np.float32)
    code = encode_depth(depth)
    assert code.tolist() == [0, 1, 1, 1, 1234, 1235, 65534, 65535, 65535]
    back = decode_depth(code)
    assert np.isnan(back[0]) and np.isnan(back[-1])
    assert abs(back[4] - 1.2344) <= 0.0005 + 1e-6
    with pytest.raises(ValueError, match="negative depth"):
        encode_depth(np.array([-0.1]))


def test_png16_round_trip_and_foreign_pngs():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65536, (9, 13, 3)).astype(np.uint16)
    assert np.array_equal(decode_png(encode_png16(img)), img)
    # Pillow writes 8-bit RGB with adaptive filters (Sub/Up/Average/Paeth) and 16-bit greyscale.
    rgb8 = rng.integers(0, 256, (11, 7, 3)).astype(np.uint8)
    rgb8[3:6] = 40
    buf = io.BytesIO()
    Image.fromarray(rgb8).save(buf, format="PNG")
    from pipeline.formats.png import _decode_raw

    assert np.array_equal(_decode_raw(buf.getvalue()), rgb8)
    grey = rng.integers(0, 65536, (5, 6)).astype(np.uint16)
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    assert np.array_equal(decode_png(buf.getvalue())[..., 0], grey)
    # Our 16-bit greyscale PNG (png_depth) reads exactly with the common readers, unlike 16-bit RGB.
    ours = encode_png16(grey)
    assert np.array_equal(decode_png(ours)[..., 0], grey)
    with Image.open(io.BytesIO(ours)) as im:
        assert np.array_equal(np.asarray(im), grey) and np.asarray(im).dtype == np.uint16
    assert np.array_equal(imageio.imread(io.BytesIO(ours)), grey)
    # Why png_targets is 8-bit again: the common readers silently keep only the high byte of 16-bit RGB.
    lossy = imageio.imread(io.BytesIO(encode_png16(img)))
    assert lossy.dtype == np.uint8 and np.array_equal(lossy, img >> 8)


def test_seed_depth_code():
    depth = np.array([np.inf, np.nan, 0.0, 0.004, 0.006, 1.234, 2.54, 2.55, 2.556, 40.0], np.float32)
    assert encode_depth_cm8(depth).tolist() == [255, 255, 0, 0, 1, 123, 254, 255, 255, 255]


def test_round_trip_single_view(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "single", n_samples=14, resolution=(16, 12))
    result = consolidate(dataset_dir, jobs=1)
    assert result.bad == [] and result.layout == "sample-major" and result.written == 14
    assert sorted(p.name for p in dataset_dir.glob("imgs_*.h5")) == [f"imgs_{b:02d}.h5" for b in range(12)]
    rows = read_rows(dataset_dir)
    assert sorted(rows) == list(range(14))
    for index, row in rows.items():
        assert row["_file"] == f"imgs_{index % 12:02d}.h5"
        view = read_view_exr(view_path(dataset_dir, index))
        assert np.array_equal(decode_png(row["png_images"]), linear_to_srgb8(view.rgb))
        # The seed's way to read a row: imageio on the PNG bytes. 8-bit targets, 16-bit greyscale depth.
        target = imageio.imread(io.BytesIO(row["png_targets"].tobytes()))
        assert target.dtype == np.uint8 and target.shape == (12, 16, 3)
        assert np.array_equal(target[..., 0], view.instance)
        assert np.array_equal(target[..., 1], view.semantic)
        assert np.array_equal(target[..., 2], encode_depth_cm8(view.depth))
        code = imageio.imread(io.BytesIO(row["png_depth"].tobytes()))
        assert code.dtype == np.uint16 and code.shape == (12, 16)
        assert np.array_equal(code, decode_png(row["png_depth"])[..., 0])
        depth = decode_depth(code)
        hit = np.isfinite(view.depth)
        assert hit.any() and np.array_equal(np.isnan(depth), ~hit)
        assert np.max(np.abs(depth[hit] - view.depth[hit])) <= 0.0005 + 1e-6
        sidecar = json.loads((dataset_dir / "samples" / f"{index:06d}" / "sample.json").read_text())
        assert np.allclose(row["K"], sidecar["views"][0]["K"])
        assert np.allclose(row["cam_to_world"], sidecar["views"][0]["cam_to_world_opencv"])
        n = len(sidecar["objects"])
        assert row["num_objects"] == n
        assert row["class_index"][:n].tolist() == [o["class_index"] for o in sidecar["objects"]]
        assert (row["class_index"][n:] == -1).all()
        assert np.allclose(row["location"][:n], [o["location"] for o in sidecar["objects"]])
    with h5py.File(dataset_dir / "imgs_10.h5", "r") as fh:
        assert fh.attrs["split"] == "val" and list(fh.attrs["classes"]) == ["ball", "bowl", "apple"]
    splits = json.loads((dataset_dir / "splits.json").read_text())
    assert splits["split_of_bucket"]["9"] == "train" and splits["split_of_bucket"]["11"] == "test"


def test_rerun_and_pool_give_identical_bytes(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "repro", n_samples=10)
    consolidate(dataset_dir, jobs=1)
    first = hashes(dataset_dir)
    consolidate(dataset_dir, jobs=2)  # the process pool path
    assert hashes(dataset_dir) == first
    assert not [p for p in dataset_dir.iterdir() if ".tmp-" in p.name]


def test_bad_samples_named_and_others_consolidated(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    dataset_dir = make_raw_dataset(tmp_path, "bad", n_samples=8)
    corrupt_exr(view_path(dataset_dir, 2))
    (dataset_dir / "samples" / "000004" / "sample.json").unlink()
    (dataset_dir / "samples" / "000005" / "sample.json").write_text("{not json")
    view_path(dataset_dir, 6).unlink()
    with caplog.at_level(logging.ERROR):
        status = preprocess_data.main(["-d", "bad", "-f", "-q", "-j", "1"])
    assert status == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    for name, why in [("000002", "corrupt"), ("000004", "missing sidecar"), ("000005", "invalid JSON"),
                      ("000006", "missing view file")]:
        assert any(m.startswith(f"bad sample {name}:") and why in m for m in errors), (name, errors)
    assert sorted(read_rows(dataset_dir)) == [0, 1, 3, 7]
    report = json.loads((dataset_dir / "consolidation.json").read_text())
    assert [b["sample"] for b in report["bad_samples"]] == ["000002", "000004", "000005", "000006"]
    assert preprocess_data.main(["-d", "bad", "-f", "-q", "-j", "1", "--allow-bad"]) == 0


def test_multi_view_scene_major(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "ring", n_samples=13, n_views=3, resolution=(12, 12))
    result = consolidate(dataset_dir, jobs=1)
    assert result.layout == "scene-major"
    assert result.rows == {"scenes_train.h5": 11, "scenes_val.h5": 1, "scenes_test.h5": 1}
    assert not list(dataset_dir.glob("imgs_*.h5"))
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        assert fh.attrs["layout"] == "scene-major" and fh.attrs["views"] == 3
        assert fh["images"].shape == (11, 3, 12, 12, 3) and fh["images"].chunks == (1, 3, 12, 12, 3)
        assert fh["scene_index"][:].tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 12]
        row = 10  # scene 12
        sidecar = json.loads((dataset_dir / "samples" / "000012" / "sample.json").read_text())
        for v in range(3):
            view = read_view_exr(view_path(dataset_dir, 12, v))
            assert np.array_equal(fh["images"][row, v], linear_to_srgb8(view.rgb))
            assert np.array_equal(fh["instance"][row, v], view.instance)
            assert np.array_equal(fh["semantic"][row, v], view.semantic)
            hit = np.isfinite(view.depth)
            assert np.max(np.abs(decode_depth(fh["depth"][row, v])[hit] - view.depth[hit])) <= 0.0005 + 1e-6
            assert np.allclose(fh["viewpoints"][row, v], sidecar["views"][v]["viewpoint_gqn"])
            assert np.allclose(fh["viewpoints_xyzyp"][row, v], sidecar["views"][v]["viewpoint_xyzyp"])
            assert np.allclose(fh["cam_to_world"][row, v], sidecar["views"][v]["cam_to_world_opencv"])
    with h5py.File(dataset_dir / "scenes_test.h5", "r") as fh:
        assert fh["scene_index"][:].tolist() == [11]


def test_multi_view_scene_with_missing_view_is_skipped(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "ring2", n_samples=4, n_views=2)
    view_path(dataset_dir, 1, 1).unlink()
    result = consolidate(dataset_dir, jobs=1)
    assert [b.name for b in result.bad] == ["000001"] and "view_01.exr" in result.bad[0].reason
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        assert fh["scene_index"][:].tolist() == [0, 2, 3]


def test_png_views_are_stored_verbatim_and_e_requires_exr(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    dataset_dir = make_raw_dataset(tmp_path, "pngs", n_samples=3, exr=False)
    assert preprocess_data.main(["-d", "pngs", "-f", "-e", "-q"]) == 2
    assert not list(dataset_dir.glob("*.h5"))
    result = consolidate(dataset_dir, jobs=1)
    assert not result.with_targets
    with h5py.File(dataset_dir / "imgs_01.h5", "r") as fh:
        assert "png_targets" not in fh
        assert fh["png_images"][0].tobytes() == (dataset_dir / "samples/000001/view_00.png").read_bytes()


def test_buckets_option_writes_only_those(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "some", n_samples=5)
    result = consolidate(dataset_dir, jobs=1, buckets=[1, 3])
    assert sorted(result.rows) == ["imgs_01.h5", "imgs_03.h5"]
    assert sorted(p.name for p in dataset_dir.glob("*.h5")) == ["imgs_01.h5", "imgs_03.h5"]


def test_help_describes_steps(capsys):
    with pytest.raises(SystemExit) as exc:
        preprocess_data.main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--to_hdf5", "--preprocess", "--resolution", "--lab", "--buckets", "--compute_stats", "--validate",
                 "--show", "--allow-bad"):
        assert flag in out


def test_default_jobs_takes_the_idle_cpus(monkeypatch):
    real = consolidate_mod.running_elsewhere(samples=2, interval_s=0.0)
    assert real is None or real >= 0
    cpus = len(os.sched_getaffinity(0))
    for busy, want in [(None, cpus), (0.0, cpus), (cpus - 0.5, 1), (cpus + 4.0, 1)]:
        monkeypatch.setattr(consolidate_mod, "running_elsewhere", lambda busy=busy: busy)
        assert consolidate_mod.default_jobs() == want, busy
