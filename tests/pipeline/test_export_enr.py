"""pipeline/layouts/export_enr.py: the ENR folder layout, read back with the rules of ENR's own loader."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from PIL import Image

from pipeline.layouts.export_common import ExportError
from pipeline.layouts.export_enr import export_enr
from tests.pipeline.scene_file_fixtures import make_scene_file

REPO = Path(__file__).resolve().parents[2]


def enr_loader(split_dir: Path) -> list[tuple[list[np.ndarray], list[dict[str, np.float32]]]]:
    """ENR's loader rules (CONVENTIONS.md): every entry of the split folder is a scene (sorted glob); a scene's
    views are its sorted *.png; the view count comes from the first scene and is assumed for all; a view's
    JSON key is the last five characters of its stem; values are cast to float32; the first 3 channels kept."""
    scene_paths = sorted(glob.glob(os.path.join(split_dir, "*")))
    n_views = len(glob.glob(os.path.join(scene_paths[0], "*.png")))
    scenes = []
    for scene_path in scene_paths:
        pngs = sorted(glob.glob(os.path.join(scene_path, "*.png")))
        with open(os.path.join(scene_path, "render_params.json")) as fh:
            params = json.load(fh)
        imgs, poses = [], []
        for k in range(n_views):
            with Image.open(pngs[k]) as im:
                imgs.append(np.asarray(im)[..., :3])
            key = Path(pngs[k]).stem[-5:]
            poses.append({name: np.float32(value) for name, value in params[key].items()})
        scenes.append((imgs, poses))
    return scenes


def test_export_reads_back_unchanged_through_enr_rules(tmp_path: Path) -> None:
    data = make_scene_file(tmp_path / "scenes_train.h5", scenes=3, views=5, offset=True)
    result = export_enr(tmp_path / "scenes_train.h5", tmp_path / "enr")
    assert (result.split, result.scenes, result.views, result.composited) == ("train", 3, 5, False)
    split_dir = tmp_path / "enr" / "train"
    assert sorted(os.listdir(tmp_path / "enr")) == ["train"]
    assert sorted(os.listdir(split_dir)) == ["000012", "000024", "000036"]  # nothing but scenes
    assert sorted(os.listdir(split_dir / "000012")) == [f"{k:05d}.png" for k in range(5)] + ["render_params.json"]
    scenes = enr_loader(split_dir)
    assert len(scenes) == 3
    for s, (imgs, poses) in enumerate(scenes):
        assert len(imgs) == 5
        for v in range(5):
            assert imgs[v].dtype == np.uint8 and imgs[v].shape == (16, 16, 3)
            np.testing.assert_array_equal(imgs[v], data["images"][s, v])
            assert poses[v]["azimuth"] == data["azimuth"][s, v]  # float32-exact, degrees
            assert poses[v]["elevation"] == data["elevation"][s, v]
            assert [poses[v][c] for c in "xyz"] == data["offset"][s, v].tolist()


def test_mask_paints_background_white_and_no_offset_means_zero(tmp_path: Path) -> None:
    data = make_scene_file(tmp_path / "scenes_test.h5", scenes=2, views=4, split="test", background=40, mask=True)
    result = export_enr(tmp_path / "scenes_test.h5", tmp_path / "enr")
    assert result.composited
    scenes = enr_loader(tmp_path / "enr" / "test")
    for s, (imgs, poses) in enumerate(scenes):
        for v in range(4):
            m = data["mask"][s, v] > 0
            np.testing.assert_array_equal(imgs[v][m], data["images"][s, v][m])
            assert (imgs[v][~m] == 255).all() and (~m).any()
            assert [poses[v][c] for c in "xyz"] == [0.0, 0.0, 0.0]
    params = json.loads((tmp_path / "enr" / "test" / "000012" / "render_params.json").read_text())
    assert sorted(params) == ["00000", "00001", "00002", "00003"]
    assert sorted(params["00000"]) == ["azimuth", "elevation", "x", "y", "z"]


def test_refuses_non_empty_output_and_bad_input(tmp_path: Path) -> None:
    make_scene_file(tmp_path / "scenes_train.h5")
    (tmp_path / "enr" / "train").mkdir(parents=True)
    (tmp_path / "enr" / "train" / "stray").write_text("x")
    with pytest.raises(ExportError, match="not empty"):
        export_enr(tmp_path / "scenes_train.h5", tmp_path / "enr")
    assert sorted(os.listdir(tmp_path / "enr" / "train")) == ["stray"]

    bad = tmp_path / "bad.h5"
    make_scene_file(bad)
    with h5py.File(bad, "a") as fh:
        del fh["elevation"]
    with pytest.raises(ExportError, match="bad.h5.*'elevation' is missing"):
        export_enr(bad, tmp_path / "out")
    with h5py.File(bad, "a") as fh:
        fh["elevation"] = np.zeros((3, 5), np.float32)
    with pytest.raises(ExportError, match=r"bad.h5.*'elevation' has shape \(3, 5\), expected \(3, 4\)"):
        export_enr(bad, tmp_path / "out")
    with h5py.File(bad, "a") as fh:
        del fh["elevation"]
        fh["elevation"] = np.full((3, 4), np.nan, np.float32)
    with pytest.raises(ExportError, match="'elevation' holds a non-finite value"):
        export_enr(bad, tmp_path / "out")
    with h5py.File(bad, "a") as fh:
        fh["elevation"][...] = 0.0
        fh.attrs["split"] = "training"
    with pytest.raises(ExportError, match="'split' is 'training'"):
        export_enr(bad, tmp_path / "out")
    assert not (tmp_path / "out").exists()  # refused before writing anything


def test_killed_export_leaves_only_whole_scenes(tmp_path: Path) -> None:
    make_scene_file(tmp_path / "scenes_train.h5", scenes=3, views=4)
    # A process that dies (no cleanup, as under SIGKILL) while writing the 7th view: scene 2 of 3, view 3 of 4.
    script = (
        "import os, sys\n"
        "import pipeline.layouts.export_enr as e\n"
        "calls = []\n"
        "real = e.encode_png8\n"
        "def dying(rgb):\n"
        "    calls.append(1)\n"
        "    if len(calls) == 7:\n"
        "        os._exit(9)\n"
        "    return real(rgb)\n"
        "e.encode_png8 = dying\n"
        "e.export_enr(sys.argv[1], sys.argv[2])\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path / "scenes_train.h5"), str(tmp_path / "enr")],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    split_dir = tmp_path / "enr" / "train"
    visible = sorted(glob.glob(os.path.join(split_dir, "*")))
    assert [Path(p).name for p in visible] == ["000012"]  # the one complete scene; ENR's glob sees nothing else
    assert len(os.listdir(split_dir / "000012")) == 5
    hidden = [p for p in os.listdir(split_dir) if p.startswith(".tmp-")]
    assert len(hidden) == 1 and hidden[0].endswith("~000024")
    with pytest.raises(ExportError, match="not empty"):
        export_enr(tmp_path / "scenes_train.h5", tmp_path / "enr")


def test_exception_mid_scene_removes_the_staged_scene(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_scene_file(tmp_path / "scenes_val.h5", split="val", scenes=2, views=4)
    import pipeline.layouts.export_enr as module

    calls, real = [], module.encode_png8

    def failing(rgb: np.ndarray) -> bytes:
        calls.append(1)
        if len(calls) == 6:  # scene 2, view 2
            raise OSError("disk full")
        return real(rgb)

    monkeypatch.setattr(module, "encode_png8", failing)
    with pytest.raises(OSError, match="disk full"):
        export_enr(tmp_path / "scenes_val.h5", tmp_path / "enr")
    assert sorted(os.listdir(tmp_path / "enr" / "val")) == ["000012"]


def _poses_file(path: Path, azimuth: np.ndarray, elevation: np.ndarray, target: np.ndarray) -> None:
    """A scene file without azimuth/elevation records whose cameras (OpenCV cam_to_world) stand at those angles
    on a sphere of radius 2 and look at `target`."""
    from core.camera import blender_to_opencv, look_at, on_sphere

    make_scene_file(path, scenes=azimuth.shape[0], views=azimuth.shape[1])
    poses = np.array([[blender_to_opencv(look_at(on_sphere(np.zeros(3), 2.0, np.radians(a), np.radians(e)), target))
                       for a, e in zip(row_a, row_e, strict=True)] for row_a, row_e in zip(azimuth, elevation,
                                                                                            strict=True)])
    with h5py.File(path, "a") as fh:
        del fh["azimuth"], fh["elevation"]
        fh["cam_to_world"] = poses.astype(np.float32)


def test_angles_come_from_the_cameras_when_the_file_has_none(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    azimuth = rng.uniform(0, 360, (3, 4))
    elevation = rng.uniform(-80, 80, (3, 4))
    _poses_file(tmp_path / "scenes_train.h5", azimuth, elevation, np.zeros(3))
    result = export_enr(tmp_path / "scenes_train.h5", tmp_path / "enr")
    assert result.derived_angles
    scenes = enr_loader(tmp_path / "enr" / "train")
    got = np.array([[[p["azimuth"], p["elevation"]] for p in poses] for _, poses in scenes])
    np.testing.assert_allclose(got[..., 0], azimuth, atol=2e-3)  # float32 cameras: ~1e-4 degrees
    np.testing.assert_allclose(got[..., 1], elevation, atol=2e-3)


def test_cameras_that_miss_the_origin_are_refused(tmp_path: Path) -> None:
    azimuth, elevation = np.full((2, 3), 30.0), np.full((2, 3), 10.0)
    _poses_file(tmp_path / "scenes_train.h5", azimuth, elevation, np.array([0.0, 0.0, 0.4]))  # rooms-like look-at
    with pytest.raises(ExportError, match="does not look at the origin"):
        export_enr(tmp_path / "scenes_train.h5", tmp_path / "enr")
    assert not (tmp_path / "enr").exists()


def test_command_line_exports_every_split_and_refuses_a_non_empty_folder(tmp_path: Path) -> None:
    dataset = tmp_path / "ds"
    dataset.mkdir()
    make_scene_file(dataset / "scenes_train.h5", scenes=2, views=4)
    make_scene_file(dataset / "scenes_test.h5", scenes=1, views=6, split="test")
    make_scene_file(dataset / "scenes_val.h5", scenes=0, views=4, split="val")  # empty: nothing to export
    cmd = [sys.executable, "-m", "pipeline.layouts.export_enr", str(dataset), "--out", str(tmp_path / "out")]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["test", "train"]
    assert len(enr_loader(tmp_path / "out" / "test")[0][0]) == 6
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "not empty" in proc.stderr
    help_text = subprocess.run([*cmd[:3], "--help"], cwd=REPO, capture_output=True, text=True).stdout
    assert "--out" in help_text and "render_params.json" in help_text
