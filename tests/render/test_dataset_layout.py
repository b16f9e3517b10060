"""dataset.json declares the layout (core.layout) from sample 0 before rendering, and every sample must fit it."""

import json

import gin
import numpy as np
import pytest

from core.layout import Layout, read_layout
from render import seeding
from render.declared_layout import LayoutMismatchError, check, declare
from render.generators.gqn import gqn_rooms_ring_camera
from tests.render.helpers import TINY, load_sample, probe_gin, run_render, sample_dirs
from tests.render.spec_generators import probe_scene

#: canonical EXR channel names of each declared channel (docs/formats.md §1)
EXR_NAMES = {"rgb": {"R", "G", "B"}, "depth": {"depth"}, "instance": {"instance"}, "semantic": {"semantic"},
             "normal": {"normal.X", "normal.Y", "normal.Z"}}


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _assert_layout_matches_samples(dataset_dir):
    layout = read_layout(dataset_dir)
    info = json.loads((dataset_dir / "dataset.json").read_text())
    assert info["format_version"] == 2 and layout is not None
    for sample in sample_dirs(dataset_dir):
        sidecar = json.loads((sample / "sample.json").read_text())
        assert len(sidecar["views"]) == layout.views
        for view in sidecar["views"]:
            assert view["file"].endswith("." + layout.image_format)
            assert {k: list(np.shape(v)) for k, v in view["records"].items()} == \
                {k: list(v) for k, v in layout.view_records.items()}
        assert {k: list(np.shape(v)) for k, v in sidecar["records"].items()} == \
            {k: list(v) for k, v in layout.sample_records.items()}
        assert ("split" in sidecar) == (layout.split == "declared")
        if layout.image_format == "exr":
            _, views = load_sample(sample)
            wanted = set().union(*(EXR_NAMES[c] for c in layout.channels))
            assert all(wanted <= set(v) for v in views) and "A" in views[0]
    return layout


@pytest.mark.blender
def test_single_view_selfstudy_declares_sample_major(tmp_path):
    run_render(tmp_path, "single", *TINY, "--count", "2")
    layout = _assert_layout_matches_samples(tmp_path / "single")
    assert layout == Layout(kind="sample-major", views=1, image_format="exr",
                            channels=("rgb", "depth", "instance", "semantic", "normal"))
    run_render(tmp_path, "png", "-p", "rendering.resolution = 16", "-p", "rendering.render_samples = 1", "--count", "1")
    assert _assert_layout_matches_samples(tmp_path / "png").channels == ("rgb",)


@pytest.mark.blender
def test_multi_view_rooms_declare_scene_major(tmp_path):
    run_render(tmp_path, "rooms", "-g", "gqn_rooms_ring_camera", *TINY, "-p", "gqn_rooms.num_views = 3",
               "--count", "2")
    layout = _assert_layout_matches_samples(tmp_path / "rooms")
    assert (layout.kind, layout.views, layout.split) == ("scene-major", 3, "index % 12")


@pytest.mark.blender
def test_records_and_declared_split_are_in_the_layout(tmp_path):
    run_render(tmp_path, "probe", "-g", probe_gin(tmp_path), *TINY, "-p", "rendering.resolution = 16", "--count", "2")
    layout = _assert_layout_matches_samples(tmp_path / "probe")
    assert layout.view_records == {"azimuth_deg": (), "elevation_deg": (), "radius_m": ()}
    assert layout.sample_records == {"offset": (3,), "start_deg": ()} and layout.split == "declared"


@pytest.mark.blender
@pytest.mark.parametrize("field", ["view_records", "sample_records", "views", "split"])
def test_a_generator_whose_samples_disagree_fails_naming_generator_and_field(tmp_path, field):
    proc = run_render(tmp_path, "odd", "-g", probe_gin(tmp_path), *TINY, "-p", "rendering.resolution = 16",
                      "-p", "probe_scene.disagree_at = 1", "-p", f"probe_scene.disagree_with = '{field}'",
                      "--count", "3", check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "generator 'probe' sample 1" in proc.stderr and f"{field} is" in proc.stderr
    assert [p.name for p in sample_dirs(tmp_path / "odd")] == ["000000"]  # nothing of the odd sample is kept


@pytest.mark.blender
def test_a_format_1_dataset_json_is_resumed_and_kept(tmp_path):
    run_render(tmp_path, "old", *TINY, "-p", "rendering.resolution = 16", "--count", "1")
    path = tmp_path / "old" / "dataset.json"
    info = json.loads(path.read_text())
    del info["layout"]
    info["format_version"] = 1
    path.write_text(json.dumps(info))
    before = path.read_bytes()
    run_render(tmp_path, "old", *TINY, "-p", "rendering.resolution = 16", "--count", "2")
    assert path.read_bytes() == before and len(sample_dirs(tmp_path / "old")) == 2


@pytest.mark.blender
def test_a_dataset_json_declaring_another_layout_is_refused(tmp_path):
    run_render(tmp_path, "ds", *TINY, "-p", "rendering.resolution = 16", "--count", "1")
    path = tmp_path / "ds" / "dataset.json"
    info = json.loads(path.read_text())
    info["layout"]["views"], info["layout"]["kind"] = 4, "scene-major"
    path.write_text(json.dumps(info))
    proc = run_render(tmp_path, "ds", *TINY, "-p", "rendering.resolution = 16", "--count", "2", check=False)
    assert proc.returncode != 0 and "another layout" in proc.stderr and "views" in proc.stderr


def test_declaration_follows_the_config_and_check_names_the_field():
    with gin.unlock_config():
        gin.bind_parameter("gqn_rooms.num_views", 1)
    one_view = gqn_rooms_ring_camera(seeding.sample_rng(0, 0), 0)
    assert declare(one_view, "exr", None, "rooms").kind == "sample-major"
    forced = declare(one_view, "exr", "scene-major", "rooms")  # multi-view by config, one view per scene
    assert (forced.kind, forced.views) == ("scene-major", 1)
    spec0 = probe_scene(seeding.sample_rng(0, 0), 0, disagree_at=1)
    layout = declare(spec0, "png", None, "probe")
    check(probe_scene(seeding.sample_rng(0, 5), 5), layout, "probe", 5)  # same shapes: fits
    with pytest.raises(LayoutMismatchError, match=r"generator 'probe' sample 2 .* view_records is \{azimuth_deg"):
        check(probe_scene(seeding.sample_rng(0, 2), 2, disagree_at=1), layout, "probe", 2)
