"""Mesh catalogues: the classes a generator can draw and the meshes of each class.

"primitives" needs no assets; every other source reads the asset index written by
`python -m pipeline.assets fetch` / `index` (docs/assets.md).
"""

import colorsys
import zlib
from dataclasses import dataclass

import numpy as np
from core import asset_index as assets

from render.spec import PRIMITIVES, MeshSpec


class AssetError(RuntimeError):
    """A mesh source or asset folder is missing or unusable; the message names it and the fix."""


@dataclass(frozen=True)
class Catalogue:
    """Meshes grouped by class; classes and meshes are sorted so indices are stable."""

    source: str
    meshes_by_class: dict[str, tuple[str, ...]]

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(sorted(self.meshes_by_class))

    def pool(self, class_name: str, bucket: int, n_buckets: int) -> tuple[str, ...]:
        """Meshes of `class_name` reserved for `bucket`: disjoint pools when the class has enough meshes."""
        meshes = self.meshes_by_class[class_name]
        if len(meshes) < n_buckets:
            return meshes
        return meshes[bucket::n_buckets]


def load_catalogue(source: str) -> Catalogue:
    """The catalogue of a mesh source ("primitives", or a source of the asset index)."""
    if source == "primitives":
        return Catalogue(source, {name: (f"primitive:{name}",) for name in PRIMITIVES})
    try:
        meshes = assets.load_index().meshes(source=source)
    except assets.AssetError as err:  # its messages name the index and the command that fixes it
        raise AssetError(str(err)) from err
    by_class: dict[str, list[str]] = {}
    for mesh in meshes:
        by_class.setdefault(mesh.class_name, []).append(str(mesh.path))
    return Catalogue(source, {c: tuple(sorted(paths)) for c, paths in sorted(by_class.items())})


def class_reference_colors(class_name: str, num_modes: int, intensity: float) -> list[tuple[float, float, float]]:
    """Fixed reference colours of a class: a function of its name only, so they agree across datasets."""
    rng = np.random.default_rng(zlib.crc32(class_name.encode("utf-8")))
    return [colorsys.hsv_to_rgb(float(rng.random()), 0.55 + 0.4 * float(rng.random()), intensity) for _ in range(num_modes)]


def mesh_spec(source: str, warp: float = 0.0, warp_seed: int = 0) -> MeshSpec:
    """MeshSpec of a catalogue entry; primitives are already unit-sized and need no normalisation."""
    return MeshSpec(source=source, normalize=not source.startswith("primitive:"), warp=warp, warp_seed=warp_seed)


def load_textures() -> tuple[str, ...]:
    """Paths of every image texture in the asset index, sorted."""
    try:
        index = assets.load_index()
    except assets.AssetError as err:
        raise AssetError(str(err)) from err
    return tuple(sorted(str(t.path) for t in index.textures()))
