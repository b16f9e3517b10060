"""The selfstudy object datasets: one or several objects, floating, seen by one camera.

The four variant bits Texture-Color-Viewpoint-Lighting map to `material.use_texture`,
`material.color_variation`, `object.random_viewpoint` and `lighting.r` (config/render_single.gin).
"""

import colorsys
import math

import gin
import numpy as np
from core import camera

from render.catalogue import class_reference_colors, load_catalogue, mesh_spec
from render.settings import LightingSettings, MaterialSettings, ObjectSettings, SampleSettings
from render.spec import LightSpec, MaterialSpec, ObjectSpec, SceneSpec, ViewSpec, WorldSpec, as_tuple

PROCEDURAL_TEXTURES = ("noise", "checker", "wave", "voronoi")


def draw_material(rng: np.random.Generator, class_name: str, settings: MaterialSettings,
                  textures: tuple[str, ...] = ()) -> MaterialSpec:
    """Colour (and texture) of one object."""
    if settings.use_color_ref:
        modes = class_reference_colors(class_name, max(1, settings.num_modes), settings.color_intensity)
        base = modes[int(rng.integers(len(modes)))]
        h, s, v = colorsys.rgb_to_hsv(*base)
        h = (h + settings.color_variation * float(rng.uniform(-0.5, 0.5))) % 1.0
    else:
        h, s, v = float(rng.random()), float(rng.uniform(0.4, 0.95)), settings.color_intensity
    color = colorsys.hsv_to_rgb(h, s, v)
    texture = None
    if settings.use_texture:
        if settings.texture_source == "procedural":
            kind = PROCEDURAL_TEXTURES[int(rng.integers(len(PROCEDURAL_TEXTURES)))]
            texture = f"procedural:{kind}:{int(rng.integers(1 << 30))}"
        elif settings.texture_source == "assets":
            if not textures:
                raise ValueError("material.texture_source = 'assets' but the asset index holds no textures; "
                                 "run `python -m pipeline.assets fetch`")
            texture = textures[int(rng.integers(len(textures)))]
        else:
            raise ValueError(f"material.texture_source = {settings.texture_source!r}; use 'procedural' or 'assets'")
    return MaterialSpec(
        color=as_tuple(color, 3),
        texture=texture,
        texture_scale=float(rng.uniform(1.5, 4.0)),
        roughness=float(rng.uniform(0.3, 0.9)),
        emission=0.5 if settings.use_emission else 0.0,
    )


def draw_rotation(rng: np.random.Generator, amount: float) -> np.ndarray:
    """Canonical pose turned by a small yaw, blended towards a uniform rotation by `amount` in [0, 1]."""
    yaw = float(rng.uniform(-0.3, 0.3))
    base = np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])
    if amount <= 0:
        return base
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = amount * math.pi * float(rng.random())
    turn = np.concatenate([[math.cos(angle / 2)], math.sin(angle / 2) * axis])
    w1, x1, y1, z1 = turn
    w2, x2, y2, z2 = base
    q = np.array([
        w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
        w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
        w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
        w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
    ])
    return q / np.linalg.norm(q)


def key_light(rng: np.random.Generator, settings: LightingSettings) -> LightSpec:
    """Sun light from above-front-left, randomised by `lighting.r`."""
    azimuth = math.radians(-135.0) + settings.r * float(rng.uniform(-math.pi, math.pi))
    elevation = math.radians(50.0) + settings.r * float(rng.uniform(-0.6, 0.6))
    warmth = settings.r * float(rng.uniform(-0.15, 0.15))
    color = (1.0, 1.0 - abs(warmth) * (warmth > 0), 1.0 - abs(warmth) * (warmth < 0))
    energy = settings.energy * (1.0 + settings.r * float(rng.uniform(-0.4, 0.4)))
    return LightSpec(kind="SUN", location=as_tuple(camera.on_sphere(np.zeros(3), 5.0, azimuth, elevation), 3), energy=energy, color=as_tuple(color, 3))


def place_objects(rng: np.random.Generator, count: int, spread: float, min_gap: float) -> list[np.ndarray]:
    """Object centres on the z = 0 plane, at least `min_gap` apart (rejection sampling, bounded)."""
    if count == 1:
        return [np.zeros(3)]
    centres: list[np.ndarray] = []
    gap = min_gap
    while len(centres) < count:
        for _ in range(200):
            c = np.array([rng.uniform(-spread, spread), rng.uniform(-spread, spread), 0.0])
            if all(np.linalg.norm(c - o) >= gap for o in centres):
                centres.append(c)
                break
        else:  # crowded: relax the gap rather than loop forever
            gap *= 0.8
    return centres


@gin.configurable(denylist=["rng", "index"])
def selfstudy_scene(rng: np.random.Generator, index: int, mesh_override: str | None = None) -> SceneSpec:
    """One selfstudy sample: `sample.num_objs` objects in front of a plain background, one view.

    Args:
        rng: the sample's generator (seeded from the dataset seed and `index`).
        index: sample index; selects the mesh pool (`index % object.n_buckets`).
        mesh_override: path of a mesh file shown in place of every catalogue mesh (to check how one mesh
            renders); None draws from the catalogue.
    """
    obj_cfg, mat_cfg, light_cfg, sample_cfg = ObjectSettings(), MaterialSettings(), LightingSettings(), SampleSettings()
    catalogue = load_catalogue(obj_cfg.mesh_source)
    classes = catalogue.classes
    if sample_cfg.class_idxs is not None:
        bad = [i for i in sample_cfg.class_idxs if not 0 <= i < len(classes)]
        if bad:
            raise ValueError(f"sample.class_idxs {bad} out of range: source {obj_cfg.mesh_source!r} has "
                             f"{len(classes)} classes {list(classes)}")
        classes = tuple(classes[i] for i in sorted(set(sample_cfg.class_idxs)))
    textures: tuple[str, ...] = ()
    if mat_cfg.use_texture and mat_cfg.texture_source == "assets":
        from render.catalogue import load_textures
        textures = load_textures()
    if index >= obj_cfg.total_num_samples:
        raise ValueError(f"sample index {index} is beyond object.total_num_samples = {obj_cfg.total_num_samples}")
    bucket = index % obj_cfg.n_buckets
    size = 1.0 if sample_cfg.num_objs == 1 else 0.6
    objects = []
    for k, centre in enumerate(place_objects(rng, sample_cfg.num_objs, sample_cfg.spread, 1.1 * size)):
        class_name = classes[int(rng.integers(len(classes)))]
        pool = catalogue.pool(class_name, bucket, obj_cfg.n_buckets)
        source = pool[int(rng.integers(len(pool)))] if mesh_override is None else mesh_override
        scale = size * (1.0 + obj_cfg.random_scaling * rng.uniform(-0.5, 0.5, size=3))
        objects.append(ObjectSpec(
            name=f"object_{k:02d}",
            mesh=mesh_spec(source, warp=obj_cfg.random_warp, warp_seed=int(rng.integers(1 << 30))),
            material=draw_material(rng, class_name, mat_cfg, textures),
            class_name=class_name,
            location=as_tuple(centre, 3),
            quaternion=as_tuple(draw_rotation(rng, obj_cfg.random_viewpoint), 4),
            scale=as_tuple(scale, 3),
        ))
    distance = sample_cfg.camera_distance * (1.0 if sample_cfg.num_objs == 1 else 1.0 + sample_cfg.spread)
    elevation = math.radians(20.0)
    start = -math.pi / 2 if sample_cfg.num_views == 1 else float(rng.uniform(0, 2 * math.pi))
    views = []
    for v in range(sample_cfg.num_views):
        azimuth = start + 2 * math.pi * v / sample_cfg.num_views
        location = camera.on_sphere(np.zeros(3), distance, azimuth, elevation)
        views.append(ViewSpec(location=as_tuple(location, 3), look_at=(0.0, 0.0, 0.0), fov_deg=sample_cfg.fov_deg))
    return SceneSpec(
        objects=tuple(objects),
        lights=(key_light(rng, light_cfg),),
        views=tuple(views),
        classes=tuple(catalogue.classes),
        world=WorldSpec(color=(0.6, 0.6, 0.6), strength=light_cfg.ambient),
    )
