"""pipeline/layouts/export_rendernet.py: pose-named images, binvox voxels and TARs, read back with the rules of
RenderNet's own loader (tools/data_util.py name parsing, tools/utils.py TAR streaming)."""

from __future__ import annotations

import io
import math
import os
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.layouts.export_common import ExportError
from pipeline.layouts.export_rendernet import angle_text, export_rendernet, pose_name, radius_text
from tests.pipeline.scene_file_fixtures import make_scene_file
from tests.render.test_voxels import reference_read_binvox


def rendernet_pose(img_name: str) -> tuple[float, float, float]:
    """RenderNet's parse: text between the first '_p' and '_t' is the azimuth, between '_t' and '_r' the polar
    angle t, exactly three characters after '_r' the radius. Returns (azimuth deg, elevation deg, radius)."""
    p, t, r = img_name.find("_p"), img_name.find("_t"), img_name.find("_r")
    return float(img_name[p + 2 : t]), 90.0 - float(img_name[t + 2 : r]), float(img_name[r + 2 : r + 5])


def rendernet_voxel_file(img_name: str) -> str:
    """The loader's voxel lookup for names whose first '_' token holds 'ply'."""
    first = img_name.split("_")[0]
    assert "ply" in first
    return first + ".binvox"


def make_split_files(tmp_path: Path) -> tuple[dict, dict]:
    train = make_scene_file(tmp_path / "scenes_train.h5", scenes=3, views=4, radius=True, voxels=8,
                            albedo=True, normal=True, seed=1)
    val = make_scene_file(tmp_path / "scenes_val.h5", scenes=2, views=5, split="val", radius=True, voxels=8,
                          seed=2, first_index=10)
    return train, val


def test_names_parse_back_to_the_stored_pose(tmp_path: Path) -> None:
    train, val = make_split_files(tmp_path)
    result = export_rendernet([tmp_path / "scenes_train.h5", tmp_path / "scenes_val.h5"], tmp_path / "rn")
    assert (result.objects, result.images, result.rounded_radii) == (5, 22, 0)
    assert sorted(os.listdir(tmp_path / "rn")) == ["images", "images_train.tar", "images_val.tar", "voxels"]
    for data, split in ((train, "train"), (val, "val")):
        with tarfile.open(tmp_path / "rn" / f"images_{split}.tar", "r|") as tar:  # the loader's streaming mode
            members = [(m.name, tar.extractfile(m).read()) for m in tar]
        s, v = data["azimuth"].shape
        assert len(members) == s * v and len({n for n, _ in members}) == s * v  # every view once
        seen = set()
        for name, png in members:
            stem = name[:-4]  # the loader's entry.name[:-4]
            az, el, r = rendernet_pose(stem)
            obj = rendernet_voxel_file(stem)[: -len(".binvox")]
            row = int(np.flatnonzero(data["scene_index"] == int(obj[3:]))[0])
            matches = [k for k in range(v) if abs(((data["azimuth"][row, k] - az + 180) % 360) - 180) <= 0.005 + 1e-9
                       and abs(data["elevation"][row, k] - el) <= 0.005 + 1e-9
                       and math.isclose(data["radius"][row, k], r, abs_tol=1e-6)]
            assert len(matches) == 1, name
            k = matches[0]
            seen.add((row, k))
            with Image.open(io.BytesIO(png)) as im:
                np.testing.assert_array_equal(np.asarray(im), data["images"][row, k])
            assert (tmp_path / "rn" / "voxels" / rendernet_voxel_file(stem)).is_file()
        assert len(seen) == s * v


def test_companions_and_voxels(tmp_path: Path) -> None:
    train, _ = make_split_files(tmp_path)
    export_rendernet([tmp_path / "scenes_train.h5", tmp_path / "scenes_val.h5"], tmp_path / "rn")
    files = sorted(os.listdir(tmp_path / "rn" / "images"))
    shaded = [f for f in files if not f.endswith(("_albedo.png", "_normal.png"))]
    train_shaded = [f for f in shaded if f.startswith(("ply000012", "ply000024", "ply000036"))]
    assert len(train_shaded) == 12 and len(shaded) == 22
    for f in train_shaded:
        assert f[:-4] + "_albedo.png" in files and f[:-4] + "_normal.png" in files
        assert rendernet_pose(f[:-4] + "_albedo") == rendernet_pose(f[:-4])  # suffixes do not disturb the parse
    assert not any(f.startswith("ply000010") and f.endswith("_albedo.png") for f in files)  # val has no albedo
    # normals: round((n + 1) * 127.5)
    f = train_shaded[0]
    with Image.open(tmp_path / "rn" / "images" / (f[:-4] + "_normal.png")) as im:
        n8 = np.asarray(im)
    row = 0
    az, el, _ = rendernet_pose(f[:-4])
    k = int(np.argmin(abs(train["elevation"][row] - el) + abs(train["azimuth"][row] - az)))
    expected = np.rint((np.clip(train["normal"][row, k].astype(np.float32), -1, 1) + 1) * 127.5).astype(np.uint8)
    np.testing.assert_array_equal(n8, expected)
    for row, index in enumerate(train["scene_index"]):
        grid, translate, scale = reference_read_binvox(tmp_path / "rn" / "voxels" / f"ply{index:06d}.binvox")
        np.testing.assert_array_equal(grid, train["voxels"][row])
        assert translate == [-0.5, -0.5, -0.5] and scale == 1.0
    assert sorted(os.listdir(tmp_path / "rn" / "voxels")) == [f"ply{i:06d}.binvox" for i in (10, 12, 22, 24, 36)]


def test_tar_bytes_are_reproducible(tmp_path: Path) -> None:
    make_split_files(tmp_path)
    a = export_rendernet([tmp_path / "scenes_train.h5"], tmp_path / "a")
    b = export_rendernet([tmp_path / "scenes_train.h5"], tmp_path / "b")
    assert a.tars["train"].read_bytes() == b.tars["train"].read_bytes()
    with tarfile.open(a.tars["train"]) as tar:
        names = tar.getnames()
    assert names == sorted(names) and all("/" not in n and n.endswith(".png") for n in names)
    assert not any(n.endswith(("_albedo.png", "_normal.png")) for n in names)


def test_name_formatting_rules() -> None:
    assert [angle_text(x) for x in (30.0, 30.5, 30.25, 30.254, 0.004, -0.001)] == ["30", "30.5", "30.25", "30.25",
                                                                                  "0", "0"]
    assert pose_name("ply000001", 359.999, 0.0, "3.3") == "ply000001_p0_t90_r3.3"
    assert pose_name("ply000001", -90.0, 80.0, "2.5") == "ply000001_p270_t10_r2.5"
    assert rendernet_pose(pose_name("ply000001", 123.456, -12.344, "4.5")) == pytest.approx((123.46, -12.34, 4.5))
    with pytest.raises(ExportError, match="polar angle 170.5"):
        pose_name("ply000001", 0.0, -80.5, "3.3")
    assert radius_text(np.float32(3.3)) == "3.3" and radius_text(2.5) == "2.5" and radius_text(4.5) == "4.5"
    with pytest.raises(ExportError, match="outside"):
        radius_text(4.6)
    with pytest.raises(ExportError, match="round_radius=True"):
        radius_text(3.25)
    assert radius_text(3.26, round_radius=True) == "3.3"


def test_refusals_publish_nothing(tmp_path: Path) -> None:
    make_split_files(tmp_path)
    bad = tmp_path / "scenes_bad.h5"
    make_scene_file(bad, scenes=2, views=3, radius=True, voxels=8, split="test")
    with h5py.File(bad, "a") as fh:
        fh["radius"][1, 2] = 3.27
    with pytest.raises(ExportError, match=r"scenes_bad.h5: scene row 1, view 2: radius 3.27"):
        export_rendernet([tmp_path / "scenes_train.h5", bad], tmp_path / "rn")
    assert not (tmp_path / "rn").exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".tmp-")]
    result = export_rendernet([bad], tmp_path / "rn_rounded", round_radius=True)
    assert result.rounded_radii == 1
    assert any("_r3.3" in n for n in os.listdir(tmp_path / "rn_rounded" / "images"))

    with h5py.File(bad, "a") as fh:
        fh["radius"][1, 2] = 3.3
        fh["azimuth"][0, 1] = fh["azimuth"][0, 0] + 0.001
        fh["elevation"][0, 1] = fh["elevation"][0, 0]
        fh["radius"][0, 1] = fh["radius"][0, 0]
    with pytest.raises(ExportError, match="views 0 and 1 both name"):
        export_rendernet([bad], tmp_path / "rn")
    with pytest.raises(ExportError, match="split 'train' was already exported"):
        export_rendernet([tmp_path / "scenes_train.h5", tmp_path / "scenes_train.h5"], tmp_path / "rn")
    with h5py.File(tmp_path / "scenes_val.h5", "a") as fh:
        del fh["voxels"]
    with pytest.raises(ExportError, match="scenes_val.h5: dataset 'voxels' is missing"):
        export_rendernet([tmp_path / "scenes_val.h5"], tmp_path / "rn")
    (tmp_path / "rn").mkdir()
    (tmp_path / "rn" / "old").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_rendernet([tmp_path / "scenes_train.h5"], tmp_path / "rn")
    assert os.listdir(tmp_path / "rn") == ["old"]


def test_an_empty_output_folder_is_used(tmp_path: Path) -> None:
    make_split_files(tmp_path)
    (tmp_path / "rn").mkdir()
    export_rendernet([tmp_path / "scenes_val.h5"], tmp_path / "rn")
    assert sorted(os.listdir(tmp_path / "rn")) == ["images", "images_val.tar", "voxels"]


def test_command_line_exports_a_dataset_and_refuses_a_non_empty_folder(tmp_path: Path, monkeypatch, capsys) -> None:
    import subprocess
    import sys

    import paths
    from pipeline.layouts import export_rendernet as module

    dataset = tmp_path / "data" / "rn"
    dataset.mkdir(parents=True)
    make_split_files(dataset)
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path / "data")
    assert module.main(["-d", "rn", "--out", str(tmp_path / "out"), "-q"]) == 0
    assert "exported 5 objects, 22 views" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path / "out")) == ["images", "images_train.tar", "images_val.tar", "voxels"]
    before = sorted(p.name for p in (tmp_path / "out" / "images").iterdir())
    assert module.main(["--files", str(dataset / "scenes_train.h5"), "--out", str(tmp_path / "out"), "-q"]) == 2
    assert sorted(p.name for p in (tmp_path / "out" / "images").iterdir()) == before  # nothing written over
    assert module.main(["-d", "missing", "--out", str(tmp_path / "out2"), "-q"]) == 2
    assert not (tmp_path / "out2").exists()
    helped = subprocess.run([sys.executable, "-m", "pipeline.layouts.export_rendernet", "--help"],
                            capture_output=True, text=True, check=True, cwd=Path(__file__).resolve().parents[2])
    assert "--out" in helped.stdout and "binvox" in helped.stdout
