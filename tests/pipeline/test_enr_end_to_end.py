"""ENR sets end to end on real chairs: distributed_render.py -g enr_rotation (embedded Ray, 2 workers), then
preprocess_data.py -f, then the ENR export command; the folders ENR's loader reads agree pixel for pixel with the
HDF5 file and carry the rendered angles. Also the test split (251 spiral views) and a Shepard-Metzler set exported
with angles taken from its cameras."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from core.camera import on_sphere
from tests.pipeline.test_export_enr import enr_loader

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
TINY = ["-p", "rendering.resolution = 24", "-p", "rendering.render_samples = 1", "-p", "rendering.denoise = 'none'"]


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"{args[:2]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def _sidecars(dataset: Path) -> dict[str, dict]:
    return {p.name: json.loads((p / "sample.json").read_text())
            for p in sorted((dataset / "samples").iterdir()) if p.name.isdigit()}


def _check_export(dataset: Path, out: Path, split: str, views: int) -> list:
    """ENR's loader on out/split agrees with scenes_{split}.h5 pixel for pixel and with the sidecars' angles."""
    sidecars = _sidecars(dataset)
    scenes = enr_loader(out / split)
    with h5py.File(dataset / f"scenes_{split}.h5", "r") as fh:
        images, index = fh["images"][()], fh["scene_index"][()]
    assert sorted(os.listdir(out / split)) == [f"{i:06d}" for i in index]
    assert len(scenes) == len(index) and images.shape[1] == views
    for row, (imgs, poses) in enumerate(scenes):
        sidecar = sidecars[f"{index[row]:06d}"]
        assert sidecar["split"] == split and len(imgs) == views
        np.testing.assert_array_equal(np.stack(imgs), images[row])
        for pose, view in zip(poses, sidecar["views"], strict=True):
            az, el = view["records"]["azimuth"], view["records"]["elevation"]
            assert abs((pose["azimuth"] - az + 180.0) % 360.0 - 180.0) < 2e-3 and abs(pose["elevation"] - el) < 2e-3
    return scenes


def test_enr_rotation_distributed_consolidated_exported(tmp_path):
    data = tmp_path / "data"
    _run("distributed_render.py", "-g", "enr_rotation", "-d", "enr_rot", "-n", "4", "-b", "2", "--workers", "2",
         "--threads", "1", "--data_dir", str(data), "--no_progress", *TINY, "-p", "enr_object.num_views = 6")
    _run("preprocess_data.py", "-d", "enr_rot", "-f", env={"DATA_DIR": str(data)})
    _run("-m", "pipeline.layouts.export_enr", str(data / "enr_rot"), "--out", str(tmp_path / "enr"))
    scenes = _check_export(data / "enr_rot", tmp_path / "enr", "train", 6)
    assert len(scenes) == 4 and sorted(os.listdir(tmp_path / "enr")) == ["train"]
    # white background where the chair is not: ENR's loader keeps RGB and drops nothing else
    corners = np.stack([img[[0, 0, -1, -1], [0, -1, 0, -1]] for imgs, _ in scenes for img in imgs])
    assert (corners == 255).all()


def test_enr_test_split_has_251_spiral_views_through_the_export(tmp_path):
    data = tmp_path / "data"
    _run("distributed_render.py", "-g", "enr_rotation", "-d", "enr_test", "-n", "1", "-b", "1", "-l",
         "--data_dir", str(data), "--no_progress", *TINY, "-p", "rendering.resolution = 8",
         "-p", "enr_object.split = 'test'")
    _run("preprocess_data.py", "-d", "enr_test", "-f", env={"DATA_DIR": str(data)})
    _run("-m", "pipeline.layouts.export_enr", str(data / "enr_test"), "--out", str(tmp_path / "enr"))
    (imgs, poses), = _check_export(data / "enr_test", tmp_path / "enr", "test", 251)
    assert (len(imgs) - 1) % 125 == 0  # ENR's evaluate_psnr.py assertion
    assert poses[64]["elevation"] == pytest.approx(23.04, abs=1e-3)


def test_shepard_metzler_exports_with_angles_from_its_cameras(tmp_path):
    data = tmp_path / "data"
    _run("render.py", "--", "-d", "sm", "-g", "gqn_shepard_metzler_5_parts", "--data_dir", str(data),
         "--count", "2", *TINY)
    _run("preprocess_data.py", "-d", "sm", "-f", env={"DATA_DIR": str(data)})
    proc = _run("-m", "pipeline.layouts.export_enr", str(data / "sm"), "--out", str(tmp_path / "enr"))
    assert "angles from the cameras" in proc.stdout
    sidecars = _sidecars(data / "sm")
    with h5py.File(data / "sm" / "scenes_train.h5", "r") as fh:
        images, index = fh["images"][()], fh["scene_index"][()]
    scenes = enr_loader(tmp_path / "enr" / "train")
    for row, (imgs, poses) in enumerate(scenes):
        np.testing.assert_array_equal(np.stack(imgs), images[row])
        for pose, view in zip(poses, sidecars[f"{index[row]:06d}"]["views"], strict=True):
            location = np.array(view["cam_to_world_blender"])[:3, 3]
            rebuilt = on_sphere(np.zeros(3), float(np.linalg.norm(location)), math.radians(float(pose["azimuth"])),
                                math.radians(float(pose["elevation"])))
            np.testing.assert_allclose(rebuilt, location, atol=1e-4)
