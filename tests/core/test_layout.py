"""The dataset layout declaration: round trip, validation with messages that name the problem, reading."""

import json

import pytest

from core.layout import Layout, LayoutError, read_layout


def test_round_trip_and_sorted_records():
    layout = Layout("scene-major", 10, "exr", ("rgb", "depth", "normal"),
                    view_records={"offset": (3,), "azimuth": ()}, split="declared")
    data = layout.to_json()
    assert list(data["view_records"]) == ["azimuth", "offset"]
    assert Layout.from_json(json.loads(json.dumps(data))) == layout


@pytest.mark.parametrize("data, message", [
    ({"kind": "scenes", "views": 3, "image_format": "exr", "channels": ["rgb"]}, "kind 'scenes'"),
    ({"kind": "sample-major", "views": 3, "image_format": "exr", "channels": ["rgb"]}, "1 view per sample"),
    ({"kind": "scene-major", "views": 3, "image_format": "png", "channels": ["rgb", "depth"]}, "colour only"),
    ({"kind": "scene-major", "views": 3, "image_format": "exr", "channels": ["depth"]}, "start with 'rgb'"),
    ({"kind": "scene-major", "views": 3, "image_format": "exr", "channels": ["rgb"], "colour": 1}, "unknown"),
    ({"kind": "scene-major", "image_format": "exr", "channels": ["rgb"]}, "lacks 'views'"),
    ({"kind": "scene-major", "views": 3, "image_format": "exr", "channels": ["rgb"],
      "view_records": {"azimuth": [-1]}}, "positive ints"),
])
def test_bad_declarations_name_the_problem(data, message):
    with pytest.raises(LayoutError, match=message):
        Layout.from_json(data, where="x/dataset.json")


def test_read_layout(tmp_path):
    with pytest.raises(LayoutError, match="dataset.json is missing"):
        read_layout(tmp_path)
    (tmp_path / "dataset.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(LayoutError, match="not valid JSON"):
        read_layout(tmp_path)
    (tmp_path / "dataset.json").write_text(json.dumps({"format_version": 1, "seed": 0}))
    assert read_layout(tmp_path) is None  # rendered before layouts were declared
    layout = Layout("sample-major", 1, "png", ("rgb",))
    (tmp_path / "dataset.json").write_text(json.dumps({"format_version": 2, "layout": layout.to_json()}))
    assert read_layout(tmp_path) == layout
