"""Contact sheet (--show N): size, tile content, multi-view blocks."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

import paths
import preprocess_data
from pipeline.formats.exr import read_view_exr
from pipeline.formats.png import linear_to_srgb8
from pipeline.quality import contact_sheet as cs
from tests.fixtures_raw import make_raw_dataset, view_path


def test_show_writes_sheet_of_expected_size_and_content(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "DATA_DIR", tmp_path)
    dataset_dir = make_raw_dataset(tmp_path, "sheet", n_samples=5, resolution=(16, 12))
    out = tmp_path / "sheet.png"
    assert preprocess_data.main(["-d", "sheet", "--show", "3", "--show-out", str(out), "-q"]) == 0
    img = np.asarray(Image.open(out).convert("RGB"))
    scale = math.ceil(cs._MIN_TILE / 16)  # 16 px renders enlarged 7x -> 112 x 84 tiles
    tw, th = 16 * scale, 12 * scale
    label_w, head_h, pad = 92, 22, cs._PAD
    assert img.shape[1] == label_w + 4 * (tw + pad) + pad
    assert img.shape[0] == pad + head_h + 3 * (head_h + th + pad + 14 + pad) + 28
    # The colour tile of the second sample is the enlarged sRGB of its EXR.
    y = pad + head_h + (head_h + th + pad + 14 + pad) + head_h
    tile = img[y : y + th, label_w : label_w + tw]
    srgb = linear_to_srgb8(read_view_exr(view_path(dataset_dir, 1)).rgb)
    assert np.array_equal(tile, np.repeat(np.repeat(srgb, scale, 0), scale, 1))
    # Its instance tile shows the palette colours, black background.
    x = label_w + 2 * (tw + pad)
    inst = read_view_exr(view_path(dataset_dir, 1)).instance
    assert np.array_equal(img[y : y + th : scale, x : x + tw : scale], cs.colour_ids(inst, "instance"))


def test_multi_view_sheet_has_a_column_per_view(tmp_path):
    dataset_dir = make_raw_dataset(tmp_path, "ring", n_samples=2, n_views=5, resolution=(16, 16))
    w, h = cs.make_contact_sheet(dataset_dir, 2, tmp_path / "ring.png")
    assert Image.open(tmp_path / "ring.png").size == (w, h)
    tw = 16 * math.ceil(cs._MIN_TILE / 16)
    assert w == 92 + 5 * (tw + cs._PAD) + cs._PAD
    assert h > 2 * 4 * tw  # four rows (colour, depth, instance, semantic) per scene


def test_depth_colours_mark_no_hit():
    depth = np.array([[1.0, 2.0, np.inf, np.nan]], np.float32)
    rgb = cs.colour_depth(depth, 1.0, 2.0)
    assert rgb[0, 0].tolist() != rgb[0, 1].tolist()
    assert rgb[0, 2, 0] == rgb[0, 2, 1] == rgb[0, 2, 2]  # grey checkerboard, never on the colour ramp
