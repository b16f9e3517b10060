"""RenderNet voxel/shading pairs (issue 13): one mesh of the asset index per sample, its solid voxel grid and
views of it shaded under a light of their own.

A sample is one object: a mesh of `source`/`classes` (CGAL's meshes, Sweet Home 3D furniture, ShapeNet or a
user's folder once indexed), normalised into the unit cube [-0.5, 0.5]^3 (`MeshSpec(normalize=True)`: bounding
box centred, largest side 1) and placed at the origin unrotated, so its voxel grid (`VoxelSpec`, the same
normalisation in render/voxels.py) sits exactly where the renders see it. Views, in drawing order:

- camera at azimuth phi uniform in [0, 360) degrees and polar angle t (from the up axis z) uniform in
  `polar_deg` ([10, 170], RenderNet's range; elevation = 90 - t), at a radius drawn from `radii`, looking at the
  origin (`core.camera.on_sphere`);
- a sun from (light azimuth uniform in [0, 360), light elevation uniform in `light_elevation_deg`), used for
  that view alone (`ViewSpec.light`);
- per-view records (degrees, metres): `azimuth`, `elevation`, `radius`, `light_azimuth`, `light_elevation`.

The object has one plain diffuse colour (the albedo target is that colour) in front of a plain background (the
world colour, which is also the ambient light, RenderNet's `ambient` term).
"""

import colorsys
import logging
import math

import gin
import numpy as np
from core import camera

from render.catalogue import load_catalogue
from render.spec import (
    LightSpec,
    MaterialSpec,
    MeshSpec,
    ObjectSpec,
    SceneSpec,
    ViewSpec,
    VoxelSpec,
    WorldSpec,
    as_tuple,
)
from render.voxels import VoxelizationError, voxelize_file

logger = logging.getLogger(__name__)

#: RenderNet's radius range (metres; its loader reads the radius as three characters, d.d).
RADIUS_RANGE = (2.5, 4.5)
#: RenderNet's polar-angle range t (degrees from the up axis).
POLAR_RANGE = (10.0, 170.0)
#: Splits of the sample folders (core.samples): the object pools follow the same buckets.
_N_BUCKETS = 12


class BadMeshError(RuntimeError):
    """No mesh of the pool could be imported and voxelised (or one failed with `on_bad_mesh = 'fail'`)."""


def _draw_mesh(rng: np.random.Generator, pool: tuple[str, ...], dim: int, fill: str, on_bad_mesh: str,
               max_draws: int) -> str:
    """A mesh of `pool` that voxelises, drawn from `rng`; a bad one is logged with its path and, with
    `on_bad_mesh = 'skip'`, replaced by another draw of the same rng (so the sample stays deterministic)."""
    for _ in range(max_draws):
        path = pool[int(rng.integers(len(pool)))]
        try:
            voxelize_file(path, dim, fill)  # cached: the renderer writes this very grid
        except VoxelizationError as err:
            if on_bad_mesh == "fail":
                raise BadMeshError(f"rendernet: mesh {path} cannot be voxelised ({err}); "
                                   "set rendernet_object.on_bad_mesh = 'skip' to draw another") from err
            logger.warning("rendernet: skipping mesh %s: %s", path, err)
            continue
        return path
    raise BadMeshError(f"rendernet: {max_draws} draws from a pool of {len(pool)} meshes found none that voxelises "
                       "(see the warnings above for each path)")


def _radius(rng: np.random.Generator, radii: tuple[float, float]) -> float:
    """A radius in steps of 0.1 m within `radii` (RenderNet's names hold one decimal)."""
    lo, hi = (round(r * 10) for r in radii)
    return round(int(rng.integers(lo, hi + 1)) / 10.0, 1)


@gin.configurable(denylist=["rng", "index"])
def rendernet_object(
    rng: np.random.Generator,
    index: int,
    source: str = "sweethome3d",
    classes: tuple[str, ...] | None = ("chair",),
    num_views: int = 24,
    radii: tuple[float, float] = (3.3, 3.3),
    polar_deg: tuple[float, float] = POLAR_RANGE,
    light_elevation_deg: tuple[float, float] = (10.0, 80.0),
    light_energy: float = 3.0,
    fov_deg: float = 30.0,
    color: tuple[float, float, float] | None = None,
    background: tuple[float, float, float] = (0.1, 0.1, 0.1),
    voxel_dim: int = 64,
    voxel_fill: str = "auto",
    on_bad_mesh: str = "skip",
    max_draws: int = 20,
) -> SceneSpec:
    """One RenderNet sample: an object of the asset index, its voxel grid and `num_views` lit views.

    Args:
        rng: the sample's generator (seeded from the dataset seed and `index`).
        index: sample index; the object is drawn from pool `index % 12` of its class (disjoint pools when the
            class has at least 12 meshes, so val/test objects are unseen in training).
        source: mesh source of the asset index ("sweethome3d", "cgal", "shapenet", "folder-<name>").
        classes: classes to draw from (uniformly, then a mesh of the class); None takes every class of the source.
        num_views: views per object.
        radii: (min, max) camera distance in metres, drawn in 0.1 m steps; within RenderNet's [2.5, 4.5].
        polar_deg: (min, max) polar angle t from the up axis, degrees, within [10, 170].
        light_elevation_deg: (min, max) elevation of each view's sun, degrees.
        light_energy: strength of each view's sun, W/m^2.
        fov_deg: horizontal field of view; 30 degrees frames the unit cube's bounding sphere (radius 0.87 m) at 3.3 m.
        color: the object's linear base colour; None draws a muted colour per object.
        background: linear colour of the plain background, also the ambient light.
        voxel_dim: voxels per axis of the grid (64; 32 for the smaller set).
        voxel_fill: "auto" (closed fill, space carving for open meshes), "closed" or "carve".
        on_bad_mesh: "skip" (log the mesh's path and draw another from the same rng) or "fail" (fail the shard).
        max_draws: draws before a sample gives up on a pool of bad meshes.
    Raises:
        ValueError: settings outside RenderNet's ranges or unknown options.
        BadMeshError: no mesh voxelises (or one failed with on_bad_mesh = 'fail').
    """
    _check(radii, polar_deg, on_bad_mesh, num_views)
    catalogue = load_catalogue(source)
    names = catalogue.classes if classes is None else tuple(classes)
    unknown = sorted(set(names) - set(catalogue.classes))
    if unknown:
        raise ValueError(f"rendernet_object.classes {unknown} are not classes of source {source!r}: "
                         f"{list(catalogue.classes)}")
    class_name = names[int(rng.integers(len(names)))]
    pool = catalogue.pool(class_name, index % _N_BUCKETS, _N_BUCKETS)
    path = _draw_mesh(rng, pool, voxel_dim, voxel_fill, on_bad_mesh, max_draws)
    if color is None:
        # muted colours: bright enough that shading reads in 8 bits, never white (the albedo stays below 1)
        hue, sat, val = float(rng.random()), float(rng.uniform(0.2, 0.6)), float(rng.uniform(0.5, 0.8))
        color = colorsys.hsv_to_rgb(hue, sat, val)
    obj = ObjectSpec(
        name="object",
        mesh=MeshSpec(source=path, normalize=True),
        # purely diffuse, as RenderNet's Phong-like shading (kd only): the albedo pass is then the base colour
        material=MaterialSpec(color=as_tuple(color, 3), roughness=1.0, specular=0.0),
        class_name=class_name,
    )
    views = tuple(_view(rng, radii, polar_deg, light_elevation_deg, light_energy, fov_deg) for _ in range(num_views))
    return SceneSpec(
        objects=(obj,),
        lights=(),
        views=views,
        classes=tuple(names),
        world=WorldSpec(color=as_tuple(background, 3), strength=1.0),
        voxels=(VoxelSpec(name="voxels", source=path, dim=voxel_dim, fill=voxel_fill),),
    )


def _view(rng: np.random.Generator, radii: tuple[float, float], polar_deg: tuple[float, float],
          light_elevation_deg: tuple[float, float], light_energy: float, fov_deg: float) -> ViewSpec:
    azimuth = float(rng.uniform(0.0, 360.0))
    polar = float(rng.uniform(*polar_deg))
    elevation = 90.0 - polar
    radius = _radius(rng, radii)
    light_azimuth = float(rng.uniform(0.0, 360.0))
    light_elevation = float(rng.uniform(*light_elevation_deg))
    location = camera.on_sphere(np.zeros(3), radius, math.radians(azimuth), math.radians(elevation))
    sun = camera.on_sphere(np.zeros(3), 5.0, math.radians(light_azimuth), math.radians(light_elevation))
    return ViewSpec(
        location=as_tuple(location, 3),
        look_at=(0.0, 0.0, 0.0),
        fov_deg=fov_deg,
        records={"azimuth": azimuth, "elevation": elevation, "radius": radius, "light_azimuth": light_azimuth,
                 "light_elevation": light_elevation},
        light=LightSpec(kind="SUN", location=as_tuple(sun, 3), energy=light_energy),
    )


def _check(radii: tuple[float, float], polar_deg: tuple[float, float], on_bad_mesh: str, num_views: int) -> None:
    if not RADIUS_RANGE[0] <= radii[0] <= radii[1] <= RADIUS_RANGE[1]:
        raise ValueError(f"rendernet_object.radii = {radii}; RenderNet's radii lie in {RADIUS_RANGE} m (min <= max)")
    if not POLAR_RANGE[0] <= polar_deg[0] <= polar_deg[1] <= POLAR_RANGE[1]:
        raise ValueError(f"rendernet_object.polar_deg = {polar_deg}; RenderNet's polar angles lie in {POLAR_RANGE}")
    if on_bad_mesh not in ("skip", "fail"):
        raise ValueError(f"rendernet_object.on_bad_mesh = {on_bad_mesh!r}; use 'skip' or 'fail'")
    if num_views < 1:
        raise ValueError(f"rendernet_object.num_views must be >= 1, got {num_views}")
