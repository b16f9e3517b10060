"""Export of scene-major files (docs/formats.md §3) to RenderNet's training layout: posed images named by
their pose, one binvox grid per object, and a TAR of the images per split.

Output of `export_rendernet([scenes_train.h5, scenes_val.h5, ...], out)`:

    <out>/images/<object>_p<azimuth>_t<polar>_r<radius>.png          shaded view (the file's `images`)
    <out>/images/<object>_p<azimuth>_t<polar>_r<radius>_albedo.png   when the file has `albedo`
    <out>/images/<object>_p<azimuth>_t<polar>_r<radius>_normal.png   when the file has `normal`
    <out>/voxels/<object>.binvox                                     the scene's `voxels`, unit cube
    <out>/images_<split>.tar                                         the shaded views of one split

Read for RenderNet's own code (CONVENTIONS.md; tools/data_util.py, tools/utils.py, tools/create_TAR.py):

- Pose from the name: the loader takes the text between the first `_p` and `_t` as azimuth (degrees),
  between `_t` and `_r` as the polar angle t (degrees from the up axis, elevation = 90 - t, t in [10, 170])
  and exactly three characters after `_r` as the radius. So: azimuth is written in [0, 360), and both angles
  rounded to 0.01 degree and written in their shortest form (`30`, `30.5`, `30.25`); the radius with one
  decimal (`2.5` .. `4.5`). A radius that one decimal does not hold exactly is refused, or rounded with
  `round_radius=True` (logged, with the largest change). Two views of one object whose names would be equal
  are refused.
- Voxels from the name: the loader opens `<first '_'-separated token>.binvox` when that token contains `ply`
  (other names get ShapeNet's `model_chair_..._clean` lookup). Objects are therefore named
  `ply<six-digit scene index>`, which holds no `_p`, `_t` or `_r` either.
- The TAR: `create_TAR.py` adds every `*.png` of a folder under its base name, uncompressed by default, and
  the loader streams it with `tarfile.open(path, 'r|')` (no decompression) and treats every PNG as a target
  image. So each split's TAR holds only the shaded views, flat, uncompressed, sorted by name, with fixed
  member metadata (mtime 0, mode 0644, owner 0) so the same input gives the same bytes.
- Voxel grids: binvox, `translate -0.5 -0.5 -0.5`, `scale 1` (render.voxels: the renderer's unit cube).
- Normal maps: uint8 `round((n + 1) * 127.5)` of the file's float16 normals clipped to [-1, 1] (background
  normals of 0 become 128), in whatever frame the file stores them.

The whole export is staged in one temporary folder beside `<out>` and renamed into place when complete
(`core.publish.Staged`), so a killed export leaves no partial `<out>`. `<out>` must be absent or empty.

Command line: `python -m pipeline.layouts.export_rendernet -d NAME --out DIR` (the scene files of
DATA_DIR/NAME) or `--files scenes_train.h5 ... --out DIR`; `--help` lists the options.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import tarfile
from collections.abc import Sequence
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
from render.voxels import UNIT_CUBE_SCALE, UNIT_CUBE_TRANSLATE, write_binvox

logger = logging.getLogger(__name__)

#: RenderNet's polar-angle range t (degrees from the up axis), tools/data_util.py.
POLAR_RANGE = (10.0, 170.0)
#: Radii that fit the loader's three characters with one decimal.
RADIUS_RANGE = (2.5, 4.5)
#: The prefix RenderNet's loader needs to find `<object>.binvox` from an image name.
OBJECT_PREFIX = "ply"
_RADIUS_EXACT = 1e-4  # float32 storage of 3.3 is 3.2999999523: a difference below this is not a rounding


@dataclass(frozen=True)
class RenderNetExport:
    """What `export_rendernet` wrote.

    Attributes:
        folder: `<out>`.
        objects: voxel files written (one per scene).
        images: shaded views written (each with its `_albedo` / `_normal` companions when present).
        tars: the TAR of each split, by split name.
        rounded_radii: views whose radius was rounded to one decimal (only with `round_radius=True`).
    """

    folder: Path
    objects: int
    images: int
    tars: dict[str, Path]
    rounded_radii: int


def object_name(scene_id: str) -> str:
    """The object's name in RenderNet's file names: "000012" -> "ply000012"."""
    return f"{OBJECT_PREFIX}{scene_id}"


def angle_text(degrees: float) -> str:
    """An angle rounded to 0.01 degree in its shortest decimal form: 30.0 -> "30", 30.504 -> "30.5"."""
    text = f"{round(float(degrees), 2):.2f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text


def pose_name(obj: str, azimuth: float, elevation: float, radius: str) -> str:
    """`<obj>_p<azimuth>_t<polar>_r<radius>` for an azimuth and elevation in degrees (polar t = 90 - elevation)
    and a radius already formatted by `radius_text`.

    Raises:
        ExportError: a polar angle outside RenderNet's [10, 170] degrees.
    """
    az = round(float(azimuth), 2) % 360.0
    polar = round(90.0 - float(elevation), 2)
    if not POLAR_RANGE[0] <= polar <= POLAR_RANGE[1]:
        raise ExportError(f"elevation {float(elevation):.4g} deg is polar angle {polar:.4g} deg, outside "
                          f"RenderNet's [{POLAR_RANGE[0]:g}, {POLAR_RANGE[1]:g}]: keep elevations within [-80, 80]")
    return f"{obj}_p{angle_text(az)}_t{angle_text(polar)}_r{radius}"


def radius_text(radius: float, round_radius: bool = False) -> str:
    """The radius as RenderNet's loader reads it: exactly three characters, `d.d`, within [2.5, 4.5] metres.

    Raises:
        ExportError: outside [2.5, 4.5], or not a multiple of 0.1 when `round_radius` is False.
    """
    r = float(radius)
    text = f"{r:.1f}"
    if not RADIUS_RANGE[0] <= float(text) <= RADIUS_RANGE[1] or len(text) != 3:
        raise ExportError(f"radius {r:.4g} m is outside RenderNet's [{RADIUS_RANGE[0]}, {RADIUS_RANGE[1]}] m "
                          "(its loader reads three characters, d.d); render the cameras within that range")
    if not round_radius and abs(r - float(text)) > _RADIUS_EXACT:
        raise ExportError(f"radius {r:.6g} m does not fit three characters (d.d); RenderNet's loader would "
                          f"read {text}, changing the pose's scale: render radii in steps of 0.1 m, or pass "
                          "round_radius=True to round them")
    return text


def export_rendernet(scene_files: Sequence[str | os.PathLike], out_dir: str | os.PathLike,
                     round_radius: bool = False) -> RenderNetExport:
    """Writes RenderNet's layout of one or more scene files (one per split) under `out_dir`.

    Args:
        scene_files: scene-major HDF5 files, each with `images` uint8 (S, V, H, W, 3), `azimuth` and
            `elevation` float (S, V) degrees, `radius` float (S, V) metres, `voxels` uint8 (S, D, D, D) 0/1
            in the unit cube, `scene_index` int (S,), attribute `split`; optional `albedo` uint8
            (S, V, H, W, 3) and `normal` float (S, V, H, W, 3). At most one file per split.
        out_dir: the export's folder; must be absent or empty.
        round_radius: round radii that one decimal does not hold instead of refusing them.
    Returns:
        What was written.
    Raises:
        ExportError: a missing or malformed dataset, a pose RenderNet cannot name, two files of one split,
            a scene in two files, or a non-empty `out_dir`. Nothing is published then.
    """
    out_dir = Path(out_dir)
    if not scene_files:
        raise ExportError("export_rendernet needs at least one scene file")
    refuse_non_empty(out_dir)  # an empty folder may stay: rename(2) replaces an empty directory
    splits: dict[str, Path] = {}
    objects: set[str] = set()
    images = rounded = 0
    with publish.Staged(out_dir, folder=True) as staged:
        (staged.path / "images").mkdir()
        (staged.path / "voxels").mkdir()
        for scene_file in scene_files:
            split, names, n_rounded, file_objects = _export_file(Path(scene_file), staged.path, round_radius)
            if split in splits:
                raise ExportError(f"{scene_file}: split {split!r} was already exported from {splits[split]}; "
                                  "pass one file per split")
            repeated = objects & file_objects
            if repeated:
                raise ExportError(f"{scene_file}: object {sorted(repeated)[0]} is also in an earlier file; "
                                  "a scene index must be in one split only")
            splits[split] = Path(scene_file)
            objects |= file_objects
            images += len(names)
            rounded += n_rounded
            _write_tar(staged.path / f"images_{split}.tar", staged.path / "images", names)
    if not staged.published:
        raise ExportError(f"{out_dir}: another writer published this folder during the export; use a new folder")
    if rounded:
        logger.warning("RenderNet export: rounded %d radii to one decimal", rounded)
    tars = {split: out_dir / f"images_{split}.tar" for split in splits}
    logger.info("RenderNet export: %d objects, %d views -> %s", len(objects), images, out_dir)
    return RenderNetExport(folder=out_dir, objects=len(objects), images=images, tars=tars, rounded_radii=rounded)


def _export_file(scene_file: Path, root: Path, round_radius: bool) -> tuple[str, list[str], int, set[str]]:
    """Writes one file's images and voxels under `root`; returns (split, shaded file names, rounded radii,
    object names)."""
    with open_scene_file(scene_file) as fh:
        imgs = check_dataset(fh, "images", "u", (None, None, None, None, 3))
        if imgs.dtype != np.uint8:
            raise ExportError(f"{scene_file}: 'images' must be uint8 sRGB, got {imgs.dtype}")
        s, v, h, w, _ = imgs.shape
        poses = {}
        for name in ("azimuth", "elevation", "radius"):
            poses[name] = np.asarray(check_dataset(fh, name, "f", (s, v))[()], dtype=np.float64)
            check_finite(fh, name, poses[name])
        voxels = check_dataset(fh, "voxels", "ui", (s, None, None, None))
        if len(set(voxels.shape[1:])) != 1:
            raise ExportError(f"{scene_file}: 'voxels' must be cubic (S, D, D, D), got {voxels.shape}")
        albedo = check_dataset(fh, "albedo", "u", (s, v, h, w, 3), required=False)
        normal = check_dataset(fh, "normal", "f", (s, v, h, w, 3), required=False)
        split = split_of_file(fh)
        ids = scene_ids(fh, s)
        names, rounded, objects = [], 0, set()
        for row, scene_id in enumerate(ids):
            obj = object_name(scene_id)
            stems = _scene_stems(scene_file, row, obj, poses, round_radius)
            rounded += sum(abs(r - round(r, 1)) > _RADIUS_EXACT for r in poses["radius"][row])
            for k, stem in enumerate(stems):
                publish.write_bytes(root / "images" / f"{stem}.png", encode_png8(imgs[row, k]))
                if albedo is not None:
                    publish.write_bytes(root / "images" / f"{stem}_albedo.png", encode_png8(albedo[row, k]))
                if normal is not None:
                    publish.write_bytes(root / "images" / f"{stem}_normal.png", encode_png8(_normal8(normal[row, k])))
                names.append(f"{stem}.png")
            grid = np.asarray(voxels[row])
            if grid.size and grid.max() > 1:
                raise ExportError(f"{scene_file}: 'voxels' of scene {scene_id} hold values above 1; expected 0/1")
            write_binvox(root / "voxels" / f"{obj}.binvox", grid.astype(np.uint8), UNIT_CUBE_TRANSLATE,
                         UNIT_CUBE_SCALE)
            objects.add(obj)
    return split, names, int(rounded), objects


def _scene_stems(scene_file: Path, row: int, obj: str, poses: dict[str, np.ndarray],
                 round_radius: bool) -> list[str]:
    stems: dict[str, int] = {}
    for k in range(poses["azimuth"].shape[1]):
        try:
            r = radius_text(poses["radius"][row, k], round_radius)
            stem = pose_name(obj, poses["azimuth"][row, k], poses["elevation"][row, k], r)
        except ExportError as exc:
            raise ExportError(f"{scene_file}: scene row {row}, view {k}: {exc}") from None
        if stem in stems:
            raise ExportError(f"{scene_file}: scene row {row}: views {stems[stem]} and {k} both name {stem!r} "
                              "(poses equal to 0.01 deg and 0.1 m); RenderNet needs one image per pose")
        stems[stem] = k
    return list(stems)


def _normal8(normal: np.ndarray) -> np.ndarray:
    n = np.nan_to_num(np.asarray(normal, dtype=np.float32), nan=0.0, posinf=1.0, neginf=-1.0)
    return np.rint((np.clip(n, -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8)


def _write_tar(final: Path, folder: Path, names: list[str]) -> None:
    """An uncompressed TAR of `folder/<name>` for each name, flat, sorted, with fixed member metadata."""
    with publish.Staged(final) as staged, tarfile.open(staged.path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for name in sorted(names):
            data = (folder / name).read_bytes()
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))


SCENE_FILES = ("scenes_train.h5", "scenes_val.h5", "scenes_test.h5")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m pipeline.layouts.export_rendernet`."""
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.layouts.export_rendernet",
        description="Export a consolidated RenderNet dataset (scenes_{train,val,test}.h5 with voxels, "
        "docs/formats.md §3) to RenderNet's layout: pose-named PNGs (+ _albedo / _normal), one binvox per "
        "object and an uncompressed TAR of the shaded views per split.",
        epilog="Example: python -m pipeline.layouts.export_rendernet -d rendernet --out /data/rendernet_export",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("-d", "--dataset_name", help="dataset folder under DATA_DIR, consolidated with "
                        "`preprocess_data.py -d NAME -f`; its scenes_*.h5 files are exported")
    source.add_argument("--files", nargs="+", type=Path, metavar="H5", help="scene files to export (one per split)")
    parser.add_argument("--out", type=Path, required=True, help="output folder; must be absent or empty")
    parser.add_argument("--round-radius", action="store_true",
                        help="round radii that one decimal does not hold instead of refusing them")
    parser.add_argument("-q", "--quiet", action="store_true", help="log warnings and errors only")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the export; returns 0 on success, 2 for missing inputs or a refused export (the reason is logged)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.quiet else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if args.files:
        files = list(args.files)
    else:
        import paths

        folder = paths.DATA_DIR / args.dataset_name
        files = [folder / name for name in SCENE_FILES if (folder / name).is_file()]
        if not files:
            logger.error("%s holds no scene files (%s); consolidate it first: python preprocess_data.py -d %s -f",
                         folder, ", ".join(SCENE_FILES), args.dataset_name)
            return 2
    try:
        result = export_rendernet(files, args.out, round_radius=args.round_radius)
    except ExportError as exc:
        logger.error("%s", exc)
        return 2
    print(f"exported {result.objects} objects, {result.images} views into {result.folder} "
          f"({', '.join(f'{k}: {v.name}' for k, v in sorted(result.tars.items()))})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
