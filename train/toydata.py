"""Synthetic toy scenes in the scene-major HDF5 layout, for tests, benchmarks and smoke runs.

NOT a rendering: a cheap numpy painter of a "room" seen from a camera on a ring around its centre. Each scene has
four wall colours, a floor colour and a centre ball lit from one side. What a view shows depends on the viewpoint
(which wall is behind the ball, where the horizon is, which side of the ball is lit), so a model has something to
learn from context views. Files follow docs/formats.md section 3 (only the datasets the trainer reads plus
`viewpoints_xyzyp` and `scene_index`).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import h5py
import numpy as np
from core.camera import VIEWPOINT_ORDER, blender_to_opencv, direction, look_at
from core.publish import Staged
from core.sphere_paths import archimedean_spiral

logger = logging.getLogger(__name__)

_FOV = np.pi / 2  # horizontal field of view of the toy camera


def _paint(rng_scene: dict, yaw: float, pitch: float, radius: float, size: int) -> np.ndarray:
    """One view: uint8 (size, size, 3)."""
    focal = (size / 2) / np.tan(_FOV / 2)
    u = (np.arange(size) + 0.5) - size / 2
    ray_yaw = yaw - np.arctan2(u, focal)  # image x to the right turns the ray clockwise
    wall = np.floor(np.mod(ray_yaw, 2 * np.pi) / (np.pi / 2)).astype(int) % 4
    walls = rng_scene["walls"][wall]  # (W, 3)
    shade = 0.75 + 0.25 * np.cos(np.mod(ray_yaw, np.pi / 2) - np.pi / 4)[:, None]
    v = (np.arange(size) + 0.5) - size / 2
    elevation = np.arctan2(-v, focal) + pitch  # elevation of each row's ray
    img = np.where((elevation > 0)[:, None, None], (walls * shade)[None], rng_scene["floor"][None, None])
    # The ball sits at the look-at point; its apparent radius shrinks with distance; lit from `light` yaw.
    yy, xx = np.meshgrid(v, u, indexing="ij")
    ball_r = focal * rng_scene["ball_size"] / radius
    inside = xx**2 + yy**2 < ball_r**2
    nx = np.clip(xx / ball_r, -1, 1)
    side = np.cos(yaw + np.pi / 2 - rng_scene["light"])  # which side of the ball faces the light
    lit = np.clip(0.55 + 0.45 * (nx * side + 0.3), 0.15, 1.0)
    img = np.where(inside[..., None], rng_scene["ball"][None, None] * lit[..., None], img)
    return np.clip(np.round(img * 255), 0, 255).astype(np.uint8)


def make_scene_file(
    path: str | os.PathLike,
    num_scenes: int = 16,
    num_views: int = 6,
    size: int = 32,
    seed: int = 0,
    first_index: int = 0,
) -> Path:
    """Write a toy scene-major file (atomically).

    Args:
        path: output `scenes_{split}.h5`.
        num_scenes, num_views, size: S, V and H = W of `images` (S, V, H, W, 3) uint8.
        seed: dataset seed; scene i is drawn from (seed, first_index + i).
        first_index: `scene_index` of the first row.
    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = np.zeros((num_scenes, num_views, size, size, 3), np.uint8)
    viewpoints = np.zeros((num_scenes, num_views, 7), np.float32)
    xyzyp = np.zeros((num_scenes, num_views, 5), np.float32)
    for i in range(num_scenes):
        rng = np.random.default_rng([seed, first_index + i])
        scene = {
            "walls": rng.uniform(0.1, 0.95, (4, 3)),
            "floor": rng.uniform(0.1, 0.6, 3),
            "ball": rng.uniform(0.3, 1.0, 3),
            "ball_size": rng.uniform(0.6, 1.0),
            "light": rng.uniform(0, 2 * np.pi),
        }
        radius = rng.uniform(2.0, 3.0)
        height = rng.uniform(0.1, 0.6)
        for j in range(num_views):
            theta = rng.uniform(0, 2 * np.pi)
            pos = np.array([radius * np.cos(theta), radius * np.sin(theta), height])
            d = -pos / np.linalg.norm(pos)
            yaw, pitch = float(np.arctan2(d[1], d[0])), float(np.arcsin(d[2]))
            images[i, j] = _paint(scene, yaw, pitch, float(np.linalg.norm(pos)), size)
            viewpoints[i, j] = [*pos, np.sin(yaw), np.cos(yaw), np.sin(pitch), np.cos(pitch)]
            xyzyp[i, j] = [*pos, yaw, pitch]
    with Staged(path) as staged, h5py.File(staged.path, "w") as f:
        f.create_dataset("images", data=images, chunks=(1, num_views, size, size, 3), compression="gzip",
                         compression_opts=1)
        f.create_dataset("viewpoints", data=viewpoints)
        f.create_dataset("viewpoints_xyzyp", data=xyzyp)
        f.create_dataset("scene_index", data=np.arange(first_index, first_index + num_scenes, dtype=np.int64))
        f.attrs["layout"] = "scene-major"
        f.attrs["format_version"] = 1
        f.attrs["views"] = num_views
        f.attrs["viewpoint_order"] = VIEWPOINT_ORDER
        f.attrs["generator"] = "train.toydata (synthetic toy scenes, not a rendering)"
    return path


def make_toy_dataset(
    folder: str | os.PathLike, num_train: int = 64, num_val: int = 8, num_test: int = 8, num_views: int = 6,
    size: int = 32, seed: int = 0,
) -> Path:
    """Write `scenes_train.h5`, `scenes_val.h5` and `scenes_test.h5` of toy scenes into `folder`."""
    folder = Path(folder)
    counts = {"train": num_train, "val": num_val, "test": num_test}
    first = 0
    for split, n in counts.items():
        if n:
            make_scene_file(folder / f"scenes_{split}.h5", n, num_views, size, seed, first_index=first)
        first += n
    logger.info("wrote toy dataset %s (%s)", folder, counts)
    return folder


# --- posed objects (ENR / RenderNet fields) -------------------------------------------------------------------

#: Per-view and per-scene datasets that `make_object_scene_file` writes beside `images` and `viewpoints`.
OBJECT_FIELDS = ("K", "cam_to_world", "depth", "normal", "albedo", "mask", "azimuth", "elevation", "radius", "offset",
                 "light_azimuth", "light_elevation", "voxels")
_BACKGROUND = 1.0  # plain white background, as ENR's and RenderNet's renders
_AMBIENT, _DIFFUSE = 0.1, 0.9  # RenderNet's Phong weights (white light)


def _object_scene(rng: np.random.Generator) -> list[dict]:
    """2-3 shapes (spheres and axis-aligned boxes) of distinct colours inside the unit cube."""
    shapes = []
    for k in range(int(rng.integers(2, 4))):
        kind = "box" if k == 0 else str(rng.choice(["sphere", "box"]))
        size = rng.uniform(0.16, 0.26)
        centre = rng.uniform(-0.48 + size, 0.48 - size, 3)
        half = rng.uniform(0.6, 1.0, 3) * size if kind == "box" else np.full(3, size)
        shapes.append({"kind": kind, "centre": centre, "half": half, "colour": rng.uniform(0.15, 0.95, 3)})
    return shapes


def _intersect(shapes: list[dict], origin: np.ndarray, rays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Nearest hit of rays (N, 3) from `origin`: distance (N,) (inf = miss), normal (N, 3), colour (N, 3)."""
    n = len(rays)
    best, normal, colour = np.full(n, np.inf), np.zeros((n, 3)), np.zeros((n, 3))
    for s in shapes:
        oc = origin - s["centre"]
        if s["kind"] == "sphere":
            b = rays @ oc
            disc = b * b - (oc @ oc - s["half"][0] ** 2)
            t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
            t = np.where(t > 0, t, np.inf)
            hit_n = (origin + t[:, None] * rays - s["centre"]) / s["half"][0]
        else:  # slab test
            with np.errstate(divide="ignore", invalid="ignore"):
                t1, t2 = (-s["half"] - oc) / rays, (s["half"] - oc) / rays
            near, far = np.minimum(t1, t2).max(axis=1), np.maximum(t1, t2).min(axis=1)
            t = np.where((near < far) & (near > 0), near, np.inf)
            axis = np.minimum(t1, t2).argmax(axis=1)
            hit_n = np.zeros((n, 3))
            hit_n[np.arange(n), axis] = -np.sign(rays[np.arange(n), axis])
        closer = t < best
        best = np.where(closer, t, best)
        normal[closer], colour[closer] = hit_n[closer], s["colour"]
    return best, normal, colour


def _voxelise(shapes: list[dict], size: int) -> np.ndarray:
    """Solid occupancy uint8 (size, size, size) indexed [x, y, z] over the unit cube [-0.5, 0.5]^3."""
    c = (np.arange(size) + 0.5) / size - 0.5
    p = np.stack(np.meshgrid(c, c, c, indexing="ij"), axis=-1)
    occ = np.zeros((size,) * 3, bool)
    for s in shapes:
        d = p - s["centre"]
        if s["kind"] == "sphere":
            occ |= (d**2).sum(-1) <= s["half"][0] ** 2
        else:
            occ |= (np.abs(d) <= s["half"]).all(-1)
    return occ.astype(np.uint8)


def _paint_object(shapes: list[dict], cam_to_world: np.ndarray, focal: float, size: int,
                  light: np.ndarray) -> dict[str, np.ndarray]:
    """One view of the shapes: float image, albedo, world normals, mask, depth (metres along z)."""
    u = np.arange(size) + 0.5 - size / 2
    xx, yy = np.meshgrid(u, u)  # x to the right, y down (OpenCV)
    cam_rays = np.stack([xx / focal, yy / focal, np.ones_like(xx)], axis=-1).reshape(-1, 3)
    rays = cam_rays @ cam_to_world[:3, :3].T
    z_scale = np.linalg.norm(rays, axis=1)
    rays = rays / z_scale[:, None]
    t, normal, colour = _intersect(shapes, cam_to_world[:3, 3], rays)
    hit = np.isfinite(t)
    shade = _AMBIENT + _DIFFUSE * np.clip(normal @ light, 0, None)
    image = np.where(hit[:, None], colour * shade[:, None], _BACKGROUND)
    depth = np.where(hit, t / z_scale, 0.0)
    shape = (size, size)
    return {"image": image.reshape(*shape, 3), "albedo": np.where(hit[:, None], colour, 0).reshape(*shape, 3),
            "normal": normal.reshape(*shape, 3), "mask": hit.reshape(shape), "depth": depth.reshape(shape)}


def make_object_scene_file(
    path: str | os.PathLike,
    num_scenes: int = 8,
    num_views: int = 50,
    size: int = 32,
    seed: int = 0,
    first_index: int = 0,
    spiral: bool = False,
    light_per_view: bool = False,
    voxel_size: int = 32,
    radius_range: tuple[float, float] = (3.3, 3.3),
    fov_deg: float = 25.0,
) -> Path:
    """Write a toy posed-object scene-major file (atomically) with every field of docs/formats.md §3.

    NOT a rendering: a numpy ray caster of 2-3 coloured spheres and boxes in the unit cube, diffuse-shaded
    (ambient 0.1 + 0.9 max(n.l, 0), white light) on a white background; camera on a sphere around the origin.

    Args:
        path: output `scenes_{split}.h5`.
        num_scenes, num_views, size: S, V and H = W.
        seed: dataset seed; scene i is drawn from (seed, first_index + i).
        first_index: `scene_index` of the first row.
        spiral: views on `archimedean_spiral` (ENR's test layout) instead of uniform random azimuth in
            [0, 360) and elevation in [-20, 70] degrees.
        light_per_view: a new light direction per view (RenderNet); otherwise one per scene (ENR).
        voxel_size: D of the per-scene `voxels` (D, D, D).
        radius_range: camera distance range in metres (RenderNet's default radius 3.3).
        fov_deg: horizontal field of view.
    Returns:
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    s, v = num_scenes, num_views
    out = {
        "images": np.zeros((s, v, size, size, 3), np.uint8), "viewpoints": np.zeros((s, v, 7), np.float32),
        "viewpoints_xyzyp": np.zeros((s, v, 5), np.float32), "K": np.zeros((s, v, 3, 3), np.float32),
        "cam_to_world": np.zeros((s, v, 4, 4), np.float32), "depth": np.zeros((s, v, size, size), np.uint16),
        "normal": np.zeros((s, v, size, size, 3), np.float16), "albedo": np.zeros((s, v, size, size, 3), np.uint8),
        "mask": np.zeros((s, v, size, size), np.uint8), "azimuth": np.zeros((s, v), np.float32),
        "elevation": np.zeros((s, v), np.float32), "radius": np.zeros((s, v), np.float32),
        "offset": np.zeros((s, v, 3), np.float32), "light_azimuth": np.zeros((s, v), np.float32),
        "light_elevation": np.zeros((s, v), np.float32),
        "voxels": np.zeros((s, voxel_size, voxel_size, voxel_size), np.uint8),
    }
    focal = (size / 2) / np.tan(np.radians(fov_deg) / 2)
    k_matrix = np.array([[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]], np.float32)
    to_u8 = lambda x: np.clip(np.round(x * 255), 0, 255).astype(np.uint8)  # noqa: E731
    for i in range(s):
        rng = np.random.default_rng([seed, first_index + i])
        shapes = _object_scene(rng)
        out["voxels"][i] = _voxelise(shapes, voxel_size)
        if spiral:
            azimuths, elevations = np.degrees(archimedean_spiral(v))
        else:
            azimuths, elevations = rng.uniform(0, 360, v), rng.uniform(-20, 70, v)
        scene_light = (rng.uniform(0, 360), rng.uniform(10, 80))
        for j in range(v):
            light_az, light_el = (rng.uniform(0, 360), rng.uniform(0, 80)) if light_per_view else scene_light
            radius = rng.uniform(*radius_range)
            pos = radius * direction(np.radians(azimuths[j]), np.radians(elevations[j]))
            c2w = blender_to_opencv(look_at(pos, np.zeros(3)))
            view = _paint_object(shapes, c2w, focal, size, direction(np.radians(light_az), np.radians(light_el)))
            out["images"][i, j], out["albedo"][i, j] = to_u8(view["image"]), to_u8(view["albedo"])
            out["normal"][i, j], out["mask"][i, j] = view["normal"], view["mask"] * np.uint8(255)
            out["depth"][i, j] = np.round(view["depth"] * 1000).astype(np.uint16)
            d = -pos / radius
            yaw, pitch = float(np.arctan2(d[1], d[0])), float(np.arcsin(d[2]))
            out["viewpoints"][i, j] = [*pos, np.sin(yaw), np.cos(yaw), np.sin(pitch), np.cos(pitch)]
            out["viewpoints_xyzyp"][i, j] = [*pos, yaw, pitch]
            out["K"][i, j], out["cam_to_world"][i, j] = k_matrix, c2w
            out["azimuth"][i, j], out["elevation"][i, j], out["radius"][i, j] = azimuths[j], elevations[j], radius
            out["light_azimuth"][i, j], out["light_elevation"][i, j] = light_az, light_el
    with Staged(path) as staged, h5py.File(staged.path, "w") as f:
        for name, data in out.items():
            chunks = (1, *data.shape[1:]) if data.ndim >= 3 else None
            f.create_dataset(name, data=data, chunks=chunks)
        f.create_dataset("scene_index", data=np.arange(first_index, first_index + s, dtype=np.int64))
        f.attrs["layout"] = "scene-major"
        f.attrs["format_version"] = 1
        f.attrs["views"] = v
        f.attrs["viewpoint_order"] = VIEWPOINT_ORDER
        f.attrs["split"] = path.stem.removeprefix("scenes_")
        f.attrs["dataset"] = path.parent.name
        f.attrs["generator"] = "train.toydata.make_object_scene_file (synthetic toy objects, not a rendering)"
        f.attrs["fields"] = json.dumps(list(OBJECT_FIELDS))
    return path


def make_object_dataset(
    folder: str | os.PathLike, num_train: int = 16, num_val: int = 2, num_test: int = 2, num_views: int = 50,
    test_views: int = 251, size: int = 32, seed: int = 0, light_per_view: bool = False, voxel_size: int = 32,
    radius_range: tuple[float, float] = (3.3, 3.3), fov_deg: float = 25.0,
) -> Path:
    """Write train/val/test posed-object files into `folder`; val and test views lie on the ENR spiral
    (`test_views` each, source view 64 when there are 251)."""
    folder = Path(folder)
    first = 0
    for split, n in {"train": num_train, "val": num_val, "test": num_test}.items():
        if n:
            held_out = split != "train"
            make_object_scene_file(folder / f"scenes_{split}.h5", n, test_views if held_out else num_views, size, seed,
                                   first_index=first, spiral=held_out, light_per_view=light_per_view,
                                   voxel_size=voxel_size, radius_range=radius_range, fov_deg=fov_deg)
        first += n
    logger.info("wrote toy object dataset %s", folder)
    return folder
