"""Scene generators in the style of DeepMind's GQN datasets: rooms (ring and free camera) and Shepard-Metzler.

Every generator is a pure function `(rng, index) -> SceneSpec` drawing each random choice from `rng`; the
scene layouts, view layouts and viewpoint order are described in docs/generators.md.

- `gqn_rooms_ring_camera`: a square room (four walls, a floor, one texture for the walls and one for the floor),
  1-3 primitive objects of random shape and colour on the floor, and views from a ring around the room's
  centre, looking at the centre.
- `gqn_rooms_free_camera`: the same rooms; each camera stands anywhere inside the room, clear of the objects,
  and looks in a random direction (random yaw, pitch within a band).
- `gqn_shepard_metzler`: a chain of unit cubes joined face to face (a Shepard-Metzler assembly), one random
  colour and one instance id per cube, seen from random points on a sphere around it, looking at its centre.
"""

import colorsys
import math
from dataclasses import dataclass

import gin
import numpy as np
from core import camera

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

#: Object shapes of the rooms (render core primitives) and each one's height when it stands on the floor,
#: as a fraction of its size (primitives are unit-sized; the torus is 0.3 thick and lies flat).
ROOM_SHAPES: dict[str, float] = {"cube": 1.0, "sphere": 1.0, "cylinder": 1.0, "cone": 1.0, "torus": 0.3}
#: Procedural textures the render core knows (`MaterialSpec.texture = "procedural:<kind>:<seed>"`).
PROCEDURAL_KINDS = ("noise", "checker", "wave", "voronoi")
WALL_THICKNESS = 0.1
FLOOR_THICKNESS = 0.1


@gin.configurable("gqn_rooms")
@dataclass(frozen=True)
class RoomSettings:
    """Room, objects and light of the two GQN room generators.

    Attributes:
        room_size: inner side of the square room, metres; the room is centred on the origin, floor at z = 0.
        wall_height: height of the walls, metres.
        min_objects, max_objects: how many objects stand on the floor (uniform, inclusive).
        shapes: object shapes drawn from (names of ROOM_SHAPES).
        object_size: (min, max) size of an object (its largest side), metres.
        object_area: objects stand within this distance of the room's centre (ring camera) or of the walls'
            inner faces minus `object_size[1]` (free camera uses the whole floor), metres.
        texture_source: walls and floor: "procedural" (Blender noise/checker/wave/voronoi, no assets),
            "assets" (image textures of the asset index, `python -m pipeline.assets fetch`) or "none" (plain colours).
        texture_scale: (min, max) texture repeats per metre.
        light_energy: strength of the sun light, W/m^2; its direction is random above the room.
        ambient: strength of the constant sky light (it also shows above the walls).
        num_views: views per scene (10 in DeepMind's rooms datasets).
        fov_deg: horizontal field of view of every view, degrees.
    """

    room_size: float = 6.0
    wall_height: float = 3.0
    min_objects: int = 1
    max_objects: int = 3
    shapes: tuple[str, ...] = tuple(ROOM_SHAPES)
    object_size: tuple[float, float] = (0.5, 0.9)
    object_area: float = 1.6
    texture_source: str = "procedural"
    texture_scale: tuple[float, float] = (0.12, 0.35)
    light_energy: float = 3.0
    ambient: float = 0.5
    num_views: int = 10
    fov_deg: float = 60.0

    def __post_init__(self) -> None:
        unknown = sorted(set(self.shapes) - set(ROOM_SHAPES))
        if unknown or not self.shapes:
            raise ValueError(f"gqn_rooms.shapes has unknown shapes {unknown}; choose from {sorted(ROOM_SHAPES)}")
        if not 0 <= self.min_objects <= self.max_objects:
            raise ValueError(f"gqn_rooms.min_objects ({self.min_objects}) must lie in [0, max_objects "
                             f"({self.max_objects})]")
        if self.texture_source not in ("procedural", "assets", "none"):
            raise ValueError(f"gqn_rooms.texture_source = {self.texture_source!r}; use 'procedural', 'assets' or 'none'")
        if self.num_views < 1:
            raise ValueError(f"gqn_rooms.num_views must be >= 1, got {self.num_views}")
        if not 0 < self.object_size[0] <= self.object_size[1] < self.room_size / 2:
            raise ValueError(f"gqn_rooms.object_size {self.object_size} must be increasing, positive and smaller "
                             f"than half the room ({self.room_size / 2} m)")


def z_rotation(angle: float) -> tuple[float, float, float, float]:
    """Quaternion (w, x, y, z) of a turn by `angle` radians about the world z axis."""
    return (math.cos(angle / 2.0), 0.0, 0.0, math.sin(angle / 2.0))


def random_color(rng: np.random.Generator, saturation: tuple[float, float] = (0.5, 0.95),
                 value: tuple[float, float] = (0.45, 0.9)) -> tuple[float, float, float]:
    """A random linear RGB colour: uniform hue, saturation and value in the given ranges."""
    rgb = colorsys.hsv_to_rgb(float(rng.random()), float(rng.uniform(*saturation)), float(rng.uniform(*value)))
    return as_tuple(rgb, 3)


def _surface(rng: np.random.Generator, settings: RoomSettings, textures: tuple[str, ...],
             value: tuple[float, float]) -> MaterialSpec:
    """Material of the walls or the floor: a muted colour, textured per `settings.texture_source`."""
    color = random_color(rng, saturation=(0.25, 0.8), value=value)
    texture = None
    if settings.texture_source == "procedural":
        texture = f"procedural:{PROCEDURAL_KINDS[int(rng.integers(len(PROCEDURAL_KINDS)))]}:{int(rng.integers(1 << 30))}"
    elif settings.texture_source == "assets":
        texture = textures[int(rng.integers(len(textures)))]
    return MaterialSpec(color=color, texture=texture, texture_scale=float(rng.uniform(*settings.texture_scale)),
                        roughness=0.9)


def room_shell(rng: np.random.Generator, settings: RoomSettings) -> list[ObjectSpec]:
    """Floor and four walls (each its own instance; the walls share one material), as axis-aligned boxes.

    The inner faces of the walls lie at x, y = +-room_size / 2; the floor's top face at z = 0.
    """
    textures: tuple[str, ...] = ()
    if settings.texture_source == "assets":
        from render.catalogue import load_textures

        textures = load_textures()
        if not textures:
            from render.catalogue import AssetError

            raise AssetError("gqn_rooms.texture_source = 'assets' but the asset index holds no textures; "
                             "run `python -m pipeline.assets fetch` or use texture_source = 'procedural'")
    wall_material = _surface(rng, settings, textures, value=(0.45, 0.9))
    floor_material = _surface(rng, settings, textures, value=(0.3, 0.75))
    half, t, h = settings.room_size / 2.0, WALL_THICKNESS, settings.wall_height
    outer = settings.room_size + 2 * t
    shell = [ObjectSpec(
        name="floor", mesh=MeshSpec(f"box:{outer:g},{outer:g},{FLOOR_THICKNESS:g}", normalize=False),
        material=floor_material, class_name="floor", location=(0.0, 0.0, -FLOOR_THICKNESS / 2.0),
    )]
    walls = {  # name: (centre x, centre y, size x, size y)
        "wall_north": (0.0, half + t / 2, outer, t),
        "wall_south": (0.0, -half - t / 2, outer, t),
        "wall_east": (half + t / 2, 0.0, t, settings.room_size),
        "wall_west": (-half - t / 2, 0.0, t, settings.room_size),
    }
    for name, (x, y, sx, sy) in walls.items():
        shell.append(ObjectSpec(name=name, mesh=MeshSpec(f"box:{sx:g},{sy:g},{h:g}", normalize=False),
                                material=wall_material, class_name="wall", location=(x, y, h / 2.0)))
    return shell


def place_on_floor(rng: np.random.Generator, count: int, radii: list[float], bound: float, square: bool,
                   keep_out: list[tuple[np.ndarray, float]] | None = None) -> list[np.ndarray]:
    """Non-overlapping footprints: (x, y) centres of discs of `radii` inside a disc (or square) of half-size `bound`.

    Rejection sampling, bounded: when crowded, the required gap shrinks instead of looping forever.
    """
    placed: list[tuple[np.ndarray, float]] = list(keep_out or [])
    centres: list[np.ndarray] = []
    for k in range(count):
        slack = 1.0
        while True:
            found = None
            for _ in range(100):
                limit = max(bound - radii[k], 0.0)
                if square:
                    c = rng.uniform(-limit, limit, size=2)
                else:
                    r, a = limit * math.sqrt(float(rng.random())), float(rng.uniform(0, 2 * math.pi))
                    c = np.array([r * math.cos(a), r * math.sin(a)])
                if all(np.linalg.norm(c - p) >= slack * (radii[k] + q) for p, q in placed):
                    found = c
                    break
            if found is not None:
                break
            slack *= 0.8
        placed.append((found, radii[k]))
        centres.append(found)
    return centres


def room_objects(rng: np.random.Generator, settings: RoomSettings, square: bool) -> list[ObjectSpec]:
    """1-3 (per settings) primitives of random shape, size, colour and turn, standing on the floor."""
    count = int(rng.integers(settings.min_objects, settings.max_objects + 1))
    shapes = [settings.shapes[int(rng.integers(len(settings.shapes)))] for _ in range(count)]
    sizes = [float(rng.uniform(*settings.object_size)) for _ in range(count)]
    radii = [0.75 * s for s in sizes]  # footprint radius with a little room around it
    bound = settings.room_size / 2.0 - 0.2 if square else settings.object_area
    centres = place_on_floor(rng, count, radii, bound, square)
    objects = []
    for k, (shape, size, centre) in enumerate(zip(shapes, sizes, centres, strict=True)):
        objects.append(ObjectSpec(
            name=f"object_{k:02d}",
            mesh=MeshSpec(f"primitive:{shape}", normalize=False),
            material=MaterialSpec(color=random_color(rng), roughness=float(rng.uniform(0.4, 0.9))),
            class_name=shape,
            location=(float(centre[0]), float(centre[1]), size * ROOM_SHAPES[shape] / 2.0),
            quaternion=as_tuple(z_rotation(float(rng.uniform(0, 2 * math.pi))), 4),
            scale=(size, size, size),
        ))
    return objects


def sun_light(rng: np.random.Generator, energy: float, elevation_deg: tuple[float, float] = (45.0, 75.0)) -> LightSpec:
    """A sun shining from a random azimuth and an elevation in `elevation_deg` (location 10 m from the origin)."""
    azimuth = float(rng.uniform(0, 2 * math.pi))
    elevation = math.radians(float(rng.uniform(*elevation_deg)))
    return LightSpec(kind="SUN", location=as_tuple(camera.on_sphere(np.zeros(3), 10.0, azimuth, elevation), 3),
                     energy=energy)


def _room_scene(rng: np.random.Generator, settings: RoomSettings, square: bool,
                place_views) -> SceneSpec:
    shell = room_shell(rng, settings)
    objects = room_objects(rng, settings, square)
    light = sun_light(rng, settings.light_energy)
    views = place_views(objects)
    return SceneSpec(
        objects=tuple(shell + objects),
        lights=(light,),
        views=tuple(views),
        classes=("floor", "wall", *ROOM_SHAPES),
        world=WorldSpec(color=(0.75, 0.85, 1.0), strength=settings.ambient),
    )


@gin.configurable(denylist=["rng", "index"])
def gqn_rooms_ring_camera(rng: np.random.Generator, index: int, ring_radius: float = 2.4,
                          camera_height: float = 1.0, look_at_height: float = 0.4,
                          evenly_spaced: bool = False) -> SceneSpec:
    """A GQN room seen from a ring around its centre (DeepMind's rooms_ring_camera).

    Views: `gqn_rooms.num_views` cameras at height `camera_height` on a circle of `ring_radius` around the room's
    centre, each looking at (0, 0, `look_at_height`) (a slight downward pitch). View v stands at azimuth
    `phi_v`: independent uniform angles, in the order drawn (or, with `evenly_spaced`, a random start plus
    v * 2 pi / num_views).

    Args:
        rng: the sample's generator (seeded from the dataset seed and `index`).
        index: sample index (unused: every room is drawn from `rng` alone).
        ring_radius: radius of the camera ring, metres; objects stay within `gqn_rooms.object_area` of the centre.
        camera_height: height of the cameras above the floor, metres.
        look_at_height: height of the point every camera looks at, metres.
        evenly_spaced: spread the views evenly around the ring instead of at random azimuths.
    """
    del index
    settings = RoomSettings()
    if not settings.object_area + settings.object_size[1] / 2 < ring_radius < settings.room_size / 2:
        raise ValueError(f"gqn_rooms_ring_camera.ring_radius = {ring_radius} must lie between the objects' area "
                         f"({settings.object_area} m + half an object) and the walls ({settings.room_size / 2} m)")
    target = np.array([0.0, 0.0, look_at_height])

    def views(_objects: list[ObjectSpec]) -> list[ViewSpec]:
        n = settings.num_views
        if evenly_spaced:
            angles = float(rng.uniform(0, 2 * math.pi)) + 2 * math.pi * np.arange(n) / n
        else:
            angles = rng.uniform(0, 2 * math.pi, size=n)
        centre = np.array([0.0, 0.0, camera_height])  # the ring: elevation 0 around a point at camera height
        return [ViewSpec(location=as_tuple(camera.on_sphere(centre, ring_radius, float(a), 0.0), 3),
                         look_at=as_tuple(target, 3), fov_deg=settings.fov_deg) for a in angles]

    return _room_scene(rng, settings, square=False, place_views=views)


@gin.configurable(denylist=["rng", "index"])
def gqn_rooms_free_camera(rng: np.random.Generator, index: int, camera_height: tuple[float, float] = (0.6, 1.4),
                          pitch_deg: tuple[float, float] = (-30.0, 10.0), wall_margin: float = 0.4,
                          object_margin: float = 0.3) -> SceneSpec:
    """A GQN room seen from cameras anywhere inside it (DeepMind's rooms_free_camera).

    Views: each of `gqn_rooms.num_views` cameras stands at a uniform (x, y) at least `wall_margin` from the walls
    and `object_margin` clear of every object's footprint, at a uniform height in `camera_height`, with a
    uniform yaw and a pitch uniform in `pitch_deg`; its look-at point is 1 m along that direction. Objects may
    stand anywhere on the floor.

    Args:
        rng: the sample's generator (seeded from the dataset seed and `index`).
        index: sample index (unused).
        camera_height: (min, max) camera height, metres.
        pitch_deg: (min, max) pitch of the viewing direction, degrees (negative looks down).
        wall_margin: smallest distance from a camera to a wall, metres.
        object_margin: smallest distance from a camera to an object's footprint, metres.
    """
    del index
    settings = RoomSettings()
    if not -90.0 < pitch_deg[0] <= pitch_deg[1] < 90.0:
        raise ValueError(f"gqn_rooms_free_camera.pitch_deg = {pitch_deg} must be increasing within (-90, 90)")
    if not 0 < wall_margin < settings.room_size / 2:
        raise ValueError(f"gqn_rooms_free_camera.wall_margin = {wall_margin} must lie in (0, room_size / 2)")

    def views(objects: list[ObjectSpec]) -> list[ViewSpec]:
        keep_out = [(np.asarray(o.location[:2]), 0.5 * o.scale[0] * math.sqrt(2) + object_margin) for o in objects]
        out = []
        for _ in range(settings.num_views):
            xy = place_on_floor(rng, 1, [0.0], settings.room_size / 2.0 - wall_margin, True, keep_out)[0]
            z = float(rng.uniform(*camera_height))
            yaw = float(rng.uniform(-math.pi, math.pi))
            pitch = math.radians(float(rng.uniform(*pitch_deg)))
            location = np.array([xy[0], xy[1], z])
            look = camera.on_sphere(location, 1.0, yaw, pitch)  # 1 m along (yaw, pitch)
            out.append(ViewSpec(location=as_tuple(location, 3), look_at=as_tuple(look, 3),
                                fov_deg=settings.fov_deg))
        return out

    return _room_scene(rng, settings, square=True, place_views=views)


#: The six face-to-face steps between neighbouring cubes.
_STEPS = np.array([[1, 0, 0], [-1, 0, 0], [0, 1, 0], [0, -1, 0], [0, 0, 1], [0, 0, -1]])


def shepard_metzler_cells(rng: np.random.Generator, num_parts: int) -> np.ndarray:
    """Integer cells (num_parts, 3) of a Shepard-Metzler chain: each cube touches the previous one face to face.

    A self-avoiding random walk on the unit grid; a walk that traps itself restarts (bounded attempts).
    """
    for _ in range(100):
        cells = [np.zeros(3, dtype=np.int64)]
        while len(cells) < num_parts:
            occupied = {tuple(c) for c in cells}
            free = [s for s in _STEPS if tuple(cells[-1] + s) not in occupied]
            if not free:
                break
            cells.append(cells[-1] + free[int(rng.integers(len(free)))])
        if len(cells) == num_parts:
            return np.stack(cells)
    raise RuntimeError(f"could not grow a {num_parts}-cube chain in 100 attempts")


@gin.configurable(denylist=["rng", "index"])
def gqn_shepard_metzler(rng: np.random.Generator, index: int, num_parts: int = 7, cube_size: float = 0.3,
                        num_views: int = 15, camera_distance: float = 2.2, max_pitch_deg: float = 80.0,
                        fov_deg: float = 40.0, light_energy: float = 3.0, fill_ratio: float = 0.5,
                        background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> SceneSpec:
    """A Shepard-Metzler assembly of `num_parts` cubes (DeepMind's shepard_metzler_5_parts / _7_parts).

    One object (one instance id, class "cube") per cube, each in its own random colour; the assembly is centred
    on the origin. Views: `num_views` cameras at `camera_distance` from the origin, at uniform random
    directions on the sphere with |pitch| <= `max_pitch_deg`, each looking at the origin; view v is the v-th
    direction drawn.

    Args:
        rng: the sample's generator.
        index: sample index (unused).
        num_parts: cubes in the chain (5 or 7 in DeepMind's data).
        cube_size: side of one cube, metres.
        num_views: views per scene (15 in DeepMind's data).
        camera_distance: distance from the assembly's centre to every camera, metres.
        max_pitch_deg: cameras stay this far from the poles (the up vector is undefined there).
        fov_deg: horizontal field of view, degrees.
        light_energy: strength of the key sun light (random azimuth, elevation 20-80 degrees).
        fill_ratio: strength of a second sun from the opposite side and a third from below, relative to the key
            light (they light the faces the key light misses, since the black background gives no ambient light).
        background: linear RGB of the world behind the object (black in DeepMind's data); it lights the scene too.
    """
    del index
    if num_parts < 1 or num_views < 1:
        raise ValueError(f"gqn_shepard_metzler.num_parts ({num_parts}) and num_views ({num_views}) must be >= 1")
    cells = shepard_metzler_cells(rng, num_parts).astype(np.float64)
    centre = 0.5 * (cells.min(axis=0) + cells.max(axis=0))
    objects = tuple(
        ObjectSpec(name=f"cube_{k:02d}", mesh=MeshSpec("primitive:cube", normalize=False),
                   material=MaterialSpec(color=random_color(rng, value=(0.5, 0.95)), roughness=0.7),
                   class_name="cube", location=as_tuple((cell - centre) * cube_size, 3),
                   scale=(cube_size, cube_size, cube_size))
        for k, cell in enumerate(cells)
    )
    sin_max = math.sin(math.radians(max_pitch_deg))
    views = []
    for _ in range(num_views):
        yaw = float(rng.uniform(-math.pi, math.pi))
        pitch = math.asin(float(rng.uniform(-sin_max, sin_max)))  # uniform on the sphere's band
        location = camera.on_sphere(np.zeros(3), camera_distance, yaw, pitch)
        views.append(ViewSpec(location=as_tuple(location, 3), look_at=(0.0, 0.0, 0.0), fov_deg=fov_deg))
    key = sun_light(rng, light_energy, elevation_deg=(20.0, 80.0))
    fill = LightSpec(kind="SUN", location=(-key.location[0], -key.location[1], 0.5 * abs(key.location[2])),
                     energy=fill_ratio * light_energy)
    below = LightSpec(kind="SUN", location=(0.3 * key.location[1], -0.3 * key.location[0], -10.0),
                      energy=0.6 * fill_ratio * light_energy)
    return SceneSpec(objects=objects, lights=(key, fill, below), views=tuple(views), classes=("cube",),
                     world=WorldSpec(color=as_tuple(background, 3), strength=1.0))
