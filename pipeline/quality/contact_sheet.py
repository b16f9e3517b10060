"""Contact sheet of a rendered dataset (``preprocess_data.py -d NAME --show N``).

One PNG for people to look at. Each single-view sample is a row of four tiles: colour (sRGB), depth (colour
mapped, near = dark purple to far = pale yellow, per-sample range written under it, pixels where nothing was hit
shown as a grey checkerboard), instance ids and semantic ids (fixed palettes, background black). A multi-view
scene is a block: one column per view with its viewpoint (yaw / pitch in degrees) under the colour tile, and the
depth, instance and semantic tiles of that view below it. A legend maps the semantic colours to class names.
Small renders are enlarged with nearest-neighbour sampling so single pixels stay visible.
"""

from __future__ import annotations

import colorsys
import logging
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from core.publish import Staged
from pipeline.formats.exr import ExrReadError, read_view_exr
from pipeline.formats.png import PngError, decode_png, linear_to_srgb8
from pipeline.quality.raw_samples import Sample, SidecarError, list_sample_dirs, load_sample

logger = logging.getLogger(__name__)

#: Magma-like ramp (near -> far) as RGB anchors, interpolated linearly.
_DEPTH_ANCHORS = np.array(
    [[20, 12, 50], [90, 22, 125], [180, 54, 122], [245, 120, 90], [252, 200, 130], [252, 250, 190]], np.float32
)
_BG = (24, 24, 28)
_FG = (235, 235, 235)
_DIM = (160, 160, 170)
_PAD = 6
_MIN_TILE = 112


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError):  # Pillow without FreeType: fixed bitmap font
        return ImageFont.load_default()


def colour_depth(depth: np.ndarray, near: float, far: float) -> np.ndarray:
    """Maps depth (metres, ``inf``/NaN = no hit) to uint8 RGB; no-hit pixels become a grey checkerboard."""
    hit = np.isfinite(depth)
    t = np.clip((np.where(hit, depth, near) - near) / max(far - near, 1e-6), 0.0, 1.0)
    x = t * (len(_DEPTH_ANCHORS) - 1)
    i = np.minimum(x.astype(int), len(_DEPTH_ANCHORS) - 2)
    f = (x - i)[..., None]
    rgb = _DEPTH_ANCHORS[i] * (1 - f) + _DEPTH_ANCHORS[i + 1] * f
    yy, xx = np.indices(depth.shape)
    checker = np.where(((yy // 2 + xx // 2) % 2 == 0)[..., None], 70.0, 105.0)
    return np.where(hit[..., None], rgb, checker).astype(np.uint8)


def palette_colour(ident: int, kind: str) -> tuple[int, int, int]:
    """Fixed colour of an instance or semantic id (0 = black background)."""
    if ident == 0:
        return (0, 0, 0)
    if kind == "instance":
        h, s, v = (ident * 0.618034) % 1.0, 0.6, 0.95
    else:
        h, s, v = (0.08 + ident * 0.381966) % 1.0, 0.85, 0.8
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def colour_ids(ids: np.ndarray, kind: str) -> np.ndarray:
    """Maps an id image to uint8 RGB with :func:`palette_colour`."""
    out = np.zeros((*ids.shape, 3), np.uint8)
    for ident in np.unique(ids).tolist():
        out[ids == ident] = palette_colour(int(ident), kind)
    return out


def _view_tiles(sample: Sample, vi: int, near_far: tuple[float, float] | None) -> dict[str, np.ndarray]:
    path = sample.view_path(vi)
    if path.suffix.lower() == ".exr":
        view = read_view_exr(path)
        near, far = near_far if near_far else (0.0, 1.0)
        return {
            "colour": linear_to_srgb8(view.rgb),
            "depth": colour_depth(view.depth, near, far),
            "instance": colour_ids(view.instance, "instance"),
            "semantic": colour_ids(view.semantic, "semantic"),
            "_semantic_ids": view.semantic,
        }
    return {"colour": decode_png(path.read_bytes())[..., :3]}


def _depth_range(sample: Sample) -> tuple[float, float] | None:
    lo, hi = math.inf, -math.inf
    for vi in range(len(sample.views)):
        if sample.view_path(vi).suffix.lower() != ".exr":
            return None
        depth = read_view_exr(sample.view_path(vi)).depth
        finite = depth[np.isfinite(depth)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    return (lo, hi) if lo <= hi else (0.0, 1.0)


def make_contact_sheet(dataset_dir: Path, n: int, out_path: Path, tile: int | None = None) -> tuple[int, int]:
    """Writes a contact sheet of the first ``n`` readable samples of ``dataset_dir`` to ``out_path``.

    Args:
        dataset_dir: ``DATA_DIR/NAME`` with ``samples/``.
        n: samples (scenes) to show.
        out_path: PNG to write (atomically).
        tile: tile edge in pixels; by default the render enlarged by an integer factor to at least 112 px.

    Returns:
        (width, height) of the written PNG.

    Raises:
        ValueError: ``n`` < 1 or no readable sample.
    """
    if n < 1:
        raise ValueError(f"--show needs N >= 1, got {n}")
    picked: list[tuple[Sample, list[dict[str, np.ndarray]], tuple[float, float] | None]] = []
    for path in list_sample_dirs(dataset_dir):
        if len(picked) == n:
            break
        try:
            sample = load_sample(path)
            near_far = _depth_range(sample)
            tiles = [_view_tiles(sample, vi, near_far) for vi in range(len(sample.views))]
        except (SidecarError, ExrReadError, PngError, OSError) as exc:
            logger.warning("contact sheet: skipping sample %s (%s)", path.name, exc)
            continue
        picked.append((sample, tiles, near_far))
    if not picked:
        raise ValueError(f"{dataset_dir}: no readable sample to show")

    h0, w0 = picked[0][1][0]["colour"].shape[:2]
    scale = max(1, math.ceil(_MIN_TILE / max(h0, w0))) if tile is None else max(1, tile // max(h0, w0))
    tw, th = w0 * scale, h0 * scale
    font, small = _font(13), _font(11)
    kinds = [k for k in ("colour", "depth", "instance", "semantic") if k in picked[0][1][0]]
    multi = any(len(s.views) > 1 for s, _, _ in picked)
    label_w, text_h, head_h = 92, 30, 22
    cols = max(len(t) for _, t, _ in picked) if multi else len(kinds)
    # Block height: header + per kind a tile row (+ viewpoint text under the colour row of multi-view blocks).
    rows_h = (len(kinds) * (th + _PAD) + text_h) if multi else (th + _PAD + 14)
    block_h = head_h + rows_h
    width = label_w + cols * (tw + _PAD) + _PAD
    legend_h = 28
    height = _PAD + (0 if multi else head_h) + len(picked) * (block_h + _PAD) + legend_h
    sheet = Image.new("RGB", (width, height), _BG)
    draw = ImageDraw.Draw(sheet)
    y = _PAD
    if not multi:
        for c, kind in enumerate(kinds):
            draw.text((label_w + c * (tw + _PAD), y), kind, fill=_FG, font=font)
        y += head_h
    semantic_seen: set[int] = set()

    def paste(arr: np.ndarray, x: int, yy: int) -> None:
        big = np.repeat(np.repeat(arr, scale, axis=0), scale, axis=1)
        if big.shape[:2] != (th, tw):  # a sample at another resolution: fit it to the tile
            sheet.paste(Image.fromarray(arr).resize((tw, th), Image.NEAREST), (x, yy))
        else:
            sheet.paste(Image.fromarray(big), (x, yy))

    for sample, tiles, near_far in picked:
        n_obj = len(sample.sidecar["objects"])
        head = f"sample {sample.name}   {n_obj} object{'s' if n_obj != 1 else ''}   {len(sample.views)} view(s)"
        draw.text((_PAD, y), head, fill=_FG, font=font)
        y += head_h
        for t in tiles:
            if "_semantic_ids" in t:
                semantic_seen.update(np.unique(t["_semantic_ids"]).tolist())
        if multi:
            yy = y
            for kind in kinds:
                draw.text((_PAD, yy + th // 2 - 7), kind, fill=_DIM, font=small)
                if kind == "depth" and near_far:
                    draw.text((_PAD, yy + th // 2 + 8), f"{near_far[0]:.2f}-{near_far[1]:.2f} m", fill=_DIM, font=small)
                for c, t in enumerate(tiles):
                    x = label_w + c * (tw + _PAD)
                    paste(t[kind], x, yy)
                    if kind == "colour":
                        _, _, _, yaw, pitch = sample.views[c]["viewpoint_xyzyp"]
                        draw.text((x, yy + th + 2), f"yaw {math.degrees(yaw):.0f}°", fill=_FG, font=small)
                        draw.text((x, yy + th + 15), f"pitch {math.degrees(pitch):.0f}°", fill=_FG, font=small)
                yy += th + _PAD + (text_h if kind == "colour" else 0)
        else:
            _, _, _, yaw, pitch = sample.views[0]["viewpoint_xyzyp"]
            draw.text((_PAD, y + 2), f"yaw {math.degrees(yaw):.0f}°", fill=_DIM, font=small)
            draw.text((_PAD, y + 16), f"pitch {math.degrees(pitch):.0f}°", fill=_DIM, font=small)
            for c, kind in enumerate(kinds):
                x = label_w + c * (tw + _PAD)
                paste(tiles[0][kind], x, y)
                if kind == "depth" and near_far:
                    draw.text((x, y + th + 1), f"{near_far[0]:.2f}-{near_far[1]:.2f} m", fill=_DIM, font=small)
        y += rows_h + _PAD

    # Legend: semantic colours with class names, and the no-hit checkerboard.
    x = _PAD
    classes = picked[0][0].sidecar["classes"]
    entries = [(colour_depth(np.full((12, 12), np.inf), 0, 1), "no hit")]
    for sid in sorted(semantic_seen - {0}):
        name = classes[sid - 1] if 0 < sid <= len(classes) else f"id {sid}"
        entries.append((np.full((12, 12, 3), palette_colour(sid, "semantic"), np.uint8), name))
    ly = height - legend_h + 6
    for swatch, name in entries if "depth" in kinds else []:
        sheet.paste(Image.fromarray(swatch), (x, ly))
        draw.text((x + 16, ly - 1), name, fill=_FG, font=small)
        x += 16 + int(draw.textlength(name, font=small)) + 14
    out_path = Path(out_path)
    with Staged(out_path) as staged:
        sheet.save(staged.path, format="PNG")
    logger.info("contact sheet of %d sample(s) written to %s (%dx%d)", len(picked), out_path, width, height)
    return width, height
