"""The scene-file writer (pipeline/layouts/scene_file.py): arrays in, §3 rows out, no sidecars involved."""

from __future__ import annotations

import json
import math

import h5py
import numpy as np
import pytest

from core.camera import blender_to_opencv, gqn_viewpoint, intrinsics, look_at, on_sphere, xyzyp_viewpoint
from pipeline.layouts.scene_file import (
    SceneFileError,
    SceneFileWriter,
    SceneSpec,
    deflate_chunk,
    encode_scene,
)

V, H, W = 3, 6, 5


def cameras(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """K (V, 3, 3), OpenCV cam_to_world (V, 4, 4) of cameras on a sphere looking at a centre, and the centre."""
    centre = rng.normal(size=3)
    poses = [blender_to_opencv(look_at(on_sphere(centre, 2.0, 2 * math.pi * v / V, 0.3), centre))
             for v in range(V)]
    return np.stack([intrinsics(W, H, 50.0)] * V), np.stack(poses), np.stack([centre] * V)


def scene(rng: np.random.Generator) -> dict:
    k, c2w, centre = cameras(rng)
    return {
        "images": rng.integers(0, 256, (V, H, W, 3), dtype=np.uint8),
        "K": k, "cam_to_world": c2w, "look_at": centre,
        "channels": {
            "depth": rng.integers(0, 65536, (V, H, W), dtype=np.uint16),
            "instance": rng.integers(0, 4, (V, H, W), dtype=np.uint8),
            "semantic": rng.integers(0, 4, (V, H, W), dtype=np.uint8),
            "mask": (rng.random((V, H, W)) > 0.5).astype(np.uint8) * 255,
            "normal": rng.normal(size=(V, H, W, 3)).astype(np.float16),
            "albedo": rng.integers(0, 256, (V, H, W, 3), dtype=np.uint8),
        },
        "view_records": {"azimuth": rng.normal(size=V), "offset": rng.normal(size=(V, 3))},
        "sample_records": {"light": rng.normal(size=3)},
        "scene_arrays": {"voxels": rng.integers(0, 2, (4, 4, 4), dtype=np.uint8)},
    }


SPEC = SceneSpec(views=V, height=H, width=W, channels=("depth", "instance", "semantic", "mask", "normal", "albedo"),
                 view_records={"azimuth": (), "offset": (3,)}, sample_records={"light": (3,)},
                 scene_arrays={"voxels": ((4, 4, 4), "uint8")})


def test_round_trip_every_field_and_derived_viewpoints(tmp_path):
    rng = np.random.default_rng(0)
    scenes = [scene(rng) for _ in range(3)]
    path = tmp_path / "scenes_train.h5"
    with SceneFileWriter(path, SPEC, attrs={"split": "train"}) as writer:
        for i, s in enumerate(scenes):
            writer.add(10 + i, s["images"], s["K"], s["cam_to_world"], look_at=s["look_at"], channels=s["channels"],
                       view_records=s["view_records"], sample_records=s["sample_records"],
                       scene_arrays=s["scene_arrays"])
        writer.publish()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    with h5py.File(path, "r") as fh:
        assert json.loads(fh.attrs["fields"]) == sorted(fh) == SPEC.fields
        assert fh.attrs["views"] == V and fh.attrs["split"] == "train" and fh.attrs["layout"] == "scene-major"
        assert fh["scene_index"][:].tolist() == [10, 11, 12]
        assert fh["normal"].dtype == np.float16 and fh["normal"].shape == (3, V, H, W, 3)
        assert fh["azimuth"].shape == (3, V) and fh["offset"].shape == (3, V, 3) and fh["light"].shape == (3, 3)
        assert fh["voxels"].shape == (3, 4, 4, 4) and fh["voxels"].chunks == (1, 4, 4, 4)
        for i, s in enumerate(scenes):
            assert np.array_equal(fh["images"][i], s["images"])
            for name, arr in {**s["channels"], **s["scene_arrays"]}.items():
                assert np.array_equal(fh[name][i], arr), name
            for name, arr in {**s["view_records"], **s["sample_records"]}.items():
                assert np.allclose(fh[name][i], arr), name
            for v in range(V):
                position = s["cam_to_world"][v, :3, 3]
                assert np.allclose(fh["viewpoints"][i, v], gqn_viewpoint(position, s["look_at"][v]), atol=1e-6)
                assert np.allclose(fh["viewpoints_xyzyp"][i, v], xyzyp_viewpoint(position, s["look_at"][v]),
                                   atol=1e-6)


def test_viewpoints_without_look_at_follow_the_optical_axis():
    rng = np.random.default_rng(1)
    s = scene(rng)
    with_target = encode_scene(SceneSpec(views=V, height=H, width=W), 0, s["images"], s["K"], s["cam_to_world"],
                               look_at=s["look_at"])
    without = encode_scene(SceneSpec(views=V, height=H, width=W), 0, s["images"], s["K"], s["cam_to_world"])
    assert np.allclose(with_target.rows["viewpoints"], without.rows["viewpoints"], atol=1e-6)


def test_direct_chunks_are_the_gzip_filters_bytes(tmp_path):
    rng = np.random.default_rng(2)
    images = (rng.integers(0, 8, (2, V, H, W, 3)) * 30).astype(np.uint8)
    with h5py.File(tmp_path / "filter.h5", "w") as fh:
        fh.create_dataset("images", data=images, chunks=(1, V, H, W, 3), compression="gzip", compression_opts=1)
    with h5py.File(tmp_path / "filter.h5", "r") as fh:
        for i in range(2):
            assert fh["images"].id.read_direct_chunk((i, 0, 0, 0, 0)) == (0, deflate_chunk(images[i])[0])


def test_arrays_that_do_not_fit_name_themselves(tmp_path):
    rng = np.random.default_rng(3)
    s = scene(rng)
    spec = SceneSpec(views=V, height=H, width=W, channels=("depth",))
    with pytest.raises(SceneFileError, match=r"channels given \[\], the file's spec has \['depth'\]"):
        encode_scene(spec, 0, s["images"], s["K"], s["cam_to_world"])
    with pytest.raises(SceneFileError, match="depth is int64, the file stores uint16"):
        encode_scene(spec, 0, s["images"], s["K"], s["cam_to_world"], channels={"depth": np.zeros((V, H, W), int)})
    with pytest.raises(SceneFileError, match=r"images has shape \(3, 6, 5\)"):
        encode_scene(spec, 0, s["images"][..., 0], s["K"], s["cam_to_world"], channels={"depth": s["channels"]["depth"]})
    with pytest.raises(SceneFileError, match="names \\['K'\\] twice"):
        SceneSpec(views=V, height=H, width=W, sample_records={"K": ()})
    with pytest.raises(SceneFileError, match="not among"):
        SceneSpec(views=V, height=H, width=W, channels=("colour",))


def test_unpublished_writer_leaves_nothing(tmp_path):
    rng = np.random.default_rng(4)
    s = scene(rng)
    with pytest.raises(RuntimeError), SceneFileWriter(tmp_path / "x.h5", SceneSpec(views=V, height=H, width=W)) as w:
        w.add(0, s["images"], s["K"], s["cam_to_world"])
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []
