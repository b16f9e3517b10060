"""The raw render output of docs/formats.md §1 as seen by consolidation, validation and the contact sheet.

Finds the published sample folders (six digits; ``.tmp-*`` folders are debris of killed renders and are ignored),
loads and checks sidecars and reads the render manifest. Folder names, the sidecar's name and the split rule are
:mod:`core.samples`'.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.layout import DATASET_JSON
from core.layout import read_dataset_json as _read_dataset_json
from core.publish import TMP_PREFIX
from core.samples import SAMPLE_DIR_RE, SIDECAR, samples_dir

logger = logging.getLogger(__name__)

#: Per-object sidecar fields that consolidation stores, with their per-object shape.
OBJECT_FIELDS: dict[str, tuple[int, ...]] = {
    "rot_mat": (3, 3),
    "quaternion": (4,),
    "euler": (3,),
    "bbox": (2, 3),
    "scale": (3,),
    "location": (3,),
    "centroid": (3,),
}
#: Per-view sidecar fields that consolidation stores, with their shape.
VIEW_FIELDS: dict[str, tuple[int, ...]] = {
    "K": (3, 3),
    "cam_to_world_opencv": (4, 4),
    "cam_to_world_blender": (4, 4),
    "viewpoint_gqn": (7,),
    "viewpoint_xyzyp": (5,),
}


class SidecarError(ValueError):
    """A missing or invalid ``sample.json``; the message names the file and the problem."""


@dataclass
class Sample:
    """One published sample folder with its checked sidecar.

    Attributes:
        index: sample index (the folder name).
        path: the sample folder.
        sidecar: the parsed ``sample.json``.
    """

    index: int
    path: Path
    sidecar: dict[str, Any] = field(repr=False)

    @property
    def name(self) -> str:
        """The folder name, e.g. ``000042``."""
        return self.path.name

    @property
    def views(self) -> list[dict[str, Any]]:
        """The sidecar's views."""
        return self.sidecar["views"]

    def view_path(self, view: int) -> Path:
        """Path of the image file of view ``view``."""
        return self.path / self.views[view]["file"]

    @property
    def resolution(self) -> tuple[int, int]:
        """(width, height) from the sidecar."""
        w, h = self.sidecar["resolution"]
        return int(w), int(h)


def list_sample_dirs(dataset_dir: Path) -> list[Path]:
    """Published sample folders, sorted by index.

    ``.tmp-*`` folders (renders in progress or killed) are skipped; other unexpected names are logged and skipped.
    """
    root = samples_dir(dataset_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} does not exist; render the dataset first (python render.py -d NAME)")
    out = []
    for entry in sorted(os.listdir(root)):
        path = root / entry
        if SAMPLE_DIR_RE.match(entry) and path.is_dir():
            out.append(path)
        elif entry.startswith(TMP_PREFIX):
            logger.debug("skipping unpublished sample folder %s", path)
        else:
            logger.warning("skipping unexpected entry %s in %s", entry, root)
    return out


def _check_shape(where: str, value: Any, shape: tuple[int, ...]) -> None:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SidecarError(f"{where} is not numeric ({exc})") from exc
    if arr.shape != shape:
        raise SidecarError(f"{where} has shape {arr.shape}, expected {shape}")
    if not np.all(np.isfinite(arr)):
        raise SidecarError(f"{where} has non-finite values")


def check_sidecar(sidecar: Any, where: str, index: int | None = None) -> None:
    """Checks the fields of a ``sample.json`` that consolidation and validation read.

    Args:
        sidecar: the parsed JSON.
        where: the file, for messages.
        index: the index the folder name implies, if known.

    Raises:
        SidecarError: naming the first bad field.
    """
    if not isinstance(sidecar, dict):
        raise SidecarError(f"{where}: top level is {type(sidecar).__name__}, expected an object")
    for key in ("index", "resolution", "views", "objects", "classes"):
        if key not in sidecar:
            raise SidecarError(f"{where}: missing key {key!r} (docs/formats.md §1)")
    if index is not None and sidecar["index"] != index:
        raise SidecarError(f"{where}: index {sidecar['index']!r} does not match its folder ({index})")
    res = sidecar["resolution"]
    if not (isinstance(res, list) and len(res) == 2 and all(isinstance(v, int) and v > 0 for v in res)):
        raise SidecarError(f"{where}: resolution {res!r} is not [width, height]")
    views = sidecar["views"]
    if not isinstance(views, list) or not views:
        raise SidecarError(f"{where}: 'views' must be a non-empty list")
    for i, view in enumerate(views):
        if not isinstance(view, dict) or not isinstance(view.get("file"), str):
            raise SidecarError(f"{where}: views[{i}] has no 'file'")
        if Path(view["file"]).name != view["file"]:
            raise SidecarError(f"{where}: views[{i}].file {view['file']!r} must be a plain file name")
        for key, shape in VIEW_FIELDS.items():
            if key not in view:
                raise SidecarError(f"{where}: views[{i}] has no {key!r}")
            _check_shape(f"{where}: views[{i}].{key}", view[key], shape)
    if not isinstance(sidecar["classes"], list):
        raise SidecarError(f"{where}: 'classes' must be a list of names")
    if not isinstance(sidecar["objects"], list):
        raise SidecarError(f"{where}: 'objects' must be a list")
    n_classes = len(sidecar["classes"])
    for i, obj in enumerate(sidecar["objects"]):
        if not isinstance(obj, dict):
            raise SidecarError(f"{where}: objects[{i}] is not an object")
        for key in ("instance_id", "class_index"):
            if not isinstance(obj.get(key), int):
                raise SidecarError(f"{where}: objects[{i}].{key} missing or not an integer")
        if not 0 <= obj["class_index"] < n_classes:
            raise SidecarError(f"{where}: objects[{i}].class_index {obj['class_index']} outside classes")
        for key, shape in OBJECT_FIELDS.items():
            if key not in obj:
                raise SidecarError(f"{where}: objects[{i}] has no {key!r}")
            _check_shape(f"{where}: objects[{i}].{key}", obj[key], shape)
    if "light" in sidecar:
        _check_shape(f"{where}: light", sidecar["light"], (3,))


def load_sample(path: Path) -> Sample:
    """Loads and checks the sidecar of a sample folder.

    Raises:
        SidecarError: missing, unparsable or invalid ``sample.json``.
    """
    sidecar_path = path / SIDECAR
    try:
        text = sidecar_path.read_text()
    except FileNotFoundError as exc:
        raise SidecarError(f"{sidecar_path}: missing sidecar") from exc
    try:
        sidecar = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SidecarError(f"{sidecar_path}: invalid JSON ({exc})") from exc
    index = int(path.name)
    check_sidecar(sidecar, str(sidecar_path), index)
    return Sample(index=index, path=path, sidecar=sidecar)


def read_manifest(dataset_dir: Path) -> list[int] | None:
    """Sample indices the render manifest promises, sorted; None when there is no ``manifest.jsonl``.

    Each line is a JSON object with at least ``"samples": [indices]`` (one line per finished shard). A last line
    without its newline is one the driver never finished (see pipeline/distribution/manifest.py) and is ignored.

    Raises:
        ValueError: a line that is not such an object, naming the line.
    """
    path = Path(dataset_dir) / "manifest.jsonl"
    if not path.is_file():
        return None
    indices: set[int] = set()
    lines = path.read_text().split("\n")
    torn = lines.pop()  # "" when the file ends with a newline; else a line a killed driver never finished
    if torn.strip():
        logger.warning("%s: ignoring a torn last line left by an interrupted render", path)
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{lineno}: invalid JSON ({exc})") from exc
        samples = entry.get("samples") if isinstance(entry, dict) else None
        if not isinstance(samples, list) or not all(isinstance(i, int) for i in samples):
            raise ValueError(f"{path}:{lineno}: expected an object with 'samples': [int, ...]")
        indices.update(samples)
    return sorted(indices)


def read_dataset_json(dataset_dir: Path) -> dict[str, Any] | None:
    """``dataset.json`` of §1, or None when absent.

    Raises:
        LayoutError: it exists but is not a JSON object (:func:`core.layout.read_dataset_json`).
    """
    if not (Path(dataset_dir) / DATASET_JSON).is_file():
        return None
    return _read_dataset_json(dataset_dir)
