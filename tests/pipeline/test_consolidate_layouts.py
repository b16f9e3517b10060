"""Consolidation reads the layout dataset.json declares: kind, views, format, channels, records, splits."""

from __future__ import annotations

import json
import logging

import h5py
import numpy as np
import OpenEXR
import pytest

import paths
import preprocess_data
from core.layout import LayoutError
from core.samples import split_of
from pipeline.formats.exr import CANONICAL_CHANNELS, read_view_exr, write_view_exr
from pipeline.formats.png import linear_to_srgb8
from pipeline.layouts.consolidate import consolidate
from pipeline.layouts.preprocess import preprocess
from tests.fixtures_raw import fixture_layout, make_raw_dataset, make_sample, view_path


def sidecar(dataset_dir, index: int) -> dict:
    return json.loads((dataset_dir / "samples" / f"{index:06d}" / "sample.json").read_text())


def rewrite_sidecar(dataset_dir, index: int, **changes) -> None:
    path = dataset_dir / "samples" / f"{index:06d}" / "sample.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_declared_one_view_per_scene_is_scene_major(tmp_path):
    # Guessing from the view count would make buckets; the declaration says scene files.
    dataset_dir = make_raw_dataset(tmp_path, "one", n_samples=3, n_views=1)
    meta = json.loads((dataset_dir / "dataset.json").read_text())
    meta["layout"]["kind"] = "scene-major"
    (dataset_dir / "dataset.json").write_text(json.dumps(meta))
    result = consolidate(dataset_dir, jobs=1)
    assert result.layout == "scene-major" and result.declared and result.rows["scenes_train.h5"] == 3
    assert not list(dataset_dir.glob("imgs_*.h5"))


def test_scene_files_keep_normals_records_and_declared_splits(tmp_path):
    splits = {0: "test", 1: "train", 2: "val", 3: "train", 4: "train"}
    dataset_dir = make_raw_dataset(tmp_path, "rec", n_samples=5, n_views=2, resolution=(8, 6), records=True,
                                   splits=splits)
    result = consolidate(dataset_dir, jobs=2)
    assert result.bad == [] and result.rows == {"scenes_train.h5": 3, "scenes_val.h5": 1, "scenes_test.h5": 1}
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        assert fh["scene_index"][:].tolist() == [1, 3, 4]
        assert fh.attrs["split_rule"] == "declared" and fh.attrs["format_version"] == 2
        assert json.loads(fh.attrs["fields"]) == sorted(fh)
        assert {"normal", "azimuth", "elevation", "radius", "light_offset"} <= set(fh)
        assert fh["azimuth"].shape == (3, 2) and fh["light_offset"].shape == (3, 3)
        for row, index in enumerate([1, 3, 4]):
            meta = sidecar(dataset_dir, index)
            assert np.allclose(fh["light_offset"][row], meta["records"]["light_offset"])
            for v in range(2):
                assert np.isclose(fh["azimuth"][row, v], meta["views"][v]["records"]["azimuth"])
                assert np.isclose(fh["radius"][row, v], meta["views"][v]["records"]["radius"])
                normal = read_view_exr(view_path(dataset_dir, index, v)).normal
                assert np.array_equal(fh["normal"][row, v], normal.astype(np.float16))
    report = json.loads((dataset_dir / "consolidation.json").read_text())
    assert report["layout_declared"] and report["layout_declaration"] == fixture_layout(2, True, True, True)
    assert json.loads((dataset_dir / "splits.json").read_text())["samples"] == {
        "train": [1, 3, 4], "val": [2], "test": [0]}


def test_buckets_keep_records_and_rows_carry_their_split(tmp_path):
    splits = {i: ("val" if i == 3 else "test" if i == 5 else "train") for i in range(14)}
    dataset_dir = make_raw_dataset(tmp_path, "bk", n_samples=14, records=True, splits=splits)
    consolidate(dataset_dir, jobs=1)
    with h5py.File(dataset_dir / "imgs_03.h5", "r") as fh:
        assert "split" not in fh.attrs and fh.attrs["split_rule"] == "declared"
        assert fh["index"][:].tolist() == [3] and fh["split"][:].tolist() == [1]
        assert fh["azimuth"].shape == (1,) and fh["light_offset"].shape == (1, 3)
        assert np.isclose(fh["elevation"][0], sidecar(dataset_dir, 3)["views"][0]["records"]["elevation"])
    # Preprocessing orders rows by each row's own split, not its bucket's.
    with h5py.File(preprocess(dataset_dir, res=8), "r") as fh:
        assert json.loads(fh.attrs["split_rows"]) == {"train": [0, 12], "val": [12, 13], "test": [13, 14]}
        assert fh["index"][12:].tolist() == [3, 5]


def test_samples_that_disagree_with_the_declaration_are_bad(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "dis", n_samples=7, n_views=2, records=True)
    samples = dataset_dir / "samples"
    make_sample(samples / "000001", 1, 7, 3, (16, 12), records=True)  # 3 views
    make_sample(samples / "000002", 2, 7, 2, (16, 12), exr=False, records=True)  # PNG views
    meta = sidecar(dataset_dir, 3)
    del meta["views"][1]["records"]["radius"]
    rewrite_sidecar(dataset_dir, 3, views=meta["views"])
    rewrite_sidecar(dataset_dir, 4, records={"light_offset": [1.0, 2.0]})
    rewrite_sidecar(dataset_dir, 5, records={"light_offset": "bright"})
    result = consolidate(dataset_dir, jobs=1)
    reasons = {b.name: b.reason for b in result.bad}
    assert sorted(reasons) == ["000001", "000002", "000003", "000004", "000005"]
    assert "has 3 views, the layout declares 2" in reasons["000001"]
    assert "view files are png, the layout declares exr" in reasons["000002"]
    assert "views[1].records" in reasons["000003"] and "view_records" in reasons["000003"]
    assert "records {'light_offset': (2,)}" in reasons["000004"]
    assert "records.light_offset is not numeric" in reasons["000005"] and "000005/sample.json" in reasons["000005"]
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        assert fh["scene_index"][:].tolist() == [0, 6]


def test_declared_split_missing_makes_the_sample_bad(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "sp", n_samples=3, n_views=2, splits={0: "train", 1: "nope"})
    reasons = {b.name: b.reason for b in consolidate(dataset_dir, jobs=1).bad}
    assert "'split' is 'nope'" in reasons["000001"] and "'split' is None" in reasons["000002"]


def test_declared_normals_missing_from_a_view_make_it_bad(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "nn", n_samples=2, n_views=2)


    path = view_path(dataset_dir, 1, 1)  # rewritten without its normal channels
    view = read_view_exr(path)
    channels = {"R": view.rgb[..., 0], "G": view.rgb[..., 1], "B": view.rgb[..., 2], "depth": view.depth,
                "instance": view.instance, "semantic": view.semantic}
    channels = {k: np.ascontiguousarray(v, CANONICAL_CHANNELS[k]) for k, v in channels.items()}
    with OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels) as exr:
        exr.write(str(path))
    reasons = {b.name: b.reason for b in consolidate(dataset_dir, jobs=1).bad}
    assert reasons == {"000001": f"{path}: no normal channels, the layout declares normal"}


def test_legacy_dataset_inferred_once_with_a_warning(tmp_path, caplog):
    dataset_dir = make_raw_dataset(tmp_path, "old", n_samples=4, n_views=3, legacy=True)
    with caplog.at_level(logging.WARNING):
        result = consolidate(dataset_dir, jobs=1)
    assert not result.declared and result.layout == "scene-major"
    warnings = [r.getMessage() for r in caplog.records if "declares no layout" in r.getMessage()]
    assert len(warnings) == 1 and "dataset.json" in warnings[0] and "inferred" in warnings[0]
    report = json.loads((dataset_dir / "consolidation.json").read_text())
    assert report["layout_declared"] is False
    assert report["layout_declaration"] == {**fixture_layout(3), "split": "index % 12"}
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        assert "normal" in fh and fh.attrs["split_rule"] == "index % 12"
        assert fh["scene_index"][:].tolist() == [i for i in range(4) if split_of(i) == "train"]


@pytest.mark.parametrize("change, message", [
    ({"layout": {"kind": "diagonal"}}, "lacks 'views'"),
    ({"layout": {**fixture_layout(1), "kind": "diagonal"}}, "layout kind 'diagonal'"),
    ({"layout": {**fixture_layout(1), "channels": ["rgb", "normal"]}}, "lacks ['depth', 'instance', 'semantic']"),
    ({"layout": {**fixture_layout(1), "view_records": {"index": []}}}, "record names ['index'] clash"),
])
def test_bad_declaration_names_the_file_and_writes_nothing(tmp_path, change, message):
    dataset_dir = make_raw_dataset(tmp_path, "decl", n_samples=2)
    meta = json.loads((dataset_dir / "dataset.json").read_text())
    (dataset_dir / "dataset.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(LayoutError) as err:
        consolidate(dataset_dir, jobs=1)
    assert message in str(err.value) and str(dataset_dir / "dataset.json") in str(err.value)
    assert sorted(p.name for p in dataset_dir.iterdir()) == [".preprocess.lock", "dataset.json", "samples"]


def test_ids_above_255_are_a_bad_sample_not_a_wrapped_id(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "ids", n_samples=2)
    path = view_path(dataset_dir, 1)
    view = read_view_exr(path)
    write_view_exr(path, view.rgb, view.depth, np.where(view.instance > 0, 300, 0), view.semantic, view.normal)
    reasons = {b.name: b.reason for b in consolidate(dataset_dir, jobs=1).bad}
    assert "instance id 300 does not fit uint8" in reasons["000001"]


def test_cli_reports_a_corrupt_dataset_json_and_exits_2(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    dataset_dir = make_raw_dataset(tmp_path, "cli", n_samples=2)
    (dataset_dir / "dataset.json").write_text("{oops")
    with caplog.at_level(logging.ERROR):
        assert preprocess_data.main(["-d", "cli", "-f", "-q", "-j", "1"]) == 2
    (message,) = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert str(dataset_dir / "dataset.json") in message and "re-render" in message
    assert not list(dataset_dir.glob("*.h5")) and not (dataset_dir / "consolidation.json").exists()


def test_declared_albedo_is_stored_srgb_encoded(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "alb", n_samples=2, n_views=2)
    meta = json.loads((dataset_dir / "dataset.json").read_text())
    meta["layout"]["channels"].append("albedo")
    (dataset_dir / "dataset.json").write_text(json.dumps(meta))
    for index in range(2):
        for v in range(2):
            path = view_path(dataset_dir, index, v)
            view = read_view_exr(path)
            write_view_exr(path, view.rgb, view.depth, view.instance, view.semantic, view.normal,
                           albedo=np.clip(view.rgb * 1.5, 0, 1))
    assert consolidate(dataset_dir, jobs=1).bad == []
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        assert "albedo" in json.loads(fh.attrs["fields"])
        albedo = read_view_exr(view_path(dataset_dir, 1, 0)).albedo
        assert np.array_equal(fh["albedo"][1, 0], linear_to_srgb8(albedo))
