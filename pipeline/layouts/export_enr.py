"""Export of a scene-major file (docs/formats.md §3) to the folder layout of Equivariant Neural Rendering.

Output, for the file's split:

    <out>/<split>/<scene_id>/NNNNN.png          view NNNNN (5 digits from 00000), RGB, 8-bit, white background
    <out>/<split>/<scene_id>/render_params.json {"NNNNN": {"azimuth": deg, "elevation": deg, "x": m, "y": m, "z": m}}

`scene_id` is the scene's six-digit sample index, so sorted folder names are scene order. Angles are degrees
(the file's `azimuth`, `elevation`); x, y, z the file's per-view `offset` (metres), 0 when it has none. Every
value is the file's float32 number written exactly, so ENR's loader (which casts to float32) reads what the
file holds.

Made for the rules of ENR's loader (CONVENTIONS.md "Read from the original code"): every entry of the split
folder counts as a scene, so nothing else is written there; the view count is read from the first scene, so
every scene has the file's V views; alpha would be dropped, so views are RGB on white: with a `mask`
dataset (uint8 (S, V, H, W), 0 = background) the background is painted white, without one the images are
taken to be on white already.

Each scene folder is staged under a temporary name and renamed into place when complete
(`core.publish.Staged`): a killed export leaves complete scenes and at most one hidden `.tmp-*` folder, which
ENR's `glob('*')` does not list. The export refuses a split folder that is not empty.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import publish
from pipeline.formats.png import encode_png8
from pipeline.layouts.export_common import (
    ExportError,
    check_dataset,
    check_finite,
    open_scene_file,
    refuse_non_empty,
    scene_ids,
    split_of_file,
)

logger = logging.getLogger(__name__)

RENDER_PARAMS = "render_params.json"
#: ENR's loader centre-crops to this size before resizing (torchvision pads smaller images with black).
ENR_CROP = 128


@dataclass(frozen=True)
class EnrExport:
    """What `export_enr` wrote.

    Attributes:
        split: the file's split.
        folder: `<out>/<split>`.
        scenes: scene folders written.
        views: views per scene.
        composited: whether a mask painted the backgrounds white.
    """

    split: str
    folder: Path
    scenes: int
    views: int
    composited: bool


def view_name(view: int) -> str:
    """ENR's five-digit view stem (also the JSON key): 0 -> "00000"."""
    if not 0 <= view < 100_000:
        raise ExportError(f"view index {view} does not fit ENR's five digits (0..99999)")
    return f"{view:05d}"


def export_enr(scene_file: str | os.PathLike, out_dir: str | os.PathLike) -> EnrExport:
    """Writes the ENR layout of one `scenes_{split}.h5` under `out_dir/<split>`.

    Args:
        scene_file: scene-major HDF5 with `images` uint8 (S, V, H, W, 3) sRGB, `azimuth` and `elevation`
            float (S, V) degrees, `scene_index` int (S,), attribute `split`; optional `offset` float (S, V, 3)
            metres and `mask` uint8 (S, V, H, W).
        out_dir: root of the export; `out_dir/<split>` must be absent or empty.
    Returns:
        What was written.
    Raises:
        ExportError: a missing or malformed dataset or attribute, or a non-empty output folder (nothing is
            written then).
    """
    scene_file = Path(scene_file)
    with open_scene_file(scene_file) as fh:
        images = check_dataset(fh, "images", "u", (None, None, None, None, 3))
        if images.dtype != np.uint8:
            raise ExportError(f"{scene_file}: 'images' must be uint8 sRGB, got {images.dtype}")
        s, v, h, w, _ = images.shape
        if v == 0:
            raise ExportError(f"{scene_file}: scenes have no views")
        azimuth = np.asarray(check_dataset(fh, "azimuth", "f", (s, v))[()], dtype=np.float32)
        elevation = np.asarray(check_dataset(fh, "elevation", "f", (s, v))[()], dtype=np.float32)
        offset_ds = check_dataset(fh, "offset", "f", (s, v, 3), required=False)
        offset = (np.zeros((s, v, 3), np.float32) if offset_ds is None
                  else np.asarray(offset_ds[()], dtype=np.float32))
        for name, values in (("azimuth", azimuth), ("elevation", elevation), ("offset", offset)):
            check_finite(fh, name, values)
        mask = check_dataset(fh, "mask", "u", (s, v, h, w), required=False)
        split = split_of_file(fh)
        ids = scene_ids(fh, s)
        folder = Path(out_dir) / split
        refuse_non_empty(folder)
        _warn_about_loader(scene_file, v, h, w)
        folder.mkdir(parents=True, exist_ok=True)
        for row, scene_id in enumerate(ids):
            views = images[row]
            if mask is not None:
                views = np.where(mask[row][..., None] > 0, views, np.uint8(255))
            _write_scene(folder / scene_id, views, azimuth[row], elevation[row], offset[row])
    logger.info("ENR export: %d scenes x %d views of %s -> %s", s, v, scene_file, folder)
    return EnrExport(split=split, folder=folder, scenes=s, views=v, composited=mask is not None)


def _write_scene(final: Path, views: np.ndarray, azimuth: np.ndarray, elevation: np.ndarray,
                 offset: np.ndarray) -> None:
    """One scene folder, published whole: the views' PNGs, then render_params.json."""
    params = {}
    with publish.Staged(final, folder=True) as staged:
        for k, rgb in enumerate(views):
            stem = view_name(k)
            (staged.path / f"{stem}.png").write_bytes(encode_png8(rgb))
            # float(np.float32) is the float32 value exactly; JSON keeps it and ENR's float32 cast restores it
            x, y, z = (float(c) for c in offset[k])
            params[stem] = {"azimuth": float(azimuth[k]), "elevation": float(elevation[k]), "x": x, "y": y, "z": z}
        (staged.path / RENDER_PARAMS).write_text(json.dumps(params, indent=1, sort_keys=True) + "\n",
                                                 encoding="utf-8")
    if not staged.published:
        raise ExportError(f"{final}: another writer published this scene during the export; export into an "
                          "empty folder that no other export uses")


def _warn_about_loader(scene_file: Path, views: int, h: int, w: int) -> None:
    if views % 2:
        logger.warning("%s: %d views a scene; ENR's loader pairs views and drops the last of an odd count "
                       "outside PSNR mode", scene_file, views)
    if (h, w) != (ENR_CROP, ENR_CROP):
        logger.warning("%s: views are %dx%d; ENR's loader centre-crops to %d px first (padding smaller images "
                       "with black): set its crop size to the image size", scene_file, w, h, ENR_CROP)
