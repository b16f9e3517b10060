"""A synthetic twin of the real fruit still-life captures (seed 000): fruit on a wooden floor in a corner.

The real dataset photographs fruit on a wooden floor in the corner of two walls from a fixed table of camera
poses: on a square with x, y in {-1, -0.5, 0.5, 1}, z = 0, pitch 0, each camera facing the centre; scenes 1-129
use 12 views (every point of the square with those coordinates), scenes 130-235 use 8 (corners and edge
midpoints). This generator stages the same: real Sweet Home 3D fruit meshes (with their own textures, via the asset
index) near the origin, a wooden floor below the cameras' height, two walls meeting behind the (+x, +y) corner of the
square, and cameras on the same square plus a small jitter. The tables and their order are in docs/generators.md.
"""

import math
from dataclasses import dataclass

import gin
import numpy as np
from core import asset_index as assets
from core import camera

from render.catalogue import AssetError
from render.generators.gqn import place_on_floor, random_color, z_rotation
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

#: The 12-view table: every point of the square's outline with coordinates in {-1, -0.5, 0.5, 1}, counter-clockwise
#: from the (-1, -1) corner.
VIEWS_12 = ((-1.0, -1.0), (-0.5, -1.0), (0.5, -1.0), (1.0, -1.0), (1.0, -0.5), (1.0, 0.5),
            (1.0, 1.0), (0.5, 1.0), (-0.5, 1.0), (-1.0, 1.0), (-1.0, 0.5), (-1.0, -0.5))
#: The 8-view table: the corners and edge midpoints, counter-clockwise from the (-1, -1) corner.
VIEWS_8 = ((-1.0, -1.0), (0.0, -1.0), (1.0, -1.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0), (-1.0, 1.0), (-1.0, 0.0))


@dataclass(frozen=True)
class _Item:
    path: str
    class_name: str
    size_m: tuple[float, float, float]  # width (x), depth (y), height (z)


def load_items(classes: tuple[str, ...]) -> dict[str, list[_Item]]:
    """Meshes of the asset index in `classes` with their catalogue sizes, by class (sorted, stable).

    Raises:
        AssetError: no asset index, or none of `classes` has a mesh with a known size; the message names the fix.
    """
    try:
        index = assets.load_index()
    except (FileNotFoundError, assets.AssetError) as err:
        raise AssetError(str(err)) from err
    by_class: dict[str, list[_Item]] = {}
    for mesh in sorted(index.meshes(source="sweethome3d"), key=lambda m: m.id):
        if mesh.class_name in classes and mesh.size_cm:
            size = tuple(float(v) / 100.0 for v in mesh.size_cm)
            by_class.setdefault(mesh.class_name, []).append(_Item(str(mesh.path), mesh.class_name, size))
    if not by_class.get(classes[0]):
        raise AssetError(f"the asset index has no Sweet Home 3D meshes of class {classes[0]!r} (fruit_still_life needs "
                         f"them); fetch them with `python -m pipeline.assets fetch --only sweethome3d`")
    return by_class


#: Indexed textures that look like a wooden floor (GIMP patterns); bark and cork are left out.
WOOD_TEXTURES = ("gimp/wood/parque1", "gimp/wood/parque2", "gimp/wood/parque3", "gimp/wood/pine",
                 "gimp/wood/walnut", "gimp/wood/wood1", "gimp/wood/wood2", "gimp/wood/wood5", "gimp/wood/burlwood")


def floor_textures(ids: tuple[str, ...]) -> tuple[str, ...]:
    """Paths of the indexed textures with these ids, sorted; empty when the index has none of them."""
    try:
        index = assets.load_index()
    except (FileNotFoundError, assets.AssetError) as err:
        raise AssetError(str(err)) from err
    return tuple(sorted(str(t.path) for t in index.textures() if t.id in ids))


@gin.configurable(denylist=["rng", "index"])
def fruit_still_life(rng: np.random.Generator, index: int, layout: int = 12, square_half_size: float = 0.6,
                     position_jitter: float = 0.03, angle_jitter_deg: float = 2.0, camera_height: float = 0.12,
                     fov_deg: float = 46.0, classes: tuple[str, ...] = ("fruit", "food", "kitchenware"),
                     min_items: int = 1, max_items: int = 3, spread: float = 0.2, corner_distance: float = 0.9,
                     wall_height: float = 1.2, floor_texture_ids: tuple[str, ...] = WOOD_TEXTURES,
                     light_energy: float = 2.5,
                     ambient: float = 0.6) -> SceneSpec:
    """One still life: 1-3 real meshes (the first always of class `classes[0]`) on a wooden floor in a corner.

    World frame: cameras at z = 0 (as in the real table), floor top at z = -`camera_height`, walls' inner faces at
    x = `corner_distance` and y = `corner_distance`. View v stands at `square_half_size` * table[v] (VIEWS_12 or
    VIEWS_8) plus a uniform jitter of up to `position_jitter` metres in x and y, and looks at the origin turned by up
    to `angle_jitter_deg` in yaw and pitch (pitch 0 and facing the centre without jitter).

    Args:
        rng: the sample's generator.
        index: sample index (unused).
        layout: 12 (scenes 1-129 of the real data) or 8 (scenes 130-235).
        square_half_size: metres per unit of the table (the real table's units are not metric; 0.6 m makes a bowl
            of fruit about a third of the frame wide, as in the photographs).
        position_jitter: largest camera displacement from its table position in x and y, metres.
        angle_jitter_deg: largest yaw and pitch deviation from facing the centre, degrees.
        camera_height: height of the cameras above the floor, metres.
        fov_deg: horizontal field of view (the photos' 64-of-96-pixel crop of a phone camera's ~65 degrees).
        classes: mesh classes of the asset index drawn from; the first item is always of `classes[0]`.
        min_items, max_items: items per scene (uniform, inclusive).
        spread: items stand within this distance of the origin, metres.
        corner_distance: distance from the origin to each wall's inner face, metres.
        wall_height: height of the two walls, metres.
        floor_texture_ids: the floor takes one of these indexed textures (WOOD_TEXTURES); a wood-like procedural
            texture when the index has none of them.
        light_energy: strength of the sun (a window light from a random direction in front of the corner).
        ambient: strength of the constant world light (off-white).
    """
    del index
    views_table = {12: VIEWS_12, 8: VIEWS_8}.get(layout)
    if views_table is None:
        raise ValueError(f"fruit_still_life.layout = {layout!r}; use 12 or 8 (the real captures' two tables)")
    if not 1 <= min_items <= max_items:
        raise ValueError(f"fruit_still_life.min_items ({min_items}) must lie in [1, max_items ({max_items})]")
    if corner_distance <= square_half_size + position_jitter:
        raise ValueError(f"fruit_still_life.corner_distance ({corner_distance}) must exceed the camera square "
                         f"({square_half_size} + jitter {position_jitter}) so every camera stands inside the corner")
    items = load_items(classes)
    textures = floor_textures(floor_texture_ids)
    floor_z = -camera_height

    count = int(rng.integers(min_items, max_items + 1))
    pool = [it for c in classes for it in items.get(c, [])]
    chosen = [items[classes[0]][int(rng.integers(len(items[classes[0]])))]]
    chosen += [pool[int(rng.integers(len(pool)))] for _ in range(count - 1)]
    radii = [0.5 * math.hypot(it.size_m[0], it.size_m[1]) for it in chosen]
    centres = place_on_floor(rng, count, radii, spread + max(radii), square=False)
    objects = []
    for k, (item, centre) in enumerate(zip(chosen, centres, strict=True)):
        largest = max(item.size_m)
        objects.append(ObjectSpec(
            name=f"item_{k:02d}",
            mesh=MeshSpec(item.path, normalize=True),  # largest side 1, centred: scaled back to catalogue size
            material=MaterialSpec(color=(0.8, 0.8, 0.8), keep_original=True),
            class_name=item.class_name,
            location=(float(centre[0]), float(centre[1]), floor_z + item.size_m[2] / 2.0),
            quaternion=as_tuple(z_rotation(float(rng.uniform(0, 2 * math.pi))), 4),
            scale=(largest, largest, largest),
        ))

    if textures:
        floor_material = MaterialSpec(color=(1.0, 1.0, 1.0), texture=textures[int(rng.integers(len(textures)))],
                                      texture_scale=float(rng.uniform(1.5, 3.0)), roughness=0.5)
    else:
        floor_material = MaterialSpec(color=random_color(rng, (0.45, 0.7), (0.25, 0.5)),
                                      texture=f"procedural:wave:{int(rng.integers(1 << 30))}",
                                      texture_scale=float(rng.uniform(0.5, 1.0)), roughness=0.5)
    wall_color = random_color(rng, saturation=(0.0, 0.15), value=(0.6, 0.9))
    wall_material = MaterialSpec(color=wall_color, roughness=0.9)
    extent = 2.0 * corner_distance + 4.0  # floor and walls reach well past the far side of the camera square
    t = 0.05
    shell = [
        ObjectSpec(name="floor", mesh=MeshSpec(f"box:{extent:g},{extent:g},{t:g}", normalize=False),
                   material=floor_material, class_name="floor",
                   location=(corner_distance - extent / 2.0, corner_distance - extent / 2.0, floor_z - t / 2.0)),
        ObjectSpec(name="wall_x", mesh=MeshSpec(f"box:{t:g},{extent:g},{wall_height:g}", normalize=False),
                   material=wall_material, class_name="wall",
                   location=(corner_distance + t / 2.0, corner_distance - extent / 2.0, floor_z + wall_height / 2.0)),
        ObjectSpec(name="wall_y", mesh=MeshSpec(f"box:{extent:g},{t:g},{wall_height:g}", normalize=False),
                   material=wall_material, class_name="wall",
                   location=(corner_distance - extent / 2.0, corner_distance + t / 2.0, floor_z + wall_height / 2.0)),
    ]

    views = []
    jitter = math.radians(angle_jitter_deg)
    for x, y in views_table:
        location = np.array([x, y, 0.0]) * square_half_size
        location[:2] += rng.uniform(-position_jitter, position_jitter, size=2)
        yaw = math.atan2(-location[1], -location[0]) + float(rng.uniform(-jitter, jitter))
        pitch = float(rng.uniform(-jitter, jitter))
        look = camera.on_sphere(location, 1.0, yaw, pitch)  # 1 m along (yaw, pitch)
        views.append(ViewSpec(location=as_tuple(location, 3), look_at=as_tuple(look, 3), fov_deg=fov_deg))

    azimuth = math.radians(45.0) + float(rng.uniform(-0.6, 0.6))  # from the open side, opposite the corner
    elevation = math.radians(float(rng.uniform(35.0, 65.0)))
    # the sun stands 10 m out on the side opposite `azimuth` (the open side), `elevation` up: the point mirrored
    # through the origin from the one at (azimuth, -elevation), written so because it gives the same floats as
    # before the formula moved to core.camera
    sun = LightSpec(kind="SUN", energy=light_energy,
                    location=as_tuple(-10.0 * camera.direction(azimuth, -elevation), 3), color=(1.0, 0.95, 0.88))
    return SceneSpec(objects=tuple(shell + objects), lights=(sun,), views=tuple(views),
                     classes=("floor", "wall", *classes), world=WorldSpec(color=(0.95, 0.93, 0.9), strength=ambient))
