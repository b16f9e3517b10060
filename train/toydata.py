"""Synthetic toy scenes in the scene-major HDF5 layout, for tests, benchmarks and smoke runs.

NOT a rendering: a cheap numpy painter of a "room" seen from a camera on a ring around its centre. Each scene has
four wall colours, a floor colour and a centre ball lit from one side. What a view shows depends on the viewpoint
(which wall is behind the ball, where the horizon is, which side of the ball is lit), so a model has something to
learn from context views. Files follow docs/formats.md section 3 (only the datasets the trainer reads plus
`viewpoints_xyzyp` and `scene_index`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import h5py
import numpy as np

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
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with h5py.File(tmp, "w") as f:
        f.create_dataset("images", data=images, chunks=(1, num_views, size, size, 3), compression="gzip",
                         compression_opts=1)
        f.create_dataset("viewpoints", data=viewpoints)
        f.create_dataset("viewpoints_xyzyp", data=xyzyp)
        f.create_dataset("scene_index", data=np.arange(first_index, first_index + num_scenes, dtype=np.int64))
        f.attrs["layout"] = "scene-major"
        f.attrs["format_version"] = 1
        f.attrs["views"] = num_views
        f.attrs["viewpoint_order"] = "[x, y, z, sin yaw, cos yaw, sin pitch, cos pitch]"
        f.attrs["generator"] = "train.toydata (synthetic toy scenes, not a rendering)"
    os.replace(tmp, path)
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
