"""Generators for render tests only, registered with gin by a test gin file's `import tests.render.spec_generators`.

`probe_scene` exercises what the real generators do not all use: per-view and per-sample records, a view with its
own light, a declared split, and (on request) a sample that disagrees with the first one.
"""

import math

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

SPLIT_CYCLE = ("train", "val", "test")


@gin.configurable(denylist=["rng", "index"])
def probe_scene(rng: np.random.Generator, index: int, num_views: int = 3, light_view: int = -1,
                declare_split: bool = True, disagree_at: int = -1, disagree_with: str = "view_records") -> SceneSpec:
    """A cube and a sphere on a grey floor, seen from `num_views` cameras on a ring around the origin.

    Args:
        rng: the sample's generator.
        index: sample index; with `declare_split` the split cycles train, val, test by index.
        num_views: cameras per sample, evenly spaced in azimuth from a random start, 25 degrees up, 3 m out.
        light_view: the view that gets its own red point light instead of the sample's sun (-1: none).
        declare_split: declare a split per sample (else the index % 12 rule).
        disagree_at: from this sample index on, the samples disagree with the first one in `disagree_with`
            ("view_records", "sample_records", "views" or "split"); -1 never.
        disagree_with: the field that changes.
    """
    start = float(rng.uniform(0.0, 2.0 * math.pi))
    offset = as_tuple(rng.uniform(-0.2, 0.2, size=3), 3)
    odd = 0 <= disagree_at <= index
    objects = (
        ObjectSpec(name="floor", mesh=MeshSpec("box:6,6,0.1", normalize=False),
                   material=MaterialSpec(color=(0.5, 0.5, 0.5)), class_name="floor", location=(0.0, 0.0, -0.55)),
        ObjectSpec(name="cube", mesh=MeshSpec("primitive:cube"), material=MaterialSpec(color=(0.2, 0.4, 0.8)),
                   class_name="cube", location=as_tuple(np.array([-0.6, 0.0, 0.0]) + offset, 3)),
        ObjectSpec(name="sphere", mesh=MeshSpec("primitive:sphere"), material=MaterialSpec(color=(0.8, 0.7, 0.2)),
                   class_name="sphere", location=(0.6, 0.0, 0.0)),
    )
    n = num_views + (1 if odd and disagree_with == "views" else 0)
    views = []
    for v in range(n):
        azimuth, elevation, radius = start + 2.0 * math.pi * v / n, math.radians(25.0), 3.0
        records = {"azimuth_deg": math.degrees(azimuth), "elevation_deg": 25.0, "radius_m": radius}
        if odd and disagree_with == "view_records":
            records["offset"] = offset
        light = None
        if v == light_view:
            light = LightSpec(kind="POINT", location=as_tuple(camera.on_sphere(np.zeros(3), 2.5, azimuth, 0.6), 3),
                              energy=300.0, color=(1.0, 0.2, 0.2))
        views.append(ViewSpec(location=as_tuple(camera.on_sphere(np.zeros(3), radius, azimuth, elevation), 3),
                              look_at=(0.0, 0.0, 0.0), fov_deg=50.0, records=records, light=light))
    sun = LightSpec(kind="SUN", location=as_tuple(camera.on_sphere(np.zeros(3), 10.0, 0.5, 1.0), 3), energy=3.0)
    sample_records = {"offset": offset, "start_deg": math.degrees(start)}
    if odd and disagree_with == "sample_records":
        sample_records["offset"] = offset[:2]
    split = SPLIT_CYCLE[index % 3] if declare_split else None
    if odd and disagree_with == "split":
        split = None if declare_split else "train"
    return SceneSpec(objects=objects, lights=(sun,), views=tuple(views), classes=("floor", "cube", "sphere"),
                     world=WorldSpec(color=(0.3, 0.3, 0.3), strength=0.3), records=sample_records, split=split)
