"""Real renders (render.py with the bpy wheel) round-trip through consolidation, validation and the viewer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from pipeline.formats.depth import decode_depth
from pipeline.formats.exr import read_view_exr
from pipeline.formats.png import decode_png, linear_to_srgb8
from pipeline.layouts.consolidate import consolidate
from pipeline.quality.contact_sheet import make_contact_sheet
from pipeline.quality.validate import validate_raw

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.blender


def test_real_render_round_trip(tmp_path):
    pytest.importorskip("bpy")
    env = {**os.environ, "DATA_DIR": str(tmp_path), "CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "render.py", "-d", "real", "--count", "3",
           "-p", "rendering.resolution = 32", "-p", "rendering.render_samples = 4",
           "-p", "rendering.render_exr = True"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dataset_dir = tmp_path / "real"
    report = validate_raw(dataset_dir)
    assert report["ok"], report
    result = consolidate(dataset_dir, jobs=1)
    assert result.written == 3 and result.bad == [] and result.with_targets
    for index in range(3):
        with h5py.File(dataset_dir / f"imgs_{index:02d}.h5", "r") as fh:
            view = read_view_exr(dataset_dir / "samples" / f"{index:06d}" / "view_00.exr")
            assert np.array_equal(decode_png(fh["png_images"][0]), linear_to_srgb8(view.rgb))
            target = decode_png(fh["png_targets"][0])
            assert np.array_equal(target[..., 0], view.instance) and np.array_equal(target[..., 1], view.semantic)
            code = decode_png(fh["png_depth"][0])[..., 0]
            hit = np.isfinite(view.depth)
            assert hit.any() and np.array_equal(np.isnan(decode_depth(code)), ~hit)
            assert np.max(np.abs(decode_depth(code)[hit] - view.depth[hit])) <= 0.0005 + 1e-6
    w, h = make_contact_sheet(dataset_dir, 3, tmp_path / "sheet.png")
    assert w > 4 * 32 and h > 3 * 32


def test_real_gqn_rooms_consolidate_scene_major(tmp_path):
    pytest.importorskip("bpy")
    env = {**os.environ, "DATA_DIR": str(tmp_path), "CACHE_DIR": str(tmp_path / "cache")}
    cmd = [sys.executable, "render.py", "-d", "rooms", "--count", "2", "-g", "gqn_rooms_ring_camera",
           "-p", "rendering.resolution = 16", "-p", "rendering.render_samples = 2",
           "-p", "rendering.render_exr = True"]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    dataset_dir = tmp_path / "rooms"
    assert validate_raw(dataset_dir)["ok"]
    result = consolidate(dataset_dir, jobs=1)
    assert result.layout == "scene-major" and result.rows["scenes_train.h5"] == 2 and not result.bad
    with h5py.File(dataset_dir / "scenes_train.h5", "r") as fh:
        s, v, h, w, _ = fh["images"].shape
        assert (s, h, w) == (2, 16, 16) and v > 1
        for view in range(v):
            exr = read_view_exr(dataset_dir / "samples" / "000001" / f"view_{view:02d}.exr")
            assert np.array_equal(fh["images"][1, view], linear_to_srgb8(exr.rgb))
            assert np.array_equal(fh["instance"][1, view], exr.instance)
            assert np.array_equal(fh["normal"][1, view], exr.normal.astype(np.float16))
