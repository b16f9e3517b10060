"""Equivariant Neural Rendering's object sets: one mesh per scene, seen from a camera at a fixed distance.

Three transformations (ENR and its reproduction, CONVENTIONS.md "Equivariant Neural Rendering"):

- `rotation`: the object stands at the origin; each view's camera stands at `camera_distance` in a random
  direction of the upper hemisphere (uniform by area) and looks at the origin.
- `translation`: the camera stays at one place (`fixed_azimuth_deg`, `fixed_elevation_deg`) looking at the origin;
  each view moves the object by a random offset (uniform in a cube of half-side `max_offset`).
- `roto-translation`: both, drawn independently per view.

Every view records `azimuth` and `elevation` (degrees, of the camera around the origin, `core.camera.on_sphere`'s
convention: azimuth from +x towards +y, elevation up from the xy plane) and `offset` (3,) (metres, world frame: how
far the object was moved; zeros for rotation). The camera pose these angles give in ENR's own frame is
documented in docs/formats.md ("ENR's camera convention") and tested (tests/render/test_enr.py).

Splits are by object, never by view: every mesh of the chosen classes belongs to one of train, val and test by a
hash of its asset id (`object_split`), so adding meshes to the index never moves the others. A dataset holds one
split (`split`, default train): scene i shows the split's i-th object (modulo their number; sorted by id), and
declares that split. Train and val scenes have `num_views` random views; test scenes have ENR's 251 views on SRN's
Archimedean spiral (`core.sphere_paths`; view 64 is the PSNR source). Because one dataset has one view count
(its declared layout), the test set is its own dataset: `-p "enr_object.split = 'test'"`.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import gin
import numpy as np
from core import asset_index as assets
from core import camera
from core.samples import SPLITS
from core.sphere_paths import ENR_TEST_VIEWS, archimedean_spiral, random_sphere_angles

from render.catalogue import AssetError
from render.spec import (
    LightSpec,
    MaterialSpec,
    MeshSpec,
    ObjectSpec,
    SceneSpec,
    ViewSpec,
    WorldSpec,
    as_tuple,
)

TRANSFORMATIONS = ("rotation", "translation", "roto-translation")
#: Mesh formats that carry no materials of their own (they get a plain grey).
_BARE_FORMATS = ("off", "ply", "stl")


@dataclass(frozen=True)
class EnrObject:
    """A mesh of the asset index an ENR set can show."""

    id: str
    path: str
    class_name: str
    keep_materials: bool


def object_split(object_id: str, val_fraction: float, test_fraction: float) -> str:
    """The split of one object: a uniform number from the SHA-256 of its id, cut at the fractions.

    A function of the id alone, so it does not depend on the index's order or size, nor on the sample index.
    """
    u = int.from_bytes(hashlib.sha256(object_id.encode("utf-8")).digest()[:8], "big") / 2.0 ** 64
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def load_objects(source: str, classes: tuple[str, ...]) -> list[EnrObject]:
    """Meshes of `source` in `classes` (every class when empty), sorted by id.

    Raises:
        AssetError: no asset index, or no mesh of those classes; the message names the fix.
    """
    try:
        meshes = assets.load_index().meshes(source=source)
    except (FileNotFoundError, assets.AssetError) as err:
        raise AssetError(str(err)) from err
    found = [EnrObject(m.id, str(m.path), m.class_name, m.format not in _BARE_FORMATS)
             for m in meshes if not classes or m.class_name in classes]
    if not found:
        have = sorted({m.class_name for m in meshes})
        raise AssetError(f"the asset index has no {source!r} meshes of classes {list(classes)} (it has {have[:20]}); "
                         f"fetch them with `python -m pipeline.assets fetch` or pick other enr_object.classes")
    return sorted(found, key=lambda o: o.id)


def split_objects(objects: list[EnrObject], split: str, val_fraction: float, test_fraction: float) -> list[EnrObject]:
    """The objects of one split, in id order."""
    return [o for o in objects if object_split(o.id, val_fraction, test_fraction) == split]


def _check(transformation: str, split: str, num_views: int, val_fraction: float, test_fraction: float,
           camera_distance: float, max_offset: float, elevation_range_deg: tuple[float, float]) -> None:
    if transformation not in TRANSFORMATIONS:
        raise ValueError(f"enr_object.transformation = {transformation!r}; use one of {TRANSFORMATIONS}")
    if split not in SPLITS:
        raise ValueError(f"enr_object.split = {split!r}; use one of {SPLITS}")
    if num_views < 1:
        raise ValueError(f"enr_object.num_views must be >= 1, got {num_views}")
    if not (0 <= val_fraction and 0 <= test_fraction and val_fraction + test_fraction < 1):
        raise ValueError(f"enr_object.val_fraction ({val_fraction}) and test_fraction ({test_fraction}) must be "
                         "non-negative and leave some objects for training")
    if camera_distance <= 0 or max_offset < 0:
        raise ValueError(f"enr_object.camera_distance ({camera_distance}) must be > 0 and max_offset "
                         f"({max_offset}) >= 0")
    lo, hi = elevation_range_deg
    if not -90.0 <= lo <= hi <= 90.0:
        raise ValueError(f"enr_object.elevation_range_deg = {elevation_range_deg!r}; need -90 <= lo <= hi <= 90")


def _view(azimuth: float, elevation: float, offset: np.ndarray, distance: float, fov_deg: float,
          moves_object: bool) -> ViewSpec:
    """A camera at (azimuth, elevation) radians around the origin looking at it; `offset` moves the object."""
    location = camera.on_sphere(np.zeros(3), distance, azimuth, elevation)
    # the up axis points towards rising elevation, as ENR's rotated default camera's does; world z would say
    # nothing at the spiral's pole (elevation 90 degrees)
    up = camera.direction(azimuth, elevation + math.pi / 2.0)
    records = {"azimuth": math.degrees(azimuth) % 360.0, "elevation": math.degrees(elevation),
               "offset": as_tuple(offset, 3)}
    return ViewSpec(location=as_tuple(location, 3), look_at=(0.0, 0.0, 0.0), fov_deg=fov_deg, records=records,
                    up=as_tuple(up, 3), object_offset=as_tuple(offset, 3) if moves_object else None)


@gin.configurable(denylist=["rng", "index", "skip"])
def enr_object(rng: np.random.Generator, index: int, skip: tuple[str, ...] = (), transformation: str = "rotation",
               split: str = "train", num_views: int = 50, test_views: int = ENR_TEST_VIEWS,
               source: str = "sweethome3d", classes: tuple[str, ...] = ("chair",), val_fraction: float = 0.1,
               test_fraction: float = 0.1, camera_distance: float = 2.0, fov_deg: float = 40.0,
               elevation_range_deg: tuple[float, float] = (0.0, 90.0), fixed_azimuth_deg: float = 300.0,
               fixed_elevation_deg: float = 20.0, max_offset: float = 0.25, object_size: float = 1.0,
               light_energy: float = 1.5, ambient: float = 1.0) -> SceneSpec:
    """One ENR scene: one mesh of the split's objects, `num_views` views (251 on the spiral for test).

    Args:
        rng: the sample's generator (view directions, offsets, the sun).
        index: sample index; scene i shows the split's object i modulo their number.
        skip: mesh files that failed to import for this sample (filled in by the renderer under
            `batch.bad_mesh = 'redraw'`): the next object of the split in id order that is not among them is shown.
        transformation: "rotation", "translation" or "roto-translation" (module docstring).
        split: the split this dataset holds ("train", "val" or "test"), declared by every scene.
        num_views: views of a train or val scene (ENR: 50).
        test_views: views of a test scene, on the Archimedean spiral (ENR's PSNR script needs (v - 1) % 125 == 0).
        source: mesh source of the asset index ("sweethome3d", "cgal", ...).
        classes: classes of that source to draw from (ENR's is chairs); empty = every class.
        val_fraction, test_fraction: share of the objects held out for val and test (by id hash).
        camera_distance: camera distance from the origin, metres.
        fov_deg: horizontal field of view, degrees.
        elevation_range_deg: (lo, hi) elevations of random views, degrees; (0, 90) = the upper hemisphere.
        fixed_azimuth_deg, fixed_elevation_deg: the camera of the translation sets, degrees (300: a three-quarter
            view of a Sweet Home 3D chair, whose front faces -y).
        max_offset: half-side of the cube object offsets are drawn from, metres (translation sets).
        object_size: the object's largest bounding-box side, metres (it is centred on its bounding box).
        light_energy: strength of a sun from a random direction above, for shading (W/m^2).
        ambient: strength of the white world light, which is also the white background.
    Raises:
        ValueError: a setting out of range, or every object of the split in `skip`.
        AssetError: no asset index, or no mesh of `classes`, or none in this split.
    """
    _check(transformation, split, num_views, val_fraction, test_fraction, camera_distance, max_offset,
           elevation_range_deg)
    objects = split_objects(load_objects(source, classes), split, val_fraction, test_fraction)
    if not objects:
        raise AssetError(f"no {source!r} object of classes {list(classes)} falls in split {split!r} (val_fraction "
                         f"{val_fraction}, test_fraction {test_fraction}); raise the fraction or add classes")
    candidates = objects[index % len(objects):] + objects[:index % len(objects)]
    chosen = next((o for o in candidates if o.path not in skip), None)
    if chosen is None:
        raise ValueError(f"every object of split {split!r} failed to import for sample {index}: {list(skip)}")

    count = test_views if split == "test" else num_views
    rotates = transformation in ("rotation", "roto-translation")
    translates = transformation in ("translation", "roto-translation")
    if not rotates:
        azimuth = np.full(count, math.radians(fixed_azimuth_deg))
        elevation = np.full(count, math.radians(fixed_elevation_deg))
    elif split == "test":
        azimuth, elevation = archimedean_spiral(count)
    else:
        lo, hi = (math.radians(v) for v in elevation_range_deg)
        azimuth, elevation = random_sphere_angles(rng, count, (lo, hi))
    offsets = rng.uniform(-max_offset, max_offset, size=(count, 3)) if translates else np.zeros((count, 3))
    views = tuple(_view(float(a), float(e), o, camera_distance, fov_deg, translates)
                  for a, e, o in zip(azimuth, elevation, offsets, strict=True))

    material = MaterialSpec(color=(0.7, 0.7, 0.7), roughness=0.6, keep_original=chosen.keep_materials)
    obj = ObjectSpec(name="object", mesh=MeshSpec(chosen.path, normalize=True), material=material,
                     class_name=chosen.class_name, scale=(object_size,) * 3)
    sun_azimuth = float(rng.uniform(0.0, 2.0 * math.pi))
    sun_elevation = math.radians(float(rng.uniform(40.0, 80.0)))
    sun = LightSpec(kind="SUN", energy=light_energy,
                    location=as_tuple(camera.on_sphere(np.zeros(3), 10.0, sun_azimuth, sun_elevation), 3))
    # the split's classes, not the object's: semantic ids then mean the same class in every scene
    classes_of_split = tuple(sorted({o.class_name for o in objects}))
    return SceneSpec(objects=(obj,), lights=(sun,), views=views, classes=classes_of_split,
                     world=WorldSpec(color=(1.0, 1.0, 1.0), strength=ambient), split=split)
