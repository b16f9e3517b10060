"""Fixture maker: tiny raw render output (docs/formats.md §1) without Blender.

Each sample is a few spheres resting on z = 0 seen by pinhole cameras; every view is ray-cast exactly, so the
EXR's depth, instance and semantic channels agree with the sidecar's objects, K and camera poses (the object
centroids project inside the image). Tests and benchmarks use it to make datasets of any size in milliseconds:

    from tests.fixtures_raw import make_raw_dataset
    dataset_dir = make_raw_dataset(tmp_path, "toy", n_samples=6, n_views=1)

and the ``plant_*`` / ``corrupt_*`` helpers to plant defects.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from core import camera
from core.camera import sphere_angles
from pipeline.formats.exr import read_view_exr, write_view_exr
from pipeline.formats.png import encode_png8, linear_to_srgb8

CLASSES = ["ball", "bowl", "apple"]
CLASS_COLOURS = np.array([[0.8, 0.1, 0.1], [0.1, 0.7, 0.2], [0.15, 0.25, 1.2]], np.float32)  # linear; >1 clips
BACKGROUND = np.array([0.05, 0.05, 0.06], np.float32)
FOV_DEG = 50.0


def intrinsics(width: int, height: int, fov_deg: float = FOV_DEG) -> np.ndarray:
    """Pinhole K with a horizontal field of view ``fov_deg``; principal point at the image centre."""
    return camera.intrinsics(width, height, fov_deg)


def ray_cast(objects: list[dict], k: np.ndarray, c2w: np.ndarray, width: int, height: int) -> dict[str, np.ndarray]:
    """Renders spheres (``location``, radius = ``scale[0]``) exactly: colour, planar depth, ids, normals."""
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    d_cam = np.stack([(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], np.ones_like(u)], axis=-1)
    d = d_cam @ c2w[:3, :3].T  # world direction with unit planar depth
    o = c2w[:3, 3]
    depth = np.full((height, width), np.inf)
    inst = np.zeros((height, width), np.uint32)
    sem = np.zeros((height, width), np.uint32)
    normal = np.zeros((height, width, 3))
    for obj in objects:
        c, r = np.asarray(obj["location"]), obj["scale"][0]
        oc = o - c
        a = np.einsum("hwc,hwc->hw", d, d)
        b = 2.0 * d @ oc
        disc = b * b - 4 * a * (oc @ oc - r * r)
        t = np.where(disc >= 0, (-b - np.sqrt(np.maximum(disc, 0))) / (2 * a), np.inf)
        hit = (disc >= 0) & (t > 0) & (t < depth)
        depth[hit] = t[hit]
        inst[hit] = obj["instance_id"]
        sem[hit] = obj["class_index"] + 1
        p = o + d * t[..., None]
        normal[hit] = ((p - c) / r)[hit]
    light = np.array([0.4, -0.3, 0.85]) / np.linalg.norm([0.4, -0.3, 0.85])
    shade = 0.25 + 0.75 * np.clip(normal @ light, 0, None)
    rgb = np.where(
        (inst > 0)[..., None],
        CLASS_COLOURS[np.maximum(sem.astype(int) - 1, 0)] * shade[..., None],
        BACKGROUND,
    )
    return {"rgb": rgb.astype(np.float32), "depth": depth.astype(np.float32), "instance": inst,
            "semantic": sem, "normal": normal.astype(np.float32)}


def _view_record(file: str, k: np.ndarray, c2w_cv: np.ndarray, target: np.ndarray) -> dict:
    pos = c2w_cv[:3, 3]
    return {
        "file": file,
        "K": k.tolist(),
        "cam_to_world_blender": (c2w_cv @ camera.BLENDER_TO_OPENCV).tolist(),
        "cam_to_world_opencv": c2w_cv.tolist(),
        "look_at": target.tolist(),
        "viewpoint_gqn": camera.gqn_viewpoint(pos, target),
        "viewpoint_xyzyp": camera.xyzyp_viewpoint(pos, target),
    }


def make_sample(
    sample_dir: Path, index: int, dataset_seed: int, n_views: int, resolution: tuple[int, int], exr: bool = True,
    records: bool = False, split: str | None = None,
) -> dict:
    """Writes one sample folder (sidecar + views); returns the sidecar.

    With `records`, each view records its camera's `azimuth`, `elevation` (degrees) and `radius` around the
    look-at point and the sample its key light's `light_offset` (3,); `split` is written as the sample's "split".
    """
    rng = np.random.default_rng([dataset_seed, index])
    width, height = resolution
    objects = []
    for i in range(int(rng.integers(1, 4))):
        radius = float(rng.uniform(0.2, 0.35))
        angle = 2 * math.pi * i / 3 + rng.uniform(-0.4, 0.4)
        loc = [0.45 * math.cos(angle), 0.45 * math.sin(angle), radius]
        cls = int(rng.integers(len(CLASSES)))
        objects.append({
            "instance_id": i + 1, "name": f"{CLASSES[cls]}_{i}", "class": CLASSES[cls], "class_index": cls,
            "source": "tests/fixtures_raw.py", "rot_mat": np.eye(3).tolist(), "quaternion": [1.0, 0.0, 0.0, 0.0],
            "euler": [0.0, 0.0, 0.0], "bbox": [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0]], "scale": [radius] * 3,
            "location": loc, "centroid": loc,
        })
    target = np.array([0.0, 0.0, 0.2])
    k = intrinsics(width, height)
    yaw0 = float(rng.uniform(0, 2 * math.pi))
    views = []
    sample_dir.mkdir(parents=True, exist_ok=True)
    for v in range(n_views):
        yaw = yaw0 + 2 * math.pi * v / n_views
        pos = np.array([2.6 * math.cos(yaw), 2.6 * math.sin(yaw), 1.3 + 0.3 * (v % 2)])
        c2w = camera.blender_to_opencv(camera.look_at(pos, target))
        img = ray_cast(objects, k, c2w, width, height)
        name = f"view_{v:02d}.{'exr' if exr else 'png'}"
        if exr:
            write_view_exr(sample_dir / name, img["rgb"], img["depth"], img["instance"], img["semantic"],
                           img["normal"])
        else:
            (sample_dir / name).write_bytes(encode_png8(linear_to_srgb8(img["rgb"])))
        views.append(_view_record(name, k, c2w, target))
        if records:
            az, el, radius = sphere_angles(pos, target)
            views[-1]["records"] = {"azimuth": math.degrees(az), "elevation": math.degrees(el), "radius": radius}
    sidecar = {
        "format_version": 1, "dataset": sample_dir.parent.parent.name, "index": index,
        "dataset_seed": dataset_seed, "seed": int(rng.integers(2**31)),
        "generator": "fixture_spheres", "blender_version": "none", "threads": 1, "engine": "CYCLES",
        "render_samples": 1, "resolution": [width, height], "classes": CLASSES, "objects": objects,
        "light": [3.0, -2.0, 5.0], "lights": [{"type": "POINT", "location": [3.0, -2.0, 5.0], "energy": 500.0,
                                               "color": [1.0, 1.0, 1.0]}],
        "views": views,
    }
    if records:
        sidecar["records"] = {"light_offset": [3.0, -2.0, 5.0 - 0.1 * index]}
    if split is not None:
        sidecar["split"] = split
    (sample_dir / "sample.json").write_text(json.dumps(sidecar, indent=1))
    return sidecar


def fixture_layout(n_views: int, exr: bool = True, records: bool = False, splits: bool = False) -> dict:
    """The layout declaration (core.layout) the render side writes for a fixture dataset of these options."""
    return {
        "kind": "scene-major" if n_views > 1 else "sample-major",
        "views": n_views,
        "image_format": "exr" if exr else "png",
        "channels": ["rgb", "depth", "instance", "semantic", "normal"] if exr else ["rgb"],
        "view_records": {"azimuth": [], "elevation": [], "radius": []} if records else {},
        "sample_records": {"light_offset": [3]} if records else {},
        "split": "declared" if splits else "index % 12",
    }


def make_raw_dataset(
    data_dir: Path,
    name: str,
    n_samples: int,
    n_views: int = 1,
    resolution: tuple[int, int] = (16, 12),
    seed: int = 7,
    exr: bool = True,
    manifest: bool = False,
    legacy: bool = False,
    records: bool = False,
    splits: dict[int, str] | None = None,
) -> Path:
    """Writes ``data_dir/name`` as ``render.py`` would (dataset.json + samples/XXXXXX/); returns that folder.

    Args:
        legacy: write dataset.json as before layouts were declared (format_version 1, no "layout").
        records: per-view and per-sample records (see :func:`make_sample`), declared in the layout.
        splits: sample index -> declared split; the layout then declares split "declared" (every sample needs one).
    """
    dataset_dir = Path(data_dir) / name
    (dataset_dir / "samples").mkdir(parents=True, exist_ok=True)
    meta = {
        "format_version": 1 if legacy else 2, "generator": "fixture_spheres", "seed": seed, "config_hash": "0" * 64,
        "blender_version": "none", "threads": 1,
    }
    if not legacy:
        meta["layout"] = fixture_layout(n_views, exr, records, splits is not None)
    (dataset_dir / "dataset.json").write_text(json.dumps(meta))
    for index in range(n_samples):
        make_sample(dataset_dir / "samples" / f"{index:06d}", index, seed, n_views, resolution, exr, records,
                    None if splits is None else splits.get(index))
    if manifest:
        (dataset_dir / "manifest.jsonl").write_text(json.dumps({"shard": 0, "samples": list(range(n_samples))}) + "\n")
    return dataset_dir


def view_path(dataset_dir: Path, index: int, view: int = 0) -> Path:
    """The EXR of ``view`` of sample ``index``."""
    return Path(dataset_dir) / "samples" / f"{index:06d}" / f"view_{view:02d}.exr"


def corrupt_exr(path: Path) -> None:
    """Truncates an EXR so that its pixel data can no longer be read."""
    data = Path(path).read_bytes()
    Path(path).write_bytes(data[: len(data) // 2])


def _rewrite(path: Path, **changes: np.ndarray) -> None:
    view = read_view_exr(path)
    arrays = {"rgb": view.rgb, "depth": view.depth, "instance": view.instance, "semantic": view.semantic,
              "normal": view.normal}
    arrays.update(changes)
    write_view_exr(path, **arrays)


def plant_empty_view(path: Path) -> None:
    """Rewrites a view EXR as if the camera saw nothing: background colour, no ids, infinite depth."""
    view = read_view_exr(path)
    h, w = view.shape
    _rewrite(path, rgb=np.broadcast_to(BACKGROUND, (h, w, 3)).copy(), depth=np.full((h, w), np.inf, np.float32),
             instance=np.zeros((h, w), np.uint32), semantic=np.zeros((h, w), np.uint32),
             normal=np.zeros((h, w, 3), np.float32))


def plant_nan_depth(path: Path) -> None:
    """Sets the depth of one hit pixel of a view EXR to NaN."""
    view = read_view_exr(path)
    depth = view.depth.copy()
    ys, xs = np.nonzero(view.instance)
    depth[ys[len(ys) // 2], xs[len(xs) // 2]] = np.nan
    _rewrite(path, depth=depth)
