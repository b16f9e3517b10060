"""RenderNet pairs end to end on real chairs of the asset index: distributed_render.py -g rendernet (-l, and on an
embedded Ray: the same bytes), preprocess_data.py -f (voxels in the scene rows), and the RenderNet export."""

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from render.voxels import read_binvox
from tests.pipeline.distributed_testlib import REPO, file_bytes
from tests.pipeline.test_export_rendernet import rendernet_pose

pytest.importorskip("bpy")
pytestmark = [pytest.mark.blender]

N, VIEWS = 4, 3
SETTINGS = ["-g", "rendernet", "-p", "rendering.render_samples = 1", "-p", f"rendernet_object.num_views = {VIEWS}",
            "-p", "rendering.resolution = 32", "-p", "rendernet_object.voxel_dim = 32"]


def _run(script: str, *args: str, data: Path) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, script, *args], cwd=REPO, env={**os.environ, "DATA_DIR": str(data)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{script} {args} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def test_render_local_and_ray_consolidate_and_export(tmp_path: Path):
    pytest.importorskip("ray")
    data = tmp_path / "data"
    common = [*SETTINGS, "-n", str(N), "-b", "2", "--threads", "1", "--data_dir", str(data), "--no_progress"]
    _run("distributed_render.py", *common, "-d", "rn_local", "-l", data=data)
    _run("distributed_render.py", *common, "-d", "rn", "--workers", "2", data=data)
    local, ray_run = file_bytes(data / "rn_local"), file_bytes(data / "rn")
    assert sorted(local) == sorted(ray_run) and len(local) == N * (VIEWS + 2)  # views, sidecar, voxels.binvox
    for key, value in local.items():  # the same bytes on Ray workers as in one local process
        if key.endswith("sample.json"):  # it names its dataset folder
            value, other = (json.loads(x) for x in (value, ray_run[key]))
            assert value.pop("dataset") == "rn_local" and other.pop("dataset") == "rn"
            assert value == other, key
        else:
            assert value == ray_run[key], key

    _run("preprocess_data.py", "-d", "rn", "-f", "-q", data=data)
    dataset = data / "rn"
    grids, poses = {}, {}
    for split in ("train", "val", "test"):
        with h5py.File(dataset / f"scenes_{split}.h5") as fh:
            assert fh["voxels"].dtype == np.uint8 and fh["voxels"].shape[1:] == (32, 32, 32)
            assert fh["albedo"].shape[1:] == (VIEWS, 32, 32, 3)
            for row, index in enumerate(fh["scene_index"][()]):
                folder = dataset / "samples" / f"{index:06d}"
                sidecar = json.loads((folder / "sample.json").read_text())
                grid, _, _ = read_binvox(folder / sidecar["arrays"]["voxels"]["file"])
                np.testing.assert_array_equal(fh["voxels"][row], grid)  # the sample's own grid, in its row
                grids[f"ply{index:06d}"] = grid
                for v, view in enumerate(sidecar["views"]):
                    rec = view["records"]
                    for name in ("azimuth", "elevation", "radius", "light_azimuth", "light_elevation"):
                        assert fh[name][row, v] == pytest.approx(rec[name], abs=1e-4)
                    poses.setdefault(f"ply{index:06d}", []).append((rec["azimuth"], rec["elevation"], rec["radius"]))
    assert len(grids) == N

    out = tmp_path / "export"
    _run("-m", "pipeline.layouts.export_rendernet", "-d", "rn", "--out", str(out), "-q", data=data)
    for obj, grid in grids.items():
        np.testing.assert_array_equal(read_binvox(out / "voxels" / f"{obj}.binvox")[0], grid)
    names = []
    for tar_path in sorted(out.glob("images_*.tar")):
        with tarfile.open(tar_path, "r|") as tar:  # RenderNet's loader streams the TAR
            names += [m.name[:-4] for m in tar]
    assert len(names) == N * VIEWS
    for stem in names:
        obj = stem.split("_")[0]
        az, el, r = rendernet_pose(stem)
        assert any(abs((az - a + 180) % 360 - 180) < 0.006 and abs(el - e) < 0.006 and r == rr
                   for a, e, rr in poses[obj]), stem
        assert (out / "images" / f"{stem}_albedo.png").is_file() and (out / "images" / f"{stem}_normal.png").is_file()

    # a sample whose voxel file is gone is a bad sample, reported by name; the others are kept
    (data / "rn_local" / "samples" / "000001" / "voxels.binvox").unlink()
    _run("preprocess_data.py", "-d", "rn_local", "-f", "-q", "--allow-bad", data=data)
    report = json.loads((data / "rn_local" / "consolidation.json").read_text())
    assert [b["sample"] for b in report["bad_samples"]] == ["000001"]
    assert "voxels.binvox: missing voxels file" in report["bad_samples"][0]["reason"]
    assert sum(report["rows"].values()) == N - 1

    refused = subprocess.run([sys.executable, "-m", "pipeline.layouts.export_rendernet", "-d", "rn", "--out", str(out)],
                             cwd=REPO, env={**os.environ, "DATA_DIR": str(data)}, capture_output=True, text=True)
    assert refused.returncode == 2 and "not empty" in refused.stderr
