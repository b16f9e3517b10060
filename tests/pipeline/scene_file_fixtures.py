"""Fixture maker: tiny scene-major files (docs/formats.md §3) written with h5py directly, with the dataset
names the RenderNet and ENR exports read (images, azimuth, elevation, offset, radius, mask, normal, albedo,
voxels, scene_index; attributes dataset, split).

Each view is a disc on a background; views differ so a pixel mix-up between views or scenes shows.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np


def make_scene_file(path: Path, scenes: int = 3, views: int = 4, size: int = 16, split: str = "train",
                    background: int = 255, mask: bool = False, offset: bool = False, radius: bool = False,
                    normal: bool = False, albedo: bool = False, voxels: int = 0, seed: int = 0,
                    first_index: int = 12) -> dict[str, np.ndarray]:
    """Writes `path` and returns the arrays written (name -> array)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    data: dict[str, np.ndarray] = {}
    images = np.empty((scenes, views, size, size, 3), np.uint8)
    masks = np.zeros((scenes, views, size, size), np.uint8)
    for s in range(scenes):
        for v in range(views):
            cx, cy = size / 2 + (v - views / 2), size / 2 + (s - scenes / 2)
            disc = (xx - cx) ** 2 + (yy - cy) ** 2 < (size / 4) ** 2
            colour = rng.integers(0, 200, size=3, dtype=np.uint8)
            img = np.full((size, size, 3), background, np.uint8)
            img[disc] = colour
            images[s, v], masks[s, v] = img, disc
    data["images"] = images
    data["azimuth"] = rng.uniform(0, 360, (scenes, views)).astype(np.float32)
    data["elevation"] = rng.uniform(-60, 70, (scenes, views)).astype(np.float32)
    data["scene_index"] = np.arange(first_index, first_index + 12 * scenes, 12, dtype=np.int64)
    if mask:
        data["mask"] = masks
    if offset:
        data["offset"] = rng.normal(0, 0.3, (scenes, views, 3)).astype(np.float32)
    if radius:
        data["radius"] = rng.choice(np.array([2.5, 3.3, 4.5, 3.0], np.float32), (scenes, views))
    if normal:
        n = rng.normal(size=(scenes, views, size, size, 3))
        data["normal"] = (n / np.linalg.norm(n, axis=-1, keepdims=True)).astype(np.float16)
    if albedo:
        data["albedo"] = rng.integers(0, 256, (scenes, views, size, size, 3), dtype=np.uint8)
    if voxels:
        data["voxels"] = (rng.random((scenes, voxels, voxels, voxels)) < 0.2).astype(np.uint8)
    with h5py.File(path, "w") as fh:
        for name, values in data.items():
            fh.create_dataset(name, data=values)
        fh.attrs["dataset"] = "toy"
        fh.attrs["split"] = split
        fh.attrs["layout"] = "scene-major"
    return data
