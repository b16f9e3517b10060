"""A general capture layout: a folder of photos plus a pose file, or a folder of such folders (one per scene).

    my_captures/                 # SRC: scene folders, sorted by name; scene index = position (0, 1, ...)
      kitchen/
        poses.json               # or poses.csv
        IMG_0001.jpg ...
      desk/ ...

SRC may also be a single scene folder (it holds the pose file itself). Every photo of a scene needs exactly one
pose entry naming it, and every entry a photo; views are ordered by file name. docs/captures.md gives the pose
file formats; in short, per photo either a viewpoint (`[x, y, z, yaw, pitch]` radians, or the 7 numbers of
`core.camera.VIEWPOINT_ORDER`) or `cam_to_world` (4x4, OpenCV axes unless `"convention": "blender"`), and the
intrinsics as `K` (per photo or for the file, pixels of the photo as stored) or `fov_deg` (horizontal).

`plan_capture` checks the whole layout (listings, pose files, photo headers) before anything is decoded or
written; `read_scenes` then decodes, frames and yields one `SceneArrays` at a time, and `import_plan` writes
them (the fruit layout of `pipeline.captures.fruit` plans into the same `CapturePlan`).
"""

from __future__ import annotations

import csv
import json
import logging
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core import camera, publish
from core.samples import SPLITS, split_of
from pipeline.captures.photos import Framing, list_photos, photo_size, read_framed, square_framing
from pipeline.captures.scene import (
    CaptureError,
    SceneArrays,
    cameras_from_xyzyp,
    viewpoints_from_xyzyp,
    xyzyp_from_cameras,
    xyzyp_from_viewpoints,
)
from pipeline.captures.writer import write_scenes
from pipeline.formats import hdf5 as h5_out

logger = logging.getLogger(__name__)

POSE_FILES = ("poses.json", "poses.csv")
REPORT = "import.json"
_CSV_VIEWPOINTS = (("x", "y", "z", "yaw", "pitch"),
                   ("x", "y", "z", "sin_yaw", "cos_yaw", "sin_pitch", "cos_pitch"))
_CSV_K = ("fx", "fy", "cx", "cy")


@dataclass
class PlannedScene:
    """One scene, checked but not decoded.

    Attributes:
        index: scene index (rows are sorted by it).
        name: folder name, for messages and import.json.
        photos: the V photo paths in view order.
        sizes: (width, height) of each photo as stored.
        xyzyp: float64 (V, 5) viewpoints.
        cam_to_world: float64 (V, 4, 4) OpenCV camera-to-world.
        K: float64 (V, 3, 3) intrinsics of the photos as stored, or None when `CapturePlan.K_out` gives them.
        split: "train", "val" or "test".
    """

    index: int
    name: str
    photos: list[Path]
    sizes: list[tuple[int, int]]
    xyzyp: np.ndarray
    cam_to_world: np.ndarray
    K: np.ndarray | None
    split: str


@dataclass
class CapturePlan:
    """What an import will write; see `read_scenes`.

    Attributes:
        source: the folder imported.
        scenes: scenes in index order.
        framing: per-photo framing, or None for `square_framing(size)` of each photo.
        size: side of the square images when `framing` is None.
        K_out: (3, 3) intrinsics of every framed image, used when the source gives none (assumed).
        attrs: HDF5 attributes describing the source (importer, K_assumed, K_source, ...).
    """

    source: Path
    scenes: list[PlannedScene]
    framing: Framing | None
    size: int = 64
    K_out: np.ndarray | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    def framing_of(self, width: int, height: int) -> Framing:
        return self.framing if self.framing is not None else square_framing(width, height, self.size)

    def report(self) -> dict[str, Any]:
        """What import.json records about the scenes."""
        return {"scenes": [{"index": s.index, "folder": s.name, "split": s.split,
                            "photos": [p.name for p in s.photos]} for s in self.scenes]}


def _parse_matrix(value: Any, shape: tuple[int, int], where: str) -> np.ndarray:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.shape != shape or not np.all(np.isfinite(arr)):
        raise CaptureError(f"{where}: expected a {shape[0]}x{shape[1]} matrix of finite numbers, got {value!r}")
    return arr


def _viewpoint(value: Any, where: str) -> np.ndarray:
    """A 5- or 7-number viewpoint -> [x, y, z, yaw, pitch]."""
    try:
        arr = np.asarray(value, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        arr = np.zeros(0)
    if arr.size not in (5, 7) or not np.all(np.isfinite(arr)):
        raise CaptureError(f"{where}: a viewpoint is 5 numbers [x, y, z, yaw, pitch] (radians) or 7 in the order "
                           f"{camera.VIEWPOINT_ORDER}, got {value!r}")
    if arr.size == 5:
        return arr
    try:
        return xyzyp_from_viewpoints(arr)[0]
    except CaptureError as err:
        raise CaptureError(f"{where}: {err}") from None


def _K_from_fov(fov: Any, width: int, height: int, where: str) -> np.ndarray:
    try:
        return camera.intrinsics(width, height, float(fov))
    except (TypeError, ValueError) as err:
        raise CaptureError(f"{where}: fov_deg {fov!r} is not a field of view in (0, 180) degrees ({err})") from None


@dataclass
class _Pose:
    xyzyp: np.ndarray
    cam_to_world: np.ndarray
    K: np.ndarray | None


def _pose_from_entry(entry: dict[str, Any], where: str) -> _Pose:
    if "cam_to_world" in entry:
        c2w = _parse_matrix(entry["cam_to_world"], (4, 4), f"{where} cam_to_world")
        convention = entry.get("convention", "opencv")
        if convention == "blender":
            c2w = camera.blender_to_opencv(c2w)
        elif convention != "opencv":
            raise CaptureError(f"{where}: convention {convention!r} is not 'opencv' or 'blender'")
        try:
            xyzyp = xyzyp_from_cameras(c2w)[0]
        except CaptureError as err:
            raise CaptureError(f"{where}: {err}") from None
    elif "viewpoint" in entry:
        xyzyp = _viewpoint(entry["viewpoint"], f"{where} viewpoint")
        c2w = cameras_from_xyzyp(xyzyp[None])[0].astype(np.float64)
    else:
        raise CaptureError(f"{where}: give the photo's pose as \"viewpoint\" (5 or 7 numbers) or \"cam_to_world\" (4x4)")
    K = _parse_matrix(entry["K"], (3, 3), f"{where} K") if "K" in entry else None
    return _Pose(xyzyp, c2w, K)


def read_pose_file(path: Path) -> tuple[dict[str, _Pose], dict[str, Any]]:
    """Poses by photo name and the file-level settings (`K`, `fov_deg`) of a poses.json or poses.csv.

    Raises:
        CaptureError: unreadable file, bad entry, or a photo named twice; the message names the file and entry.
    """
    poses: dict[str, _Pose] = {}
    settings: dict[str, Any] = {}

    def put(name: str, pose: _Pose, where: str) -> None:
        if name in poses:
            raise CaptureError(f"{where}: photo {name!r} has a second pose entry; keep one")
        poses[name] = pose

    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise CaptureError(f"{path}: not valid JSON ({err}); fix the file (docs/captures.md shows the format)") from None
        if not isinstance(data, dict) or not isinstance(data.get("views"), list):
            raise CaptureError(f"{path}: expected an object with a \"views\" list (docs/captures.md)")
        for key in ("K", "fov_deg", "split"):
            if key in data:
                settings[key] = data[key]
        for i, entry in enumerate(data["views"]):
            where = f"{path} views[{i}]"
            if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
                raise CaptureError(f"{where}: each view is an object naming its photo in \"file\"")
            put(entry["file"], _pose_from_entry(entry, where), where)
    else:
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            columns = tuple(reader.fieldnames or ())
            form = next((f for f in _CSV_VIEWPOINTS if set(f) <= set(columns)), None)
            if "file" not in columns or form is None:
                raise CaptureError(f"{path}: the header needs `file` and either {','.join(_CSV_VIEWPOINTS[0])} or "
                                   f"{','.join(_CSV_VIEWPOINTS[1])} (optional {','.join(_CSV_K)}); it has {list(columns)}")
            with_K = set(_CSV_K) <= set(columns)
            for line, row in enumerate(reader, start=2):
                where = f"{path} line {line}"
                try:
                    numbers = [float(row[c]) for c in form]
                    K = None
                    if with_K:
                        fx, fy, cx, cy = (float(row[c]) for c in _CSV_K)
                        K = [[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]]
                except (TypeError, ValueError):
                    raise CaptureError(f"{where}: a number is missing or malformed in {row}") from None
                entry: dict[str, Any] = {"viewpoint": numbers}
                if K is not None:
                    entry["K"] = K
                put(row["file"], _pose_from_entry(entry, where), where)
    if not poses:
        raise CaptureError(f"{path}: no pose entries; list one per photo")
    return poses, settings


def pose_file_of(folder: Path) -> Path | None:
    """The scene's pose file, or None.

    Raises:
        CaptureError: both poses.json and poses.csv are present.
    """
    found = [folder / n for n in POSE_FILES if (folder / n).is_file()]
    if len(found) > 1:
        raise CaptureError(f"{folder}: holds both poses.json and poses.csv; keep one")
    return found[0] if found else None


def _plan_scene(folder: Path, index: int, split: str, fov_deg: float | None) -> PlannedScene:
    pose_path = pose_file_of(folder)
    if pose_path is None:
        raise CaptureError(f"{folder}: no poses.json or poses.csv; add one listing a pose per photo (docs/captures.md)")
    poses, settings = read_pose_file(pose_path)
    if "split" in settings:  # the scene's own declaration (e.g. held-out real scenes) wins over --split and the rule
        if settings["split"] not in SPLITS:
            raise CaptureError(f"{pose_path}: \"split\" is {settings['split']!r}; use one of {list(SPLITS)} or leave "
                               "it out (then --split or the index % 12 rule decides)")
        split = settings["split"]
    photos = list_photos(folder)
    names = {p.name for p in photos}
    missing = sorted(set(poses) - names)
    extra = sorted(names - set(poses))
    if missing:
        raise CaptureError(f"{pose_path} lists {len(missing)} photo(s) missing from {folder}: {missing[:5]}; add the "
                           "photos or delete their entries")
    if extra:
        raise CaptureError(f"{folder}: {len(extra)} photo(s) without a pose in {pose_path.name}: {extra[:5]}; add "
                           "their poses or move them out of the folder")
    sizes = [photo_size(p) for p in photos]
    Ks = []
    for photo, (w, h) in zip(photos, sizes, strict=True):
        pose = poses[photo.name]
        if pose.K is not None:
            Ks.append(pose.K)
        elif "K" in settings:
            Ks.append(_parse_matrix(settings["K"], (3, 3), f"{pose_path} K"))
        elif "fov_deg" in settings:
            Ks.append(_K_from_fov(settings["fov_deg"], w, h, str(pose_path)))
        elif fov_deg is not None:
            Ks.append(_K_from_fov(fov_deg, w, h, "--fov-deg"))
        else:
            raise CaptureError(f"{pose_path}: no intrinsics for {photo.name}; add \"K\" (per photo or for the file) "
                               "or \"fov_deg\" to the pose file, or pass --fov-deg")
    return PlannedScene(index=index, name=folder.name, photos=photos, sizes=sizes,
                        xyzyp=np.stack([poses[p.name].xyzyp for p in photos]),
                        cam_to_world=np.stack([poses[p.name].cam_to_world for p in photos]),
                        K=np.stack(Ks), split=split)


def plan_capture(src: str | Path, framing: Framing | None = None, size: int = 64, fov_deg: float | None = None,
                 split: str | None = None) -> CapturePlan:
    """Checks a capture folder (docs/captures.md) and plans its import.

    Args:
        src: one scene folder (with its pose file) or a folder of scene folders.
        framing: resize-then-crop for every photo; None: shorter side to `size`, centred square crop.
        size: see `framing`.
        fov_deg: horizontal field of view for photos whose pose file gives no intrinsics.
        split: put every scene in this split; None: the project's rule (index % 12: 0-9 train, 10 val, 11 test).
            A poses.json with a `"split"` entry puts its scene there whatever this says.

    Raises:
        CaptureError: naming the file and the fix.
    """
    src = Path(src)
    if not src.is_dir():
        raise CaptureError(f"{src}: no such folder; give the folder of your captures")
    if split is not None and split not in SPLITS:
        raise CaptureError(f"split {split!r} is not one of {SPLITS}")
    if pose_file_of(src) is not None:
        folders = [src]
    else:
        folders = sorted((p for p in src.iterdir() if p.is_dir() and not p.name.startswith(".")), key=lambda p: p.name)
        if not folders:
            raise CaptureError(f"{src}: holds neither a pose file (poses.json / poses.csv) nor scene folders; lay it "
                               "out as docs/captures.md shows")
    scenes = [_plan_scene(f, i, split or split_of(i), fov_deg) for i, f in enumerate(folders)]
    plan = CapturePlan(source=src, scenes=scenes, framing=framing, size=size,
                       attrs={"importer": "capture", "generator": "capture", "source": str(src.resolve()),
                              "K_assumed": False, "K_source": "the pose files (K or fov_deg) or --fov-deg"})
    check_plan(plan)
    return plan


def check_plan(plan: CapturePlan) -> None:
    """Every scene has the same number of views and every framed photo the same size (one scene-major file).

    Raises:
        CaptureError: naming the first scene or photo that differs.
    """
    first = plan.scenes[0]
    for scene in plan.scenes:
        if len(scene.photos) != len(first.photos):
            raise CaptureError(f"{scene.photos[0].parent}: {len(scene.photos)} photos, but {first.name} has "
                               f"{len(first.photos)}; a dataset holds one view count: import scenes of another count "
                               "into another -d NAME")
    out = plan.framing_of(*first.sizes[0]).output_size(*first.sizes[0])
    for scene in plan.scenes:
        for photo, size in zip(scene.photos, scene.sizes, strict=True):
            got = plan.framing_of(*size).output_size(*size)
            if got != out:
                raise CaptureError(f"{photo}: {size[0]}x{size[1]} frames to {got[0]}x{got[1]}, not {out[0]}x{out[1]} "
                                   f"like {first.photos[0].name}; give --resize/--crop that fit every photo")


def read_scene(plan: CapturePlan, scene: PlannedScene) -> SceneArrays:
    """Decodes and frames one planned scene."""
    images, Ks = [], []
    for i, (photo, (w, h)) in enumerate(zip(scene.photos, scene.sizes, strict=True)):
        framing = plan.framing_of(w, h)
        image = read_framed(photo, framing)
        images.append(image)
        if scene.K is not None:
            Ks.append(framing.apply_K(scene.K[i], w, h))
        else:
            Ks.append(plan.K_out)
    return SceneArrays(scene_index=scene.index, images=np.stack(images),
                       viewpoints=viewpoints_from_xyzyp(scene.xyzyp), viewpoints_xyzyp=scene.xyzyp.astype(np.float32),
                       K=np.stack(Ks).astype(np.float32), cam_to_world=scene.cam_to_world.astype(np.float32))


def read_scenes(plan: CapturePlan) -> Iterator[tuple[str, SceneArrays]]:
    """(split, scene) of every planned scene, one at a time, in index order."""
    for scene in plan.scenes:
        yield scene.split, read_scene(plan, scene)


def import_plan(plan: CapturePlan, dataset_dir: Path, overwrite: bool = False) -> dict[str, int]:
    """Writes a planned capture import into `dataset_dir` (scenes_{split}.h5 and import.json).

    A folder this call creates is removed again when the import fails, so bad input leaves no output.

    Raises:
        CaptureError: the folder already holds scene files (without `overwrite`), or bad input met while decoding.
    """
    present = sorted(p.name for p in dataset_dir.glob("scenes_*.h5")) if dataset_dir.is_dir() else []
    if present and not overwrite:
        raise CaptureError(f"{dataset_dir} already holds {present}; pick another -d NAME or pass --overwrite")
    created = not dataset_dir.exists()
    try:
        dataset_dir.mkdir(parents=True, exist_ok=True)
        with h5_out.dataset_lock(dataset_dir):
            rows = write_scenes(dataset_dir, read_scenes(plan), plan.attrs)
            publish.write_json(dataset_dir / REPORT, {
                "format_version": 1, **plan.attrs, "rows": rows, **plan.report()})
    except BaseException:
        if created:
            shutil.rmtree(dataset_dir, ignore_errors=True)
        raise
    return rows
