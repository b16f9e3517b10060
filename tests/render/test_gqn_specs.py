"""The GQN generators' scene specs (no Blender): layouts, view placement, determinism and settings errors."""

import math

import gin
import numpy as np
import pytest

from core.camera import yaw_pitch
from render import seeding
from render.generators import gqn
from render.generators.gqn import (
    ROOM_SHAPES,
    RoomSettings,
    gqn_rooms_free_camera,
    gqn_rooms_ring_camera,
    gqn_shepard_metzler,
    shepard_metzler_cells,
)


@pytest.fixture(autouse=True)
def _clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


def _objects(spec, kind):
    return [o for o in spec.objects if (o.class_name in ROOM_SHAPES) == (kind == "objects")]


@pytest.mark.parametrize("index", range(6))
def test_ring_camera_views_stand_on_the_ring_and_face_the_centre(index):
    spec = gqn_rooms_ring_camera(seeding.sample_rng(0, index), index)
    assert len(spec.views) == 10
    for view in spec.views:
        loc = np.array(view.location)
        assert math.hypot(loc[0], loc[1]) == pytest.approx(2.4)
        assert loc[2] == pytest.approx(1.0)
        assert view.look_at == (0.0, 0.0, 0.4)
        yaw, pitch = yaw_pitch(np.array(view.look_at) - loc)
        assert yaw == pytest.approx(math.atan2(-loc[1], -loc[0]))  # inward
        assert -0.3 < pitch < 0  # slightly down
    angles = {round(math.atan2(v.location[1], v.location[0]), 6) for v in spec.views}
    assert len(angles) == 10


@pytest.mark.parametrize("index", range(6))
def test_room_has_floor_four_walls_and_one_to_three_objects_standing_on_the_floor(index):
    spec = gqn_rooms_ring_camera(seeding.sample_rng(0, index), index)
    shell, objects = _objects(spec, "shell"), _objects(spec, "objects")
    assert sorted(o.class_name for o in shell) == ["floor", "wall", "wall", "wall", "wall"]
    assert len({o.material for o in shell if o.class_name == "wall"}) == 1  # one texture for all walls
    assert 1 <= len(objects) <= 3
    for obj in objects:
        size = obj.scale[0]
        assert 0.5 <= size <= 0.9
        assert obj.location[2] == pytest.approx(size * ROOM_SHAPES[obj.class_name] / 2)  # bottom on z = 0
        assert math.hypot(*obj.location[:2]) <= 1.6  # inside the ring, so no camera stands in an object
    for a in objects:
        for b in objects:
            if a is not b:
                assert math.dist(a.location[:2], b.location[:2]) > 0.4 * (a.scale[0] + b.scale[0])
    assert set(spec.classes) >= {o.class_name for o in spec.objects}


def test_generators_are_deterministic_per_seed_and_index():
    a = gqn_rooms_ring_camera(seeding.sample_rng(7, 3), 3)
    assert a == gqn_rooms_ring_camera(seeding.sample_rng(7, 3), 3)
    assert a != gqn_rooms_ring_camera(seeding.sample_rng(7, 4), 4)
    b = gqn_shepard_metzler(seeding.sample_rng(7, 3), 3)
    assert b == gqn_shepard_metzler(seeding.sample_rng(7, 3), 3)


@pytest.mark.parametrize("index", range(6))
def test_free_camera_views_are_inside_the_room_clear_of_objects_with_bounded_pitch(index):
    spec = gqn_rooms_free_camera(seeding.sample_rng(1, index), index)
    objects = _objects(spec, "objects")
    assert len(spec.views) == 10
    for view in spec.views:
        loc = np.array(view.location)
        assert np.all(np.abs(loc[:2]) <= 3.0 - 0.4 + 1e-9)
        assert 0.6 <= loc[2] <= 1.4
        for obj in objects:
            assert math.dist(loc[:2], obj.location[:2]) > 0.5 * obj.scale[0]
        _, pitch = yaw_pitch(np.array(view.look_at) - loc)
        assert math.radians(-30) - 1e-9 <= pitch <= math.radians(10) + 1e-9
    yaws = [yaw_pitch(np.array(v.look_at) - np.array(v.location))[0] for v in spec.views]
    assert np.ptp(yaws) > 1.0  # random yaw, not a ring


@pytest.mark.parametrize("parts", [5, 7])
def test_shepard_metzler_cubes_form_a_face_connected_chain(parts):
    for index in range(20):
        cells = shepard_metzler_cells(seeding.sample_rng(0, index), parts)
        assert cells.shape == (parts, 3)
        assert len({tuple(c) for c in cells}) == parts  # no two cubes in one cell
        steps = np.abs(np.diff(cells, axis=0)).sum(axis=1)
        assert (steps == 1).all()  # each cube shares a face with the previous one


def test_shepard_metzler_scene_one_instance_per_cube_and_views_on_a_sphere():
    with gin.unlock_config():
        gin.bind_parameter("gqn_shepard_metzler.num_parts", 5)
    spec = gqn_shepard_metzler(seeding.sample_rng(0, 0), 0)
    assert len(spec.objects) == 5 and {o.class_name for o in spec.objects} == {"cube"}
    centres = np.array([o.location for o in spec.objects]) / 0.3
    assert np.allclose(centres, np.round(centres - centres.min(axis=0)) + centres.min(axis=0))  # on the cube grid
    bounds = centres.min(axis=0) + centres.max(axis=0)
    assert np.allclose(bounds, 0)  # centred on the origin
    assert len(spec.views) == 15
    for view in spec.views:
        assert np.linalg.norm(view.location) == pytest.approx(2.2)
        assert view.look_at == (0.0, 0.0, 0.0)
        assert abs(yaw_pitch(-np.array(view.location))[1]) <= math.radians(80) + 1e-9


def test_bad_settings_name_the_setting():
    with pytest.raises(ValueError, match="gqn_rooms.shapes"):
        RoomSettings(shapes=("cube", "teapot"))
    with pytest.raises(ValueError, match="ring_radius"):
        gqn_rooms_ring_camera(seeding.sample_rng(0, 0), 0, ring_radius=5.0)
    with pytest.raises(ValueError, match="pitch_deg"):
        gqn_rooms_free_camera(seeding.sample_rng(0, 0), 0, pitch_deg=(10.0, -10.0))
    with pytest.raises(ValueError, match="texture_source"):
        RoomSettings(texture_source="photos")


def test_every_gqn_config_parses_and_binds_its_generator():
    from pathlib import Path

    from render.gin_setup import parse_gin
    from render.settings import DatasetSettings, RenderingSettings

    config_dir = Path(gqn.__file__).resolve().parents[2] / "config"
    expected = {
        "gqn_rooms_ring_camera": (gqn_rooms_ring_camera, 10),
        "gqn_rooms_free_camera": (gqn_rooms_free_camera, 10),
        "gqn_shepard_metzler_5_parts": (gqn_shepard_metzler, 15),
        "gqn_shepard_metzler_7_parts": (gqn_shepard_metzler, 15),
        "demo_rooms": (gqn_rooms_ring_camera, 10),
    }
    for name, (function, views) in expected.items():
        parse_gin([name], [], config_dir)
        settings = DatasetSettings()
        assert settings.generator is function
        assert settings.name == name
        spec = settings.generator(seeding.sample_rng(settings.seed, 0), 0)
        assert len(spec.views) == views
        assert RenderingSettings().render_exr  # labels are stored
        if "shepard" in name:
            assert len(spec.objects) == int(name.split("_")[-2])


def test_denoise_settings_name_the_accepted_values():
    from render.settings import RenderingSettings

    assert RenderingSettings(denoise="cycles").denoise == "cycles"
    with pytest.raises(ValueError, match="replaced by 'cycles'"):
        RenderingSettings(denoise="oidn")  # the pyoidn path of earlier versions
    with pytest.raises(ValueError, match="use 'none' or 'cycles'"):
        RenderingSettings(denoise="optix")
