"""Records, view lights and splits in the plain-data spec (no Blender): normalised, validated, comparable."""

import dataclasses

import pytest

from render.spec import LightSpec, SceneSpec, ViewSpec, make_records, record_shape, records_json


def _view(**kwargs):
    return ViewSpec(location=(2.0, 0.0, 1.0), look_at=(0.0, 0.0, 0.0), **kwargs)


def test_records_are_sorted_float_pairs_whatever_order_or_number_type_they_come_in():
    a = _view(records={"radius_m": 3, "azimuth_deg": 30.5, "offset": (1, 2.0, -3)})
    b = _view(records={"offset": [1.0, 2.0, -3.0], "azimuth_deg": 30.5, "radius_m": 3.0})
    assert a == b and hash(a) == hash(b)
    assert a.records == (("azimuth_deg", 30.5), ("offset", (1.0, 2.0, -3.0)), ("radius_m", 3.0))
    assert all(type(v) is float for v in (a.records[0][1], *a.records[1][1], a.records[2][1]))
    assert [record_shape(v) for _, v in a.records] == [(), (3,), ()]
    assert records_json(a.records) == {"azimuth_deg": 30.5, "offset": [1.0, 2.0, -3.0], "radius_m": 3.0}
    grid = make_records({"m": ((1, 0), (0, 1))})
    assert record_shape(grid[0][1]) == (2, 2) and records_json(grid) == {"m": [[1.0, 0.0], [0.0, 1.0]]}
    assert dataclasses.replace(a, fov_deg=40.0).records == a.records  # replace keeps normalised records


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "1.5", True, (1.0, (2.0, 3.0)), (), None])
def test_records_that_are_not_finite_fixed_shape_numbers_are_refused_by_name(value):
    with pytest.raises(ValueError, match="record 'bad'"):
        _view(records={"ok": 1.0, "bad": value})


def test_record_names_must_be_non_empty_strings():
    with pytest.raises(ValueError, match="non-empty strings"):
        make_records({"": 1.0})


def test_a_view_light_must_be_a_light_spec_and_a_split_one_of_three():
    light = LightSpec(kind="POINT", location=(1.0, 1.0, 1.0), energy=10.0)
    assert _view(light=light).light is light
    with pytest.raises(ValueError, match="LightSpec"):
        _view(light=(1.0, 1.0, 1.0))
    scene = dict(objects=(), lights=(), views=(_view(),), classes=())
    assert SceneSpec(**scene).split is None and SceneSpec(**scene, split="val").split == "val"
    assert SceneSpec(**scene, records={"n": 2}).records == (("n", 2.0),)
    with pytest.raises(ValueError, match="SceneSpec.split = 'training'"):
        SceneSpec(**scene, split="training")
