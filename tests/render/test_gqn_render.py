"""Real renders of the GQN generators: stored viewpoints, poses, depth and instance ids agree in every view."""

import math

import numpy as np
import pytest

from core.camera import project, yaw_pitch
from tests.render.helpers import load_sample, run_render, sample_dirs

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

RES = 32
#: Tiny, but the shipped configs otherwise (1 sample + Cycles' OIDN, labels from the same render). The torus is left out:
#: its centroid lies in its hole, so it is not a point on the object.
ROOM_ARGS = ["-p", f"rendering.resolution = {RES}", "-p", "gqn_rooms.num_views = 5",
             "-p", "gqn_rooms.shapes = ('cube', 'sphere', 'cylinder', 'cone')", "-p", "gqn_rooms.min_objects = 2"]


@pytest.fixture(scope="module")
def rooms(tmp_path_factory):
    data = tmp_path_factory.mktemp("gqn")
    run_render(data, "ring", "-g", "gqn_rooms_ring_camera", *ROOM_ARGS, "--count", "2")
    run_render(data, "free", "-g", "gqn_rooms_free_camera", *ROOM_ARGS, "--count", "1")
    run_render(data, "sm", "-g", "gqn_shepard_metzler_5_parts", "-p", f"rendering.resolution = {RES}",
               "-p", "gqn_shepard_metzler.num_views = 5", "--count", "1")
    return data


def _samples(rooms):
    for name in ("ring", "free", "sm"):
        for sample in sample_dirs(rooms / name):
            yield name, *load_sample(sample)


def test_stored_viewpoint_is_the_direction_from_camera_to_look_at_and_the_optical_axis(rooms):
    for _, sidecar, _ in _samples(rooms):
        for view in sidecar["views"]:
            c2w = np.array(view["cam_to_world_blender"])
            location, look_at = c2w[:3, 3], np.array(view["look_at"])
            yaw, pitch = yaw_pitch(look_at - location)
            x, y, z, sy, cy, sp, cp = view["viewpoint_gqn"]
            assert np.allclose([x, y, z], location)
            assert np.allclose([sy, cy, sp, cp], [math.sin(yaw), math.cos(yaw), math.sin(pitch), math.cos(pitch)])
            assert np.allclose(view["viewpoint_xyzyp"], [*location, yaw, pitch])
            axis = -c2w[:3, 2]  # Blender cameras look down their local -z
            assert np.allclose(axis, [cp * cy, cp * sy, sp], atol=1e-6)
            assert np.allclose(np.array(view["cam_to_world_opencv"])[:3, 2], axis)


def test_every_view_shows_one_shared_scene(rooms):
    for name, sidecar, views in _samples(rooms):
        ids = {o["instance_id"] for o in sidecar["objects"]}
        seen = [set(np.unique(v["instance"]).tolist()) - {0} for v in views]
        for s in seen:
            assert s and s <= ids
        things = {o["instance_id"] for o in sidecar["objects"] if o["class"] not in ("floor", "wall")}
        per_object = {i: sum(i in s for s in seen) for i in things}
        if name in ("ring", "sm"):  # objects in the middle of the views: most views see each of them
            assert all(n >= len(views) // 2 for n in per_object.values()), per_object
        classes = {o["instance_id"]: o["class_index"] + 1 for o in sidecar["objects"]}
        for view in views:
            for i in set(np.unique(view["instance"]).tolist()) - {0}:
                assert (view["semantic"][view["instance"] == i] == classes[i]).all()
        if name != "sm":
            floor = next(o["instance_id"] for o in sidecar["objects"] if o["class"] == "floor")
            assert all(floor in s for s in seen)


def test_object_centroids_project_onto_their_own_instance_where_visible(rooms):
    """A centroid lies inside its object, so the ray through its pixel hits something before it: the object itself
    (then at most its bounding radius nearer) or an occluder. With a right pose, most centroids hit their own id."""
    own, total = 0, 0
    for name, sidecar, views in _samples(rooms):
        for cam, view in zip(sidecar["views"], views, strict=True):
            K, c2w = np.array(cam["K"]), np.array(cam["cam_to_world_opencv"])
            for obj in sidecar["objects"]:
                if obj["class"] in ("floor", "wall"):
                    continue
                uv, z = project(np.array([obj["centroid"]]), K, c2w)
                u, v = (int(math.floor(c)) for c in uv[0])
                if not (z[0] > 0 and 1 <= u < RES - 1 and 1 <= v < RES - 1):
                    continue
                radius = 0.5 * np.linalg.norm(np.subtract(*obj["bbox"])) * max(obj["scale"])
                depth = view["depth"][v, u]
                assert depth < z[0], f"{name}: nothing hit in front of {obj['name']}'s centroid"
                total += 1
                if view["instance"][v, u] == obj["instance_id"]:
                    assert depth >= z[0] - radius - 1e-3, (name, obj["name"])
                    own += 1
    assert total >= 20 and own >= 0.6 * total, (own, total)


def test_floor_points_project_onto_the_floor_where_visible(rooms):
    checked = 0
    for name, sidecar, views in _samples(rooms):
        if name == "sm":
            continue
        grid = np.array([(x, y, 0.0) for x in np.linspace(-2.5, 2.5, 11) for y in np.linspace(-2.5, 2.5, 11)
                         if all(math.dist((x, y), o["location"][:2]) > 0.75 * max(o["scale"]) + 0.1
                                for o in sidecar["objects"] if o["class"] not in ("floor", "wall"))])
        floor = next(o["instance_id"] for o in sidecar["objects"] if o["class"] == "floor")
        for cam, view in zip(sidecar["views"], views, strict=True):
            uv, z = project(grid, np.array(cam["K"]), np.array(cam["cam_to_world_opencv"]))
            for (u, v), depth in zip(np.floor(uv).astype(int), z, strict=True):
                if not (depth > 0 and 1 <= u < RES - 1 and 1 <= v < RES - 1):
                    continue
                around = view["depth"][v - 1:v + 2, u - 1:u + 2]
                if np.all(np.abs(around - depth) < 0.08 * depth):  # the floor is what this pixel's rays hit
                    assert view["instance"][v, u] == floor
                    checked += 1
                elif view["depth"][v, u] > 1.5 * depth:  # far beyond the floor point: a hole in the floor
                    raise AssertionError(f"{name}: rays pass through the floor at ({u}, {v})")
    assert checked >= 20


def test_objects_rest_on_the_floor_per_the_sidecar(rooms):
    for name, sidecar, _ in _samples(rooms):
        if name == "sm":
            continue
        for obj in sidecar["objects"]:
            if obj["class"] in ("floor", "wall"):
                continue
            bottom = obj["location"][2] + obj["bbox"][0][2] * obj["scale"][2]  # turned about z only
            assert bottom == pytest.approx(0.0, abs=1e-6), obj["name"]


def test_a_sample_renders_the_same_bytes_alone_as_after_other_samples(tmp_path):
    """Cycles keeps its session between the views of a sample; a new sample must start from a fresh one, or a
    retried sample (on a fresh worker) would differ from the one an uninterrupted run renders. Shepard-Metzler
    scenes show it: with the session carried over, some of their views differ."""
    args = ["-g", "gqn_shepard_metzler_7_parts", "-p", f"rendering.resolution = {RES}"]
    run_render(tmp_path, "after", *args, "--count", "3")
    run_render(tmp_path, "alone", *args, "--start", "2", "--count", "1")
    after, alone = (tmp_path / name / "samples" / "000002" for name in ("after", "alone"))
    names = sorted(p.name for p in after.glob("view_*.exr"))
    assert len(names) == 15 and names == sorted(p.name for p in alone.glob("view_*.exr"))
    for name in names:
        assert (after / name).read_bytes() == (alone / name).read_bytes(), name


def test_cycles_denoiser_brings_one_sample_close_to_many_and_leaves_the_labels(rooms, tmp_path):
    for name, samples in (("noisy", 1), ("reference", 64)):
        run_render(tmp_path, name, "-g", "gqn_rooms_ring_camera", *ROOM_ARGS, "-p", "rendering.denoise = 'none'",
                   "-p", f"rendering.render_samples = {samples}", "--count", "1")

    def rgb(dataset):
        _, views = load_sample(sample_dirs(dataset)[0])
        return np.stack([np.stack([v["R"], v["G"], v["B"]], -1) for v in views]), views

    denoised, labelled = rgb(rooms / "ring")
    noisy, noisy_views = rgb(tmp_path / "noisy")
    reference, _ = rgb(tmp_path / "reference")
    error_denoised = np.mean((np.clip(denoised, 0, 1) - np.clip(reference, 0, 1)) ** 2)
    error_noisy = np.mean((np.clip(noisy, 0, 1) - np.clip(reference, 0, 1)) ** 2)
    assert error_denoised < 0.5 * error_noisy, (error_denoised, error_noisy)
    for a, b in zip(labelled, noisy_views, strict=True):  # the same single sample gives the labels either way
        assert np.array_equal(a["instance"], b["instance"]) and np.array_equal(a["depth"], b["depth"])
