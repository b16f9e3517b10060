"""render/generators/enr.py without Blender: view counts, the spiral test split, object-level splits, what
translation moves, and the redraw rule, on the real chairs of the asset index."""

import math

import gin
import numpy as np
import pytest

import paths
from core.camera import on_sphere
from core.sphere_paths import ENR_SOURCE_VIEW, ENR_TEST_VIEWS, archimedean_spiral
from render import generators  # noqa: F401  (registers the generators with gin)
from render.generators.enr import enr_object, load_objects, object_split, split_objects
from render.gin_setup import parse_gin
from render.seeding import sample_rng
from render.settings import BatchSettings, DatasetSettings


def _draw(index: int, **kwargs):
    return enr_object(sample_rng(0, index), index, **kwargs)


def test_the_index_has_the_chairs_and_every_split_some():
    chairs = load_objects("sweethome3d", ("chair",))
    assert len(chairs) >= 20 and all(o.class_name == "chair" for o in chairs)
    sizes = {s: len(split_objects(chairs, s, 0.1, 0.1)) for s in ("train", "val", "test")}
    assert sum(sizes.values()) == len(chairs) and min(sizes.values()) >= 1, sizes


@pytest.mark.parametrize("transformation", ["rotation", "translation", "roto-translation"])
def test_every_scene_of_a_split_has_the_same_views_and_test_has_the_spiral(transformation):
    for split, views in (("train", 50), ("val", 50), ("test", ENR_TEST_VIEWS)):
        specs = [_draw(i, transformation=transformation, split=split) for i in range(4)]
        assert {len(s.views) for s in specs} == {views}
        assert {s.split for s in specs} == {split}
        names = {tuple(name for name, _ in v.records) for s in specs for v in s.views}
        assert names == {("azimuth", "elevation", "offset")}
    spec = _draw(0, transformation="rotation", split="test")
    az, el = archimedean_spiral(ENR_TEST_VIEWS)
    got = np.array([[dict(v.records)["azimuth"], dict(v.records)["elevation"]] for v in spec.views])
    np.testing.assert_allclose(got[:, 0], np.degrees(az) % 360.0, atol=1e-9)
    np.testing.assert_allclose(got[:, 1], np.degrees(el), atol=1e-9)
    assert abs(got[ENR_SOURCE_VIEW, 1] - 23.04) < 1e-9 and got[-1, 1] == pytest.approx(90.0)


def test_splits_never_share_an_object():
    objects = {}
    for split in ("train", "val", "test"):
        objects[split] = {_draw(i, split=split).objects[0].mesh.source for i in range(80)}
    assert not objects["train"] & objects["val"] and not objects["train"] & objects["test"]
    assert not objects["val"] & objects["test"]
    chairs = load_objects("sweethome3d", ("chair",))
    # scene i shows object i of its split, so 80 scenes cover every train chair (there are fewer than 80)
    assert objects["train"] == {o.path for o in split_objects(chairs, "train", 0.1, 0.1)}
    # the split of an object is a function of its id alone
    assert object_split(chairs[0].id, 0.1, 0.1) == object_split(chairs[0].id, 0.1, 0.1)
    assert object_split("x", 0.0, 1.0 - 1e-12) == "test" and object_split("x", 0.0, 0.0) == "train"


def test_rotation_moves_the_camera_and_translation_the_object():
    rot = _draw(3, transformation="rotation")
    assert all(v.object_offset is None and dict(v.records)["offset"] == (0.0, 0.0, 0.0) for v in rot.views)
    assert len({v.location for v in rot.views}) == 50
    for v in rot.views:
        r = dict(v.records)
        expected = on_sphere(np.zeros(3), 2.0, math.radians(r["azimuth"]), math.radians(r["elevation"]))
        np.testing.assert_allclose(v.location, expected, atol=1e-12)
        assert 0.0 <= r["elevation"] <= 90.0 and 0.0 <= r["azimuth"] < 360.0

    tr = _draw(3, transformation="translation", max_offset=0.25)
    assert len({(v.location, v.look_at, v.up) for v in tr.views}) == 1  # one camera for every view
    offsets = np.array([dict(v.records)["offset"] for v in tr.views])
    assert np.all(np.abs(offsets) <= 0.25) and len(np.unique(offsets, axis=0)) == 50
    assert [v.object_offset for v in tr.views] == [tuple(o) for o in offsets.tolist()]
    assert {(dict(v.records)["azimuth"], dict(v.records)["elevation"]) for v in tr.views} == {(300.0, 20.0)}

    rt = _draw(3, transformation="roto-translation")
    assert len({v.location for v in rt.views}) == 50 and all(v.object_offset is not None for v in rt.views)


def test_same_seed_same_scene_and_skip_takes_the_next_object():
    assert _draw(5) == _draw(5)
    chairs = split_objects(load_objects("sweethome3d", ("chair",)), "train", 0.1, 0.1)
    first = _draw(5)
    assert first.objects[0].mesh.source == chairs[5].path
    redrawn = _draw(5, skip=(chairs[5].path,))
    assert redrawn.objects[0].mesh.source == chairs[6].path
    assert redrawn.views == first.views  # only the object changes: the views come from the same seed
    with pytest.raises(ValueError, match="failed to import"):
        _draw(0, skip=tuple(c.path for c in chairs))


def test_bad_settings_are_named():
    with pytest.raises(ValueError, match="enr_object.transformation"):
        _draw(0, transformation="rotate")
    with pytest.raises(ValueError, match="enr_object.split"):
        _draw(0, split="training")
    with pytest.raises(ValueError, match="test_fraction"):
        _draw(0, val_fraction=0.5, test_fraction=0.5)


@pytest.fixture()
def clean_gin():
    gin.clear_config()
    yield
    gin.clear_config()


@pytest.mark.parametrize(("config", "transformation"), [("enr_rotation", "rotation"),
                                                        ("enr_translation", "translation"),
                                                        ("enr_rototranslation", "roto-translation")])
def test_configs_parse_strictly_and_declare_one_split(clean_gin, config, transformation):
    parse_gin([config], [], paths.CONFIG_DIR)
    settings, batch = DatasetSettings(), BatchSettings()
    assert settings.name == config and batch.bad_mesh == "redraw"
    spec = settings.generator(sample_rng(settings.seed, 0), 0)
    assert len(spec.views) == 50 and spec.split == "train" and spec.classes == ("chair",)
    assert gin.query_parameter("enr_object.transformation") == transformation
    parse_gin([config], ["enr_object.split = 'test'"], paths.CONFIG_DIR)
    assert len(DatasetSettings().generator(sample_rng(0, 0), 0).views) == ENR_TEST_VIEWS
