"""Plain-data description of a scene to render: what to build, not how.

Generators return a `SceneSpec`; `render.blender_scene` turns it into Blender objects. Keeping this
Blender-free lets generators be tested (and reasoned about) without Blender.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from core.samples import SPLITS

#: Built-in meshes that need no assets; `MeshSpec.source` is "primitive:<name>".
PRIMITIVES = ("cube", "sphere", "cylinder", "cone", "torus", "monkey")

#: A record's value: a number, or a (nested) tuple of numbers of a fixed shape.
RecordValue = float | tuple
#: Records as a spec stores them: (name, value) pairs sorted by name, so specs stay hashable and compare equal
#: whatever order a generator listed them in.
Records = tuple[tuple[str, RecordValue], ...]


def _record_value(name: str, value: object) -> RecordValue:
    try:
        raw = np.asarray(value)
    except ValueError as err:  # ragged nesting
        raise ValueError(f"record {name!r} must be a number or a fixed-shape tuple of numbers, got {value!r}") from err
    # ints and floats only: a string or a bool that numpy would turn into a number is a generator's bug
    if raw.dtype.kind not in "iuf" or raw.size == 0:
        raise ValueError(f"record {name!r} must be a number or a fixed-shape tuple of numbers, got {value!r}")
    array = raw.astype(np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"record {name!r} must hold finite numbers, got {value!r}")
    return float(array) if array.ndim == 0 else _nested_tuple(array.tolist())


def _nested_tuple(values: list) -> tuple:
    return tuple(_nested_tuple(v) if isinstance(v, list) else float(v) for v in values)


def make_records(values: Mapping[str, object] | Records) -> Records:
    """Normalises records given as a mapping (or pairs) to sorted (name, float or tuple of floats) pairs.

    Raises:
        ValueError: a name that is not a non-empty string, or a value that is not finite numbers.
    """
    pairs = values.items() if isinstance(values, Mapping) else values
    out = {}
    for name, value in pairs:
        if not isinstance(name, str) or not name:
            raise ValueError(f"record names must be non-empty strings, got {name!r}")
        out[name] = _record_value(name, value)
    return tuple(sorted(out.items()))


def record_shape(value: RecordValue) -> tuple[int, ...]:
    """Shape of a record value: () for a number, (3,) for a 3-tuple, ..."""
    return tuple(np.shape(value))


def records_json(records: Records) -> dict[str, float | list]:
    """Records as the sidecar writes them: name -> number or (nested) list."""
    return {name: (np.asarray(value).tolist() if isinstance(value, tuple) else value) for name, value in records}


@dataclass(frozen=True)
class MeshSpec:
    """Where a mesh comes from.

    Attributes:
        source: "primitive:<name>" (see PRIMITIVES), "box:<sx>,<sy>,<sz>" for an axis-aligned box of those
            sizes, or an absolute path to a mesh file (OBJ, PLY, STL, GLB/GLTF, OFF).
        normalize: scale the mesh so its largest bounding-box side is 1 and centre it (imported assets come
            in arbitrary units); primitives are already unit-sized.
        warp: amplitude of a smooth random deformation, as a fraction of the mesh size (0 = none).
        warp_seed: seed of that deformation.
    """

    source: str
    normalize: bool = True
    warp: float = 0.0
    warp_seed: int = 0


@dataclass(frozen=True)
class MaterialSpec:
    """A principled surface.

    Attributes:
        color: linear RGB base colour in [0, 1].
        texture: path of an image texture (box-projected), or None for a plain colour.
        texture_scale: texture repeats per metre.
        roughness: 0 (mirror) .. 1 (matte).
        emission: strength of an emission equal to the base colour (0 = none).
        keep_original: keep the materials a mesh file came with (its own textures) and ignore the rest.
        specular: strength of the specular layer (Principled "Specular IOR Level", 0 = purely diffuse); None
            keeps Blender's default (0.5), which takes ~1.5% of the light from the diffuse colour.
    """

    color: tuple[float, float, float]
    texture: str | None = None
    texture_scale: float = 1.0
    roughness: float = 0.6
    emission: float = 0.0
    keep_original: bool = False
    specular: float | None = None


@dataclass(frozen=True)
class ObjectSpec:
    """One mesh instance.

    Attributes:
        name: unique within the scene.
        mesh: where the geometry comes from.
        material: its surface.
        class_name: semantic class; its position in `SceneSpec.classes` + 1 is the semantic id.
        location: (3,) world position of the object origin, metres.
        quaternion: (4,) rotation (w, x, y, z).
        scale: (3,) scale applied after normalisation.
    """

    name: str
    mesh: MeshSpec
    material: MaterialSpec
    class_name: str
    location: tuple[float, float, float] = (0.0, 0.0, 0.0)
    quaternion: tuple[float, float, float, float] = (1.0, 0.0, 0.0, 0.0)
    scale: tuple[float, float, float] = (1.0, 1.0, 1.0)


@dataclass(frozen=True)
class LightSpec:
    """A light: "POINT", "SUN" or "AREA"; sun lights point from `location` towards the origin."""

    kind: str
    location: tuple[float, float, float]
    energy: float
    color: tuple[float, float, float] = (1.0, 1.0, 1.0)
    size: float = 0.5


@dataclass(frozen=True)
class ViewSpec:
    """One camera: where it stands, what it looks at, its horizontal field of view in degrees.

    Attributes:
        location: (3,) camera centre, metres.
        look_at: (3,) point on its optical axis.
        fov_deg: horizontal field of view, degrees.
        records: per-view numbers the generator wants in the sidecar (`views[i]["records"]`), e.g. the camera's
            azimuth and elevation in degrees or an object offset in metres: a mapping name -> number or tuple,
            stored as sorted pairs (`make_records`). Every view of a dataset must carry the same names and shapes
            (the layout in dataset.json declares them).
        light: a light used for this view *instead of* the sample's lights (the world light stays); None renders
            the view under the sample's lights.
        up: (3,) world direction the camera's up axis leans towards (its roll); None takes world z. Needed where
            a camera looks straight down or up (world z is then no guide), e.g. the pole of ENR's spiral.
        object_offset: (3,) metres every object of the sample is moved by for this view only (the camera stays
            where `location` says); None leaves the objects where the sample put them. ENR's translation sets.
    """

    location: tuple[float, float, float]
    look_at: tuple[float, float, float]
    fov_deg: float = 50.0
    records: Mapping[str, object] | Records = ()
    light: LightSpec | None = None
    up: tuple[float, float, float] | None = None
    object_offset: tuple[float, float, float] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", make_records(self.records))
        if self.light is not None and not isinstance(self.light, LightSpec):
            raise ValueError(f"ViewSpec.light must be a LightSpec or None, got {self.light!r}")
        for name in ("up", "object_offset"):
            value = getattr(self, name)
            if value is not None:
                vector = np.asarray(value, dtype=np.float64)
                if vector.shape != (3,) or not np.isfinite(vector).all():
                    raise ValueError(f"ViewSpec.{name} must be 3 finite numbers or None, got {value!r}")
                object.__setattr__(self, name, tuple(float(v) for v in vector))
        if self.up is not None and not np.linalg.norm(self.up) > 0:
            raise ValueError(f"ViewSpec.up must be a non-zero vector, got {self.up!r}")


#: Fill rules of a voxel grid (render.voxels.FILL_METHODS).
VOXEL_FILLS = ("closed", "carve", "auto")


@dataclass(frozen=True)
class VoxelSpec:
    """A solid occupancy grid of one mesh file, written into the sample folder as `<name>.binvox`.

    The grid is taken in the unit cube the renderer normalises a `MeshSpec(normalize=True)` mesh into
    (render/voxels.py), so an object of this mesh placed at the origin with unit scale and no rotation fills it.

    Attributes:
        name: the array's name in the layout and sidecar ("voxels"); the file is `<name>.binvox`.
        source: path of the mesh file (the object's `MeshSpec.source`).
        dim: voxels along each axis (64 or 32 for RenderNet).
        fill: "closed", "carve" or "auto" (render.voxels.voxelize_mesh).
    """

    name: str
    source: str
    dim: int = 64
    fill: str = "auto"

    def __post_init__(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"VoxelSpec.name must be an identifier (it names a file and a dataset), got {self.name!r}")
        if self.dim < 2:
            raise ValueError(f"VoxelSpec.dim must be >= 2, got {self.dim}")
        if self.fill not in VOXEL_FILLS:
            raise ValueError(f"VoxelSpec.fill = {self.fill!r}; use one of {VOXEL_FILLS}")


@dataclass(frozen=True)
class WorldSpec:
    """Background: a constant colour, or an equirectangular environment map when `environment` is set."""

    color: tuple[float, float, float] = (0.05, 0.05, 0.05)
    strength: float = 1.0
    environment: str | None = None


@dataclass(frozen=True)
class SceneSpec:
    """Everything needed to render one sample: content, cameras and the class vocabulary.

    Attributes:
        objects, lights, views, classes, world: the scene (semantic id of a class = its position + 1).
        records: per-sample numbers for the sidecar's top-level "records" (as `ViewSpec.records`).
        split: "train", "val" or "test" when the generator decides the split (by scene or object, never by
            view); None leaves it to the default rule `index % 12` of core.samples. A dataset's generator either
            declares a split for every sample or for none.
        voxels: per-sample voxel grids written beside the views (RenderNet's shape input); names unique.
    """

    objects: tuple[ObjectSpec, ...]
    lights: tuple[LightSpec, ...]
    views: tuple[ViewSpec, ...]
    classes: tuple[str, ...]
    world: WorldSpec = field(default_factory=WorldSpec)
    records: Mapping[str, object] | Records = ()
    split: str | None = None
    voxels: tuple[VoxelSpec, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "records", make_records(self.records))
        grids = [v.name for v in self.voxels]
        if len(set(grids)) != len(grids):
            raise ValueError(f"voxel grid names must be unique within a sample, got {grids}")
        if self.split is not None and self.split not in SPLITS:
            raise ValueError(f"SceneSpec.split = {self.split!r}; use one of {SPLITS} or None (the index % 12 rule)")
        names = [o.name for o in self.objects]
        if len(set(names)) != len(names):
            raise ValueError(f"object names must be unique within a scene, got {names}")
        unknown = sorted({o.class_name for o in self.objects} - set(self.classes))
        if unknown:
            raise ValueError(f"objects use classes {unknown} missing from the scene's class list {list(self.classes)}")
        if not self.views:
            raise ValueError("a scene needs at least one view")

    def semantic_id(self, class_name: str) -> int:
        return self.classes.index(class_name) + 1


def as_tuple(values: np.ndarray | list[float], n: int) -> tuple[float, ...]:
    """Plain-float tuple of length `n` (specs hold no numpy scalars so they compare and serialise cleanly)."""
    out = tuple(float(v) for v in np.asarray(values, dtype=np.float64).reshape(-1))
    if len(out) != n:
        raise ValueError(f"expected {n} numbers, got {len(out)}")
    return out
