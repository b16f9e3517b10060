"""Export of a scene-major file (docs/formats.md §3) to the folder layout of Equivariant Neural Rendering.

Output, for the file's split:

    <out>/<split>/<scene_id>/NNNNN.png          view NNNNN (5 digits from 00000), RGB, 8-bit, white background
    <out>/<split>/<scene_id>/render_params.json {"NNNNN": {"azimuth": deg, "elevation": deg, "x": m, "y": m, "z": m}}

`scene_id` is the scene's six-digit sample index, so sorted folder names are scene order. Angles are degrees
(the file's `azimuth`, `elevation`); x, y, z the file's per-view `offset` (metres), 0 when it has none. Every
value is the file's float32 number written exactly, so ENR's loader (which casts to float32) reads what the
file holds.

A file without `azimuth`/`elevation` (Shepard-Metzler, fruit, any scene-major set whose cameras look at the
origin) gets them from its cameras: `core.camera.sphere_angles` of each camera centre around the origin, in
degrees, the convention the ENR generator records (docs/formats.md, "ENR's camera convention"). A camera whose
optical axis misses the origin by more than `MAX_AXIS_MISS` of its distance is refused: its angles would not
say where it looks.

Command line (one file, or every non-empty `scenes_{split}.h5` of a dataset folder):

    python -m pipeline.layouts.export_enr DATA_DIR/NAME --out DIR

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

import argparse
import json
import logging
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from core import publish
from core.camera import sphere_angles
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
#: Largest distance between the origin and a camera's optical axis, as a fraction of the camera's distance, for
#: angles derived from the poses (the fruit cameras' 2-degree jitter misses by ~3.5%).
MAX_AXIS_MISS = 0.1


@dataclass(frozen=True)
class EnrExport:
    """What `export_enr` wrote.

    Attributes:
        split: the file's split.
        folder: `<out>/<split>`.
        scenes: scene folders written.
        views: views per scene.
        composited: whether a mask painted the backgrounds white.
        derived_angles: whether azimuth and elevation came from the cameras (the file had none).
    """

    split: str
    folder: Path
    scenes: int
    views: int
    composited: bool
    derived_angles: bool = False


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
        derived = "azimuth" not in fh and "elevation" not in fh
        if derived:
            azimuth, elevation = angles_from_poses(fh, s, v)
        else:
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
    return EnrExport(split=split, folder=folder, scenes=s, views=v, composited=mask is not None,
                     derived_angles=derived)


def angles_from_poses(fh: h5py.File, scenes: int, views: int) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth and elevation (float32 (S, V), degrees) of every camera centre around the origin, from the file's
    `cam_to_world` (float (S, V, 4, 4), OpenCV axes: the optical axis is the third column).

    Raises:
        ExportError: no `cam_to_world`, or a camera that does not look at the origin (the first one named).
    """
    poses = np.asarray(check_dataset(fh, "cam_to_world", "f", (scenes, views, 4, 4))[()], dtype=np.float64)
    check_finite(fh, "cam_to_world", poses)
    azimuth = np.empty((scenes, views), np.float32)
    elevation = np.empty((scenes, views), np.float32)
    for (s, v), pose in zip(np.ndindex(scenes, views), poses.reshape(-1, 4, 4), strict=True):
        centre, axis = pose[:3, 3], pose[:3, 2] / np.linalg.norm(pose[:3, 2])
        distance = float(np.linalg.norm(centre))
        miss = float(np.linalg.norm(np.cross(axis, -centre))) if distance > 0 else 0.0
        if distance == 0 or miss > MAX_AXIS_MISS * distance or float(np.dot(axis, -centre)) <= 0:
            raise ExportError(f"{fh.filename}: scene row {s} view {v}: the camera at {centre.round(3).tolist()} "
                              f"does not look at the origin (its axis misses it by {miss:.3f} m); ENR's angles "
                              "need cameras on a sphere around the object: render azimuth/elevation records")
        az, el, _ = sphere_angles(centre, np.zeros(3))
        azimuth[s, v], elevation[s, v] = math.degrees(az) % 360.0, math.degrees(el)
    return azimuth, elevation


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


def scene_files(source: Path) -> list[Path]:
    """The scene files one export command covers: `source` itself, or the non-empty `scenes_{split}.h5` of a
    dataset folder in split order.

    Raises:
        ExportError: no such file or folder, or a folder without scene files.
    """
    if source.is_file():
        return [source]
    if not source.is_dir():
        raise ExportError(f"{source}: no such scene file or dataset folder")
    found = []
    for split in ("train", "val", "test"):
        path = source / f"scenes_{split}.h5"
        if path.is_file():
            with open_scene_file(path) as fh:
                if "images" in fh and fh["images"].shape[0] > 0:
                    found.append(path)
    if not found:
        raise ExportError(f"{source}: holds no non-empty scenes_{{train,val,test}}.h5; consolidate the dataset "
                          "first (preprocess_data.py -d NAME -f)")
    return found


def main(argv: list[str] | None = None) -> int:
    """`python -m pipeline.layouts.export_enr SOURCE --out DIR`; exit 0, or 2 with a message for bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.layouts.export_enr",
        description="Export scene-major HDF5 (docs/formats.md §3) to Equivariant Neural Rendering's folders "
                    "<out>/<split>/<scene>/NNNNN.png + render_params.json. Angles come from the file's azimuth/"
                    "elevation records, else from its cameras (which must look at the origin).")
    parser.add_argument("source", type=Path, help="a scenes_{split}.h5 file, or a dataset folder (DATA_DIR/NAME): "
                                                  "every non-empty scenes_{split}.h5 in it")
    parser.add_argument("--out", type=Path, required=True, help="output folder; must be absent or empty")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        files = scene_files(args.source)
        refuse_non_empty(args.out)  # the whole export root: one export, one folder
        for path in files:
            result = export_enr(path, args.out)
            print(f"{path} -> {result.folder}: {result.scenes} scenes x {result.views} views"
                  + (" (angles from the cameras)" if result.derived_angles else ""))
    except ExportError as err:
        print(f"export_enr: error: {err}", file=sys.stderr)
        return 2
    return 0


def _warn_about_loader(scene_file: Path, views: int, h: int, w: int) -> None:
    if views % 2:
        logger.warning("%s: %d views a scene; ENR's loader pairs views and drops the last of an odd count "
                       "outside PSNR mode", scene_file, views)
    if (h, w) != (ENR_CROP, ENR_CROP):
        logger.warning("%s: views are %dx%d; ENR's loader centre-crops to %d px first (padding smaller images "
                       "with black): set its crop size to the image size", scene_file, w, h, ENR_CROP)


if __name__ == "__main__":
    sys.exit(main())
