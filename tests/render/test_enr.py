"""ENR sets rendered for real (bpy, real Sweet Home 3D chairs, tiny sizes): view counts, the camera convention
(render_params' angles rebuild the sidecar's pose), translation moving the object and not the camera, and a mesh
that fails to import."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from core import asset_index
from tests.render.helpers import load_sample, run_render, sample_dirs

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

FAST = ["-p", "rendering.resolution = 24", "-p", "rendering.render_samples = 1", "-p", "rendering.denoise = 'none'"]
#: docs/formats.md, "ENR's camera convention": ENR coordinates = F @ world coordinates (x_enr = -x, y_enr = z,
#: z_enr = -y), a reflection: ENR's frame is left-handed with y up.
F = np.array([[-1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
#: The default camera (azimuth = elevation = 0) in world axes, Blender's camera convention: columns right, up,
#: backwards. It stands at (-r, 0, 0) in ENR's frame, (r, 0, 0) in ours, looking at the origin, up = y_enr = z.
C0 = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def _rot_y(deg: float) -> np.ndarray:  # ENR's transforms3d.conversions.rotation_matrix_y, from its definition
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_z(deg: float) -> np.ndarray:  # ENR's rotation_matrix_z
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def enr_pose(azimuth_deg: float, elevation_deg: float, radius: float) -> np.ndarray:
    """The Blender camera-to-world matrix ENR's convention gives: camera = R_y(-azimuth) R_z(-elevation) applied
    to the default camera in ENR's frame, brought to world axes by F."""
    rotation = _rot_y(-azimuth_deg) @ _rot_z(-elevation_deg)
    pose = np.eye(4)
    pose[:3, :3] = F.T @ rotation @ F @ C0
    pose[:3, 3] = F.T @ rotation @ np.array([-radius, 0.0, 0.0])
    return pose


def _check_poses(sidecar: dict, radius: float) -> None:
    for view in sidecar["views"]:
        r = view["records"]
        stored = np.array(view["cam_to_world_blender"])
        np.testing.assert_allclose(stored, enr_pose(r["azimuth"], r["elevation"], radius), atol=1e-9)


def test_rotation_scenes_rebuild_the_stored_pose_and_share_one_view_count(tmp_path):
    run_render(tmp_path, "rot", "-g", "enr_rotation", *FAST, "-p", "enr_object.num_views = 8", "--count", "3")
    dataset = tmp_path / "rot"
    layout = json.loads((dataset / "dataset.json").read_text())["layout"]
    assert (layout["views"], layout["split"], layout["kind"]) == (8, "declared", "scene-major")
    assert layout["view_records"] == {"azimuth": [], "elevation": [], "offset": [3]}
    chairs = set()
    for sample in sample_dirs(dataset):
        sidecar, views = load_sample(sample)
        assert len(sidecar["views"]) == 8 and sidecar["split"] == "train"
        assert sidecar["objects"][0]["class"] == "chair"
        chairs.add(sidecar["objects"][0]["source"])
        _check_poses(sidecar, 2.0)
        for channels in views:
            hit = channels["instance"] > 0
            assert hit.any() and not hit.all()
            # white background (ENR's loader drops alpha without compositing): linear 1.0 where nothing was hit
            np.testing.assert_allclose(np.stack([channels[c][~hit] for c in "RGB"]), 1.0, atol=1e-3)
    assert len(chairs) == 3


def test_test_split_has_the_251_spiral_views_with_the_pole(tmp_path):
    run_render(tmp_path, "rot_test", "-g", "enr_rotation", *FAST, "-p", "rendering.resolution = 8",
               "-p", "enr_object.split = 'test'", "--count", "1")
    sidecar, _ = load_sample(sample_dirs(tmp_path / "rot_test")[0])
    assert len(sidecar["views"]) == 251 and sidecar["split"] == "test"
    assert sidecar["views"][-1]["records"]["elevation"] == pytest.approx(90.0)
    _check_poses(sidecar, 2.0)  # the pole too: its roll follows ENR's rotated camera, not a fallback up axis


def _backprojected(view: dict, channels: dict) -> np.ndarray:
    """World points of the pixels where the object was hit, from depth, K and the OpenCV pose."""
    K, pose = np.array(view["K"]), np.array(view["cam_to_world_opencv"])
    v, u = np.nonzero(channels["instance"] > 0)
    z = channels["depth"][v, u].astype(np.float64)
    rays = np.stack([(u + 0.5 - K[0, 2]) / K[0, 0], (v + 0.5 - K[1, 2]) / K[1, 1], np.ones_like(z)], 1)
    return (rays * z[:, None]) @ pose[:3, :3].T + pose[:3, 3]


@pytest.mark.parametrize("config", ["enr_translation", "enr_rototranslation"])
def test_translation_moves_the_object_not_the_camera(tmp_path, config):
    run_render(tmp_path, "tr", "-g", config, *FAST, "-p", "rendering.resolution = 48",
               "-p", "enr_object.num_views = 6", "-p", "enr_object.max_offset = 0.3", "--count", "1")
    sidecar, views = load_sample(sample_dirs(tmp_path / "tr")[0])
    obj = sidecar["objects"][0]
    assert obj["location"] == [0.0, 0.0, 0.0]
    half = 0.5 * np.array(obj["scale"]) * (np.array(obj["bbox"][1]) - np.array(obj["bbox"][0]))
    poses = [np.array(v["cam_to_world_blender"]) for v in sidecar["views"]]
    if config == "enr_translation":
        assert all(np.array_equal(p, poses[0]) for p in poses)  # one camera
    _check_poses(sidecar, 2.6)
    outside = []
    for view, channels in zip(sidecar["views"], views, strict=True):
        offset = np.array(view["records"]["offset"])
        assert view["object_offset"] == offset.tolist()
        points = _backprojected(view, channels)
        # every surface point seen lies in the object's box moved by this view's offset (a pixel's footprint of
        # slack: the depth and id of a pixel come from a sample anywhere in its filter), not in the unmoved box
        slack = 0.06
        assert np.all(np.abs(points - offset) <= half + slack)
        outside.extend(np.any(np.abs(points) > half + slack, axis=1))
    assert np.mean(outside) > 0.2


def _index_with_a_broken_chair(cache: Path) -> Path:
    """CACHE_DIR holding an index of source folder-bad: a broken OFF mesh (first by id) and two real chairs."""
    chairs = asset_index.load_index().meshes(source="sweethome3d", classes="chair")[:2]
    broken = cache / "broken" / "a_broken.off"
    broken.parent.mkdir(parents=True)
    broken.write_text("OFF\n8 12 0\n0 0 0\n1 0 0\n")  # promises 8 vertices, holds 2
    meshes = [asset_index.MeshAsset(id="folder-bad/a_broken", source="folder-bad", class_name="chair",
                                    raw_category="bad", name="broken", path=broken, format="off", licence="CC0-1.0")]
    meshes += [asset_index.MeshAsset(id=f"folder-bad/b_{k}", source="folder-bad", class_name="chair",
                                     raw_category="bad", name=c.name, path=c.path, format=c.format,
                                     licence=c.licence) for k, c in enumerate(chairs)]
    (cache / asset_index.INDEX_NAME).write_text(json.dumps(
        {"format_version": asset_index.FORMAT_VERSION, "meshes": [m.to_json() for m in meshes]}))
    return broken


def test_a_mesh_that_fails_to_import_is_skipped_or_fails_as_configured(tmp_path):
    cache = tmp_path / "cache"
    broken = _index_with_a_broken_chair(cache)
    args = ["-g", "enr_rotation", *FAST, "-p", "enr_object.num_views = 2", "-p", "enr_object.source = 'folder-bad'",
            "-p", "enr_object.val_fraction = 0.0", "-p", "enr_object.test_fraction = 0.0"]
    env = {"CACHE_DIR": str(cache)}
    proc = run_render(tmp_path, "redraw", *args, "--count", "2", env=env)
    assert str(broken) in proc.stderr  # reported with its path
    first, second = (load_sample(s)[0] for s in sample_dirs(tmp_path / "redraw"))
    assert first["skipped_meshes"][0]["mesh"] == str(broken) and "a_broken.off" in first["skipped_meshes"][0]["error"]
    assert first["objects"][0]["source"] != str(broken)
    assert "skipped_meshes" not in second  # sample 1 shows the second chair: nothing to skip

    proc = run_render(tmp_path, "fail", *args, "-p", "batch.bad_mesh = 'fail'", "--count", "1", env=env, check=False)
    assert proc.returncode != 0 and "a_broken.off" in proc.stderr
    assert not (tmp_path / "fail").exists() or not sample_dirs(tmp_path / "fail")  # never written half
