"""Gin-configurable settings of the render core and the selfstudy generator.

The scope names (`rendering`, `material`, `lighting`, `object`, `sample`, `batch`, `dataset`) are those of
the original selfstudy configs so their gin files and `-p` bindings keep working; the classes carry a
`Settings` suffix because `object` would shadow a builtin. Each class is instantiated where it is used, so
gin fills it from the active bindings; explicit fields (never **kwargs) let gin reject misspelt bindings.
"""

import dataclasses
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass

import gin


def check_types(settings: object, scope: str) -> None:
    """Refuses a binding of the wrong type with one message naming `scope.field`, the value and the type wanted.

    Gin passes bound values through unchecked, so `rendering.resolution = 'big'` would otherwise fail much later
    with a TypeError that names nothing. Ints are accepted where floats are wanted; bools are not ints here.
    """
    hints = typing.get_type_hints(type(settings))
    for f in dataclasses.fields(settings):
        value, wanted = getattr(settings, f.name), hints[f.name]
        options = typing.get_args(wanted) if typing.get_origin(wanted) in (types.UnionType, typing.Union) else (wanted,)
        plain = [t for t in options if isinstance(t, type)]
        if len(plain) != len(options):  # a Callable or a parametrised type: left to the code that uses it
            continue
        if type(None) in plain and value is None:
            continue
        if float in plain and isinstance(value, int) and not isinstance(value, bool):
            continue
        if bool not in plain and isinstance(value, bool) and (int in plain or float in plain):
            ok = False
        else:
            ok = isinstance(value, tuple(plain))
        if not ok:
            names = " or ".join("None" if t is type(None) else t.__name__ for t in plain)
            raise ValueError(f"{scope}.{f.name} = {value!r} has type {type(value).__name__}; it must be {names}")


@gin.configurable("rendering")
@dataclass(frozen=True)
class RenderingSettings:
    """How every view is rendered.

    Attributes:
        resolution: image width and height in pixels.
        renderer: render engine; only "cycles" (Cycles on the CPU or GPU) is supported, because EEVEE falls back
            to software OpenGL on machines without a GPU (~30 s a frame).
        render_samples: Cycles samples per pixel for the RGB.
        use_gpu: render on a CUDA/OptiX GPU when Blender finds one (falls back to the CPU with a warning).
        render_exr: write the canonical multilayer EXR (RGB, depth, instance, semantic, normals) per view;
            False writes an 8-bit sRGB PNG of the RGB only.
        adaptive_threshold: Cycles adaptive-sampling noise threshold (0 disables adaptive sampling).
        denoise: "none" or "cycles": Cycles' own Open Image Denoise pass at the end of each render call, fed
            the colour, albedo and normal of the same samples (needs a Blender whose Cycles has OIDN: the bpy
            wheel has, Debian's 3.4 has not). See docs/benchmarks.md for its cost.
        filter_width: pixel filter width in pixels (Blackman-Harris); labels come from one sample so they stay hard.
        denoise_quality: OIDN's "high", "balanced" or "fast" filter (fast costs half of high at 64x64; Blender
            before 4.1 always uses "high").
        max_bounces: most light bounces of a path (Cycles' default 12; simple diffuse rooms look the same with 3).
        albedo_pass: also write Cycles' Diffuse Color pass (the surface's diffuse base colour, linear, 0 where
            nothing was hit) into the canonical EXR as `albedo.R/G/B` (RenderNet's albedo target). Off by default,
            so datasets that do not ask for it keep their bytes.
    """

    resolution: int = 128
    renderer: str = "cycles"
    render_samples: int = 32
    use_gpu: bool = False
    render_exr: bool = False
    adaptive_threshold: float = 0.0
    denoise: str = "none"
    filter_width: float = 1.5
    denoise_quality: str = "high"
    max_bounces: int = 12
    albedo_pass: bool = False

    def __post_init__(self) -> None:
        check_types(self, "rendering")
        if self.renderer != "cycles":
            raise ValueError(f"rendering.renderer = {self.renderer!r} is not supported; use 'cycles'")
        if self.resolution < 1 or self.render_samples < 1:
            raise ValueError(
                f"rendering.resolution ({self.resolution}) and rendering.render_samples ({self.render_samples}) must be >= 1"
            )
        if self.denoise == "oidn":
            raise ValueError("rendering.denoise = 'oidn' (pyoidn after the render call) was replaced by 'cycles', the "
                             "same filter inside Cycles' render call; its pixels differ, so start a new dataset")
        if self.denoise not in ("none", "cycles"):
            raise ValueError(f"rendering.denoise = {self.denoise!r}; use 'none' or 'cycles'")
        if self.denoise_quality not in ("high", "balanced", "fast"):
            raise ValueError(f"rendering.denoise_quality = {self.denoise_quality!r}; use 'high', 'balanced' or 'fast'")
        if self.max_bounces < 0:
            raise ValueError(f"rendering.max_bounces must be >= 0, got {self.max_bounces}")
        if self.albedo_pass and not self.render_exr:
            raise ValueError("rendering.albedo_pass needs rendering.render_exr = True: PNG views carry colour only")


@gin.configurable("material")
@dataclass(frozen=True)
class MaterialSettings:
    """Object surfaces (the Texture and Color bits of the 12 selfstudy variants).

    Attributes:
        use_texture: cover objects with a texture instead of a plain colour.
        use_emission: add an emission equal to the base colour, so colour reads the same under any light.
        use_color_ref: draw colours around per-class reference colours (class is visible in colour);
            False draws hues uniformly.
        color_variation: 0 keeps the reference colour, 1 lets the hue wander over the whole circle.
        color_intensity: value (brightness) of the base colours, in [0, 1].
        num_modes: reference colours per class when `use_color_ref` is on.
        texture_source: "procedural" (Blender noise/checker/wave textures, no assets needed) or "assets"
            (image textures from the fetched asset index: `python -m pipeline.assets fetch`).
    """

    use_texture: bool = False
    use_emission: bool = False
    use_color_ref: bool = True
    color_variation: float = 0.0
    color_intensity: float = 0.8
    num_modes: int = 1
    texture_source: str = "procedural"

    def __post_init__(self) -> None:
        check_types(self, "material")



@gin.configurable("lighting")
@dataclass(frozen=True)
class LightingSettings:
    """Lights (the Lighting bit of the selfstudy variants).

    Attributes:
        r: randomness of the key light's direction: 0 = fixed, above-front-left; 1 = anywhere on the upper
            hemisphere. Its colour temperature and strength vary with it too.
        energy: strength of the key (sun) light in W/m^2.
        ambient: strength of the constant world light.
    """

    r: float = 0.0
    energy: float = 3.0
    ambient: float = 0.4

    def __post_init__(self) -> None:
        check_types(self, "lighting")



@gin.configurable("object")
@dataclass(frozen=True)
class ObjectSettings:
    """Which meshes appear and how they are posed (the Viewpoint bit of the selfstudy variants).

    Attributes:
        total_num_samples: size of the whole dataset; `render.py` refuses sample indices beyond it.
        n_buckets: meshes of each class are dealt into this many disjoint pools and sample `i` draws from
            pool `i % n_buckets`, so the val/test buckets (10, 11) show meshes never seen in training when a
            class has at least `n_buckets` meshes.
        random_scaling: anisotropic scale jitter: each axis is scaled by up to 1 +/- random_scaling / 2.
        random_viewpoint: 0 shows objects in their canonical pose (a slight turn); 1 rotates them uniformly.
        random_warp: amplitude of a smooth random deformation of the mesh, as a fraction of its size.
        mesh_source: "primitives" (no assets), "sweethome3d", "cgal", "shapenet" or "folder-<name>"
            (sources of the asset index, see docs/assets.md).
    """

    total_num_samples: int = 1000
    n_buckets: int = 12
    random_scaling: float = 0.0
    random_viewpoint: float = 0.0
    random_warp: float = 0.0
    mesh_source: str = "primitives"

    def __post_init__(self) -> None:
        check_types(self, "object")



@gin.configurable("sample")
@dataclass(frozen=True)
class SampleSettings:
    """Scene layout of one selfstudy sample.

    Attributes:
        num_objs: objects per image (1 for the single-object sets).
        class_idxs: indices into the sorted class list of the mesh source; None uses every class.
        out_dir: kept so the original configs parse; the output folder is `render.py -d NAME`.
        camera_distance: camera distance from the scene centre, metres (objects are about 1 m large).
        fov_deg: horizontal field of view of the camera, degrees.
        spread: half-width of the square in which multi-object scenes place objects, metres.
        num_views: cameras per sample; more than one puts them on a ring around the scene centre at the
            same distance and elevation, evenly spaced from a random start azimuth (multi-view object sets).
    """

    num_objs: int = 1
    class_idxs: tuple[int, ...] | None = None
    out_dir: str | None = None
    camera_distance: float = 2.4
    fov_deg: float = 40.0
    spread: float = 0.9
    num_views: int = 1

    def __post_init__(self) -> None:
        check_types(self, "sample")



@gin.configurable("batch")
@dataclass(frozen=True)
class BatchSettings:
    """Which samples one `render.py` call renders (its `--start/--count` flags override these).

    Attributes:
        num_samples: how many samples to render.
        idx_offset: index of the first one.
        cache_obj_frames: keep imported meshes in memory between samples of one process (bounded).
        bad_mesh: what a mesh that fails to import does to its sample: "skip" publishes the sample as skipped
            (its sidecar names the mesh and the error, it has no views, consolidation and validation list it)
            so the shard's other samples are kept; "redraw" logs the mesh with its path and draws the sample
            again from the same seed with that file left out (`skip=`; needs a generator that takes it, e.g.
            @enr_object), so every process redraws the same way and scene-major sets keep their scene count,
            falling back to "skip" after `max_redraws`; "fail" ends the run with the error. Not in the config
            hash: samples that render are the same either way.
        max_redraws: most redraws of one sample under "redraw".
    """

    num_samples: int = 10
    idx_offset: int = 0
    cache_obj_frames: bool = True
    bad_mesh: str = "skip"
    max_redraws: int = 5

    def __post_init__(self) -> None:
        check_types(self, "batch")
        if self.bad_mesh not in ("skip", "redraw", "fail"):
            raise ValueError(f"batch.bad_mesh = {self.bad_mesh!r}; use 'skip', 'redraw' or 'fail'")
        if self.max_redraws < 0:
            raise ValueError(f"batch.max_redraws must be >= 0, got {self.max_redraws}")



@gin.configurable("dataset")
@dataclass(frozen=True)
class DatasetSettings:
    """What kind of scenes a dataset holds.

    Attributes:
        generator: function (rng, index) -> SceneSpec drawing one scene, e.g. @selfstudy_scene or
            @gqn_rooms_scene.
        name: short name of the generator recorded in every sidecar.
        seed: dataset seed; sample i uses the seed derived from (seed, i).
        layout_kind: the layout dataset.json declares (docs/formats.md §1): "scene-major" (all views of a sample
            in one row, for multi-view generators even when a config renders one view a scene), "sample-major"
            (one view a sample), or None: scene-major exactly when the generator's sample 0 has several views.
    """

    generator: Callable | None = None
    name: str = "selfstudy"
    seed: int = 0
    layout_kind: str | None = None

    def __post_init__(self) -> None:
        check_types(self, "dataset")
        if self.layout_kind not in (None, "scene-major", "sample-major"):
            raise ValueError(f"dataset.layout_kind = {self.layout_kind!r}; use 'scene-major', 'sample-major' "
                             "or None (from the first sample's view count)")
