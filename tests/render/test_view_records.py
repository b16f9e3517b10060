"""Per-view and per-sample records, a view's own light and a declared split, from the spec into the sidecar and
the pixels (real renders of tests/render/spec_generators.py's probe scene)."""

import json
import math

import numpy as np
import pytest

from core.samples import SPLITS
from tests.render.helpers import TINY, load_sample, probe_gin, run_render, sample_dirs

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender


def _render(tmp_path, name, *bindings, count=2):
    args = ["-g", probe_gin(tmp_path), *TINY, "--count", str(count)]
    for b in bindings:
        args += ["-p", b]
    run_render(tmp_path, name, *args)
    return tmp_path / name


def test_a_views_own_light_changes_that_view_and_no_other(tmp_path):
    plain = _render(tmp_path, "plain")
    lit = _render(tmp_path, "lit", "probe_scene.light_view = 1")
    for a, b in zip(sample_dirs(plain), sample_dirs(lit), strict=True):
        side_a, views_a = load_sample(a)
        side_b, views_b = load_sample(b)
        assert (a / "view_00.exr").read_bytes() == (b / "view_00.exr").read_bytes()
        assert (a / "view_02.exr").read_bytes() == (b / "view_02.exr").read_bytes()
        rgb = [np.stack([v[c] for c in "RGB"], -1) for v in (views_a[1], views_b[1])]
        hit = views_b[1]["instance"] > 0
        red_gain = rgb[1][hit][:, 0].mean() / max(rgb[0][hit][:, 0].mean(), 1e-6)
        assert red_gain > 1.0 and rgb[1][hit][:, 2].mean() < rgb[0][hit][:, 2].mean()  # red light, no blue sun
        for c in ("instance", "semantic"):  # labels do not depend on light
            assert np.array_equal(views_a[1][c], views_b[1][c])
        assert "light" not in side_a["views"][1] and "light" not in side_b["views"][0]
        light = side_b["views"][1]["light"]
        assert light["type"] == "POINT" and light["color"] == [1.0, 0.2, 0.2] and light["energy"] == 300.0
        assert side_b["lights"] == side_a["lights"]  # the sample's own lights are unchanged


def test_records_and_split_reach_the_sidecar(tmp_path):
    ds = _render(tmp_path, "rec", count=3)
    for k, sample in enumerate(sample_dirs(ds)):
        sidecar = json.loads((sample / "sample.json").read_text())
        assert sidecar["split"] == ("train", "val", "test")[k] and sidecar["split"] in SPLITS
        assert sorted(sidecar["records"]) == ["offset", "start_deg"] and len(sidecar["records"]["offset"]) == 3
        start = sidecar["records"]["start_deg"]
        for v, view in enumerate(sidecar["views"]):
            rec = view["records"]
            assert rec["azimuth_deg"] == pytest.approx(start + 120.0 * v)
            assert (rec["elevation_deg"], rec["radius_m"]) == (25.0, 3.0)
            # the records describe the camera the view was rendered from
            x, y, z = view["viewpoint_gqn"][:3]
            assert math.degrees(math.atan2(y, x)) % 360 == pytest.approx(rec["azimuth_deg"] % 360)
            assert math.hypot(x, y, z) == pytest.approx(rec["radius_m"])
    no_split = _render(tmp_path, "nosplit", "probe_scene.declare_split = False", count=1)
    assert "split" not in json.loads((sample_dirs(no_split)[0] / "sample.json").read_text())
