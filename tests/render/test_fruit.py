"""The fruit still-life twin: the real capture's camera tables, scene layout, the missing-assets error, a real render."""

import importlib
import math

import gin
import numpy as np
import pytest

from core.camera import project, yaw_pitch
from render import seeding
from render.catalogue import AssetError
from render.generators import fruit
from render.generators.fruit import VIEWS_8, VIEWS_12, _Item, fruit_still_life


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.fixture
def fake_assets(monkeypatch):
    items = {"fruit": [_Item("/nowhere/apples.obj", "fruit", (0.257, 0.257, 0.16)),
                       _Item("/nowhere/bowl.obj", "fruit", (0.32, 0.336, 0.141))],
             "food": [_Item("/nowhere/bread.obj", "food", (0.3, 0.12, 0.1))]}
    monkeypatch.setattr(fruit, "load_items", lambda classes: items)
    monkeypatch.setattr(fruit, "floor_textures", lambda ids: ("/nowhere/wood1.png",))
    return items


def test_view_tables_are_the_real_captures_square():
    assert len(VIEWS_12) == 12 and len(set(VIEWS_12)) == 12
    for x, y in VIEWS_12:
        assert {x, y} <= {-1.0, -0.5, 0.5, 1.0} and max(abs(x), abs(y)) == 1.0  # on the square's outline
    corners = {(x, y) for x in (-1.0, 1.0) for y in (-1.0, 1.0)}
    midpoints = {(0.0, 1.0), (0.0, -1.0), (1.0, 0.0), (-1.0, 0.0)}
    assert set(VIEWS_8) == corners | midpoints and len(VIEWS_8) == 8
    for table in (VIEWS_12, VIEWS_8):  # counter-clockwise order
        angles = np.unwrap([math.atan2(y, x) for x, y in table])
        assert (np.diff(angles) > 0).all()


@pytest.mark.parametrize("layout", [12, 8])
def test_cameras_stand_on_the_table_with_jitter_level_and_facing_the_centre(fake_assets, layout):
    for index in range(5):
        spec = fruit_still_life(seeding.sample_rng(0, index), index, layout=layout)
        table = VIEWS_12 if layout == 12 else VIEWS_8
        assert len(spec.views) == layout
        for view, (x, y) in zip(spec.views, table, strict=True):
            loc = np.array(view.location)
            assert np.all(np.abs(loc[:2] - 0.6 * np.array([x, y])) <= 0.03 + 1e-9)
            assert loc[2] == 0.0
            yaw, pitch = yaw_pitch(np.array(view.look_at) - loc)
            inward = math.atan2(-loc[1], -loc[0])
            assert abs(math.remainder(yaw - inward, 2 * math.pi)) <= math.radians(2) + 1e-9
            assert abs(pitch) <= math.radians(2) + 1e-9


def test_items_are_real_meshes_with_their_own_textures_standing_on_a_wooden_floor(fake_assets):
    for index in range(8):
        spec = fruit_still_life(seeding.sample_rng(0, index), index)
        items = [o for o in spec.objects if o.class_name not in ("floor", "wall")]
        assert 1 <= len(items) <= 3 and items[0].class_name == "fruit"
        for item in items:
            assert item.material.keep_original and item.mesh.normalize
            size = next(i.size_m for c in fake_assets.values() for i in c if i.path == item.mesh.source)
            assert item.scale[0] == pytest.approx(max(size))
            assert item.location[2] - size[2] / 2 == pytest.approx(-0.12)  # bottom on the floor
            assert math.hypot(*item.location[:2]) < 0.6  # inside the camera square
        floor = next(o for o in spec.objects if o.class_name == "floor")
        assert floor.material.texture == "/nowhere/wood1.png"
        assert sum(o.class_name == "wall" for o in spec.objects) == 2


def test_bad_layout_names_the_setting(fake_assets):
    with pytest.raises(ValueError, match="fruit_still_life.layout"):
        fruit_still_life(seeding.sample_rng(0, 0), 0, layout=10)


def test_missing_assets_raise_the_catalogues_asset_error_with_the_fix(tmp_path, monkeypatch):
    import paths

    monkeypatch.setenv("CACHE_DIR", str(tmp_path / "empty-cache"))
    importlib.reload(paths)
    try:
        with pytest.raises(AssetError, match="pipeline.assets fetch"):
            fruit_still_life(seeding.sample_rng(0, 0), 0)
    finally:
        monkeypatch.undo()
        importlib.reload(paths)


def test_render_py_reports_missing_assets_clearly(tmp_path):
    pytest.importorskip("bpy")
    from tests.render.helpers import run_render

    proc = run_render(tmp_path, "fruit", "-g", "fruit_still_life", "-p", "rendering.resolution = 16", "--count", "1",
                      env={"CACHE_DIR": str(tmp_path / "empty-cache")}, check=False)
    assert proc.returncode == 2
    assert "pipeline.assets fetch" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "fruit").exists()


@pytest.mark.blender
def test_real_fruit_render_labels_agree_with_the_stored_poses(tmp_path):
    """Needs the fetched assets (`python -m pipeline.assets fetch`); skipped without them."""
    pytest.importorskip("bpy")
    from core import asset_index as assets
    from tests.render.helpers import load_sample, run_render, sample_dirs

    try:
        assets.load_index()
    except (FileNotFoundError, assets.AssetError) as err:
        pytest.skip(f"asset index not fetched: {err}")
    res = 24
    run_render(tmp_path, "fruit", "-g", "fruit_still_life", "-p", f"rendering.resolution = {res}",
               "-p", "fruit_still_life.layout = 8", "-p", "fruit_still_life.max_items = 1", "--count", "1")
    (sample,) = sample_dirs(tmp_path / "fruit")
    sidecar, views = load_sample(sample)
    assert len(views) == 8
    (item,) = [o for o in sidecar["objects"] if o["class"] not in ("floor", "wall")]
    assert item["class"] == "fruit"
    hits = 0
    for cam, view in zip(sidecar["views"], views, strict=True):
        assert abs(cam["viewpoint_xyzyp"][4]) <= math.radians(2) + 1e-6 and cam["viewpoint_xyzyp"][2] == 0.0
        uv, z = project(np.array([item["centroid"]]), np.array(cam["K"]), np.array(cam["cam_to_world_opencv"]))
        u, v = (int(math.floor(c)) for c in uv[0])
        assert 0 <= u < res and 0 <= v < res and z[0] > 0  # the fruit is in front of every camera, in frame
        window = view["instance"][max(v - 1, 0):v + 2, max(u - 1, 0):u + 2]
        hits += int((window == item["instance_id"]).any())
    assert hits == 8
