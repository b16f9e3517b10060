"""What the exports of scene-major files (docs/formats.md §3) to other projects' layouts share: opening and
checking the input, naming scenes, and refusing to write over existing output.

Every check names the file and the field and says what was expected, before anything is written.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from core.samples import SPLITS, sample_dir_name


class ExportError(ValueError):
    """An input file or an output folder an export cannot use; the message names it and the fix."""


def open_scene_file(path: str | os.PathLike) -> h5py.File:
    """Opens a scene-major HDF5 file read-only.

    Raises:
        ExportError: the file is missing or not HDF5.
    """
    path = Path(path)
    if not path.is_file():
        raise ExportError(f"{path}: no such scene file; consolidate the dataset first (preprocess_data.py -f)")
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ExportError(f"{path}: not a readable HDF5 file ({exc})") from exc


def check_dataset(fh: h5py.File, name: str, dtypes: str, shape: Sequence[int | None],
                  required: bool = True) -> h5py.Dataset | None:
    """Checks that dataset `name` of `fh` has one of `dtypes` and `shape` (None = any size on that axis).

    Args:
        fh: the open scene file.
        name: dataset name, e.g. "images".
        dtypes: numpy kind characters allowed ("u" unsigned, "i" signed, "f" float).
        shape: expected shape; None entries match any size.
        required: raise when absent (else return None).
    Returns:
        The dataset, or None when it is absent and not required.
    Raises:
        ExportError: absent but required, or of another kind or shape.
    """
    if name not in fh:
        if required:
            raise ExportError(f"{fh.filename}: dataset '{name}' is missing; this export needs it")
        return None
    ds = fh[name]
    if not isinstance(ds, h5py.Dataset) or ds.dtype.kind not in dtypes:
        kind = ds.dtype if isinstance(ds, h5py.Dataset) else "a group"
        raise ExportError(f"{fh.filename}: dataset '{name}' must be of numpy kind {dtypes!r}, got {kind}")
    if len(ds.shape) != len(shape) or any(e is not None and e != s for e, s in zip(shape, ds.shape, strict=True)):
        want = "(" + ", ".join("*" if e is None else str(e) for e in shape) + ")"
        raise ExportError(f"{fh.filename}: dataset '{name}' has shape {ds.shape}, expected {want}")
    return ds


def check_finite(fh: h5py.File, name: str, values: np.ndarray) -> None:
    """Raises ExportError naming the first scene and view of a NaN or infinite value of `name`."""
    bad = np.argwhere(~np.isfinite(values))
    if len(bad):
        raise ExportError(f"{fh.filename}: dataset '{name}' holds a non-finite value at index {bad[0].tolist()}")


def split_of_file(fh: h5py.File) -> str:
    """The file's `split` attribute, checked against core.samples.SPLITS."""
    split = fh.attrs.get("split")
    if isinstance(split, bytes):
        split = split.decode("utf-8")
    if split not in SPLITS:
        raise ExportError(f"{fh.filename}: attribute 'split' is {split!r}; expected one of {list(SPLITS)}")
    return str(split)


def scene_ids(fh: h5py.File, scenes: int) -> list[str]:
    """Six-digit names of the file's scenes from `scene_index` (core.samples.sample_dir_name), in row order.

    Raises:
        ExportError: `scene_index` missing, of another length, negative or repeated.
    """
    ds = check_dataset(fh, "scene_index", "iu", (scenes,))
    index = np.asarray(ds[()], dtype=np.int64)
    if index.size and index.min() < 0:
        raise ExportError(f"{fh.filename}: 'scene_index' holds a negative index {int(index.min())}")
    values, counts = np.unique(index, return_counts=True)
    if np.any(counts > 1):
        raise ExportError(f"{fh.filename}: 'scene_index' repeats scene {int(values[counts > 1][0])}; "
                          "each row must be a different scene")
    return [sample_dir_name(int(i)) for i in index]


def refuse_non_empty(folder: Path) -> None:
    """Raises ExportError when `folder` exists and holds anything (hidden entries included)."""
    if folder.exists() and not folder.is_dir():
        raise ExportError(f"{folder}: exists and is not a folder; choose another output path")
    if folder.is_dir():
        entries = sorted(p.name for p in folder.iterdir())
        if entries:
            shown = ", ".join(entries[:3]) + (", ..." if len(entries) > 3 else "")
            raise ExportError(f"{folder}: output folder is not empty ({len(entries)} entries: {shown}); "
                              "exports never write over earlier output: remove it or choose another folder")
