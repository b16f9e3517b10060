"""Real renders with real bpy: pixels, depth, masks, classes and camera geometry checked against each other."""

import json
import shutil
import socket

import numpy as np
import pytest

from core.camera import BLENDER_TO_OPENCV, intrinsics, project
from tests.render.helpers import TINY, load_sample, run_render, sample_dirs

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


@pytest.fixture(scope="module")
def multi_dataset(tmp_path_factory):
    """Three multi-object samples with random poses (the hardest case for label consistency)."""
    data = tmp_path_factory.mktemp("data")
    run_render(data, "multi", "-g", "render_multi", *TINY, "-p", "rendering.resolution = 48", "--count", "3")
    return data / "multi"


def test_depth_is_finite_exactly_where_an_object_was_hit(multi_dataset):
    for sample in sample_dirs(multi_dataset):
        _, (view,) = load_sample(sample)
        hit = view["instance"] > 0
        assert hit.any() and (~hit).any()
        assert np.array_equal(np.isfinite(view["depth"]), hit)
        assert (view["depth"][hit] > 0).all()
        assert np.array_equal(view["semantic"] > 0, hit)
        normals = np.stack([view["normal.X"], view["normal.Y"], view["normal.Z"]], -1)[hit]
        assert np.allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-3)


def test_semantic_ids_match_the_classes_in_the_sidecar(multi_dataset):
    for sample in sample_dirs(multi_dataset):
        sidecar, (view,) = load_sample(sample)
        ids = set(np.unique(view["instance"]).tolist()) - {0}
        assert ids <= {o["instance_id"] for o in sidecar["objects"]}
        for obj in sidecar["objects"]:
            mask = view["instance"] == obj["instance_id"]
            assert sidecar["classes"][obj["class_index"]] == obj["class"]
            assert (view["semantic"][mask] == obj["class_index"] + 1).all()


def test_object_centres_project_onto_their_own_mask_unless_something_nearer_hides_them(multi_dataset):
    checked = 0
    for sample in sample_dirs(multi_dataset):
        sidecar, (view,) = load_sample(sample)
        cam = sidecar["views"][0]
        K, c2w = np.array(cam["K"]), np.array(cam["cam_to_world_opencv"])
        for obj in sidecar["objects"]:
            uv, z = project(np.array([obj["centroid"]]), K, c2w)
            u, v = int(uv[0, 0]), int(uv[0, 1])
            assert 0 <= u < 48 and 0 <= v < 48 and z[0] > 0
            hit = view["instance"][v, u]
            if hit == obj["instance_id"]:
                checked += 1
                # depth of the visible surface lies in front of the centre, within the object's size
                assert 0 < z[0] - view["depth"][v, u] < 0.75
            else:
                assert hit != 0 and view["depth"][v, u] < z[0], "centre shows background or a farther object"
    assert checked >= 5


def test_opencv_and_blender_poses_and_intrinsics_agree(multi_dataset):
    for sample in sample_dirs(multi_dataset):
        sidecar, _ = load_sample(sample)
        for cam in sidecar["views"]:
            bl, cv = np.array(cam["cam_to_world_blender"]), np.array(cam["cam_to_world_opencv"])
            assert np.allclose(cv, bl @ BLENDER_TO_OPENCV)
            assert np.allclose(cv[:3, 3], cam["viewpoint_gqn"][:3])
            look = np.array(cam["look_at"]) - cv[:3, 3]
            assert np.allclose(cv[:3, 2], look / np.linalg.norm(look))  # OpenCV z is the viewing direction
            assert np.allclose(cam["K"], intrinsics(48, 48, cam["fov_deg"]))


def test_sidecar_records_how_the_sample_was_made(multi_dataset):
    sidecar, _ = load_sample(sample_dirs(multi_dataset)[0])
    for key in ("seed", "dataset_seed", "blender_version", "threads", "light", "resolution", "render_samples"):
        assert key in sidecar
    obj = sidecar["objects"][0]
    assert np.allclose(np.array(obj["rot_mat"]) @ np.array(obj["rot_mat"]).T, np.eye(3), atol=1e-9)
    for key, size in (("quaternion", 4), ("euler", 3), ("scale", 3), ("location", 3)):
        assert len(obj[key]) == size
    assert np.array(obj["bbox"]).shape == (2, 3)
    info = json.loads((multi_dataset / "dataset.json").read_text())
    assert info["config_hash"] and (multi_dataset / "operative_config.gin").read_text().count("rendering.") >= 3


def test_same_command_gives_identical_bytes_and_another_seed_another_scene(tmp_path):
    args = ["-g", "render_multi", *TINY, "--count", "3"]
    run_render(tmp_path / "a", "same", *args)
    run_render(tmp_path / "b", "same", *args)
    run_render(tmp_path / "c", "same", *args, "-p", "dataset.seed = 7")
    for sa, sb, sc in zip(sample_dirs(tmp_path / "a" / "same"), sample_dirs(tmp_path / "b" / "same"),
                          sample_dirs(tmp_path / "c" / "same"), strict=True):
        for name in ("sample.json", "view_00.exr"):
            assert (sa / name).read_bytes() == (sb / name).read_bytes(), f"{sa.name}/{name} differs between runs"
        a, c = json.loads((sa / "sample.json").read_text()), json.loads((sc / "sample.json").read_text())
        assert a["seed"] != c["seed"] and a["objects"] != c["objects"]


def test_rerun_skips_complete_samples_and_clears_debris_of_dead_processes(tmp_path):
    run_render(tmp_path, "resume", *TINY, "--count", "2")
    ds = tmp_path / "resume"
    before = {p.name: p.stat().st_mtime_ns for p in sample_dirs(ds)}
    shutil.rmtree(ds / "samples" / "000001")
    debris = ds / "samples" / f".tmp-999999999-{socket.gethostname()}~000001"  # core.publish's temp-name scheme
    debris.mkdir()
    (debris / "view_00.exr").write_bytes(b"half")
    run_render(tmp_path, "resume", *TINY, "--count", "3")
    after = {p.name: p.stat().st_mtime_ns for p in sample_dirs(ds)}
    assert sorted(after) == ["000000", "000001", "000002"]
    assert after["000000"] == before["000000"]
    assert not debris.exists()


def test_png_output_when_exr_is_off_is_byte_identical_across_runs(tmp_path):
    args = ["-p", "rendering.resolution = 24", "-p", "rendering.render_samples = 2", "--count", "1"]
    run_render(tmp_path / "a", "png", *args)
    run_render(tmp_path / "b", "png", *args)
    from skimage import io

    (sample,) = sample_dirs(tmp_path / "a" / "png")
    image = io.imread(sample / "view_00.png")
    assert image.shape == (24, 24, 3) and image.dtype == np.uint8 and image.std() > 3
    data = (sample / "view_00.png").read_bytes()
    # Cycles puts each frame's render time into tEXt chunks; they are dropped, so reruns give equal bytes
    assert b"tEXt" not in data and b"render_time" not in data
    assert data == (tmp_path / "b" / "png" / "samples" / sample.name / "view_00.png").read_bytes()


def test_two_processes_rendering_the_same_samples_publish_each_once(tmp_path):
    """Two renderers under one driver's dataset lock (core.lock hands it to the driver's children) draw and render
    the same samples; whichever renames second drops its copy (or finds the sample complete and skips it), so the
    folder ends with one copy of each sample, the bytes of a lone run. Without the driver's lock the second
    render.py is refused at once, naming the first."""
    import os
    import subprocess
    import sys

    from core.lock import DatasetLock
    from tests.render.helpers import REPO

    args = [*TINY, "-p", "rendering.resolution = 16", "--count", "3"]
    run_render(tmp_path / "alone", "ds", *args)
    cmd = [sys.executable, str(REPO / "render.py"), "--", "-d", "ds", "--data_dir", str(tmp_path / "both"), *args]
    with DatasetLock(tmp_path / "both" / "ds", "a test standing in for the driver") as lock:
        env = {**os.environ, **lock.child_env()}
        procs = [subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
                 for _ in range(2)]
        for proc in procs:
            _, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err.decode()[-2000:]
        refused = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
        assert refused.returncode == 2 and "being written by a test standing in for the driver" in refused.stderr
    both = tmp_path / "both" / "ds" / "samples"
    assert sorted(p.name for p in both.iterdir()) == ["000000", "000001", "000002"]  # no .tmp- debris either
    for sample in sample_dirs(tmp_path / "alone" / "ds"):
        for f in sample.iterdir():
            assert (both / sample.name / f.name).read_bytes() == f.read_bytes()
