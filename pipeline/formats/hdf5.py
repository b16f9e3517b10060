"""Atomic, reproducible HDF5 output shared by consolidation and preprocessing.

- Atomic: a file ``X.h5`` is written under the project's one temporary name (``.tmp-<pid>-<host>~X.h5`` in the
  same folder, :mod:`core.publish`) and renamed with ``os.replace`` only when complete; a killed run leaves the
  previous good ``X.h5`` (or none) plus debris whose name starts with a dot. The next run (holding the dataset
  lock) removes the debris of dead writers.
- Reproducible: datasets are created with ``track_times=False`` and the file with a fixed ``libver``, so the same
  input gives the same bytes.
- One writer: :func:`dataset_lock` holds the dataset folder's writer lock (:mod:`core.lock`), the one every
  writer of the folder takes (renderers, consolidation, exports, imports).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5s

from core.lock import DatasetLock
from core.publish import fsync, remove_dead_debris, temp_path

logger = logging.getLogger(__name__)

LIBVER = ("v110", "v110")


class DiskFullError(OSError):
    """Too little space is left to write an HDF5 file; the message names the path, the bytes needed and free."""

    def __init__(self, path: Path, needed: int, free: int) -> None:
        super().__init__(f"no space left on device for {path}: about {needed} bytes needed, {free} bytes free; "
                         "free some space (or move the dataset) and run again")
        self.path, self.needed, self.free = path, needed, free


#: Space kept free while writing: HDF5 writes its metadata (chunk indices, the superblock) when a file closes, and
#: a write that fails there leaves h5py unable to close the file (seen: a segfault after ENOSPC at close).
MIN_HEADROOM = 4 * 2**20


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path`."""
    st = os.statvfs(Path(path).parent)
    return st.f_bavail * st.f_frsize


def temp_size(path: Path) -> int:
    """Bytes the temporary file of `path` holds so far (0 when there is none)."""
    try:
        return tmp_path(path).stat().st_size
    except FileNotFoundError:
        return 0


def reserve(path: Path, nbytes: int) -> None:
    """Raises DiskFullError unless `nbytes` more fit beside `path` with MIN_HEADROOM to spare.

    Writers call it before each write, so a full disk stops them while HDF5 can still close (and they can
    delete) their temporary files, instead of failing inside HDF5.
    """
    free = free_bytes(path)
    if free < nbytes + MIN_HEADROOM:
        raise DiskFullError(path, nbytes + MIN_HEADROOM, free)


@contextlib.contextmanager
def dataset_lock(dataset_dir: Path, what: str = "preprocess_data.py") -> Iterator[None]:
    """Holds the dataset folder's writer lock and removes dead writers' temporary files once it is held.

    Raises:
        DatasetLockedError: another writer (a render, another consolidation) holds the folder.
    """
    with DatasetLock(dataset_dir, what):
        remove_dead_debris(dataset_dir)
        yield


def tmp_path(path: Path) -> Path:
    """The temporary name a file is written under before it is published (:func:`core.publish.temp_path`)."""
    return temp_path(path)


def create_h5(path: Path) -> h5py.File:
    """Opens the temporary file of ``path`` for writing (fixed libver, no times)."""
    return h5py.File(tmp_path(path), "w", libver=LIBVER, track_order=False)


def publish(fh: h5py.File, path: Path) -> None:
    """Closes a file from :func:`create_h5`, flushes it to disk and renames it to ``path``."""
    publish_all([(fh, path)])


def publish_all(files: list[tuple[h5py.File, Path]]) -> None:
    """Closes files from :func:`create_h5`, flushes them to disk together, then renames each to its path.

    The flushes run in threads (fsync releases the GIL): one after the other, the 12 buckets of a dataset cost
    ~10 ms each, about a tenth of consolidating 300 frames of 64x64.
    """
    tmps = []
    for fh, _ in files:
        tmps.append(Path(fh.filename))
        fh.close()
    with ThreadPoolExecutor(max_workers=max(1, min(16, len(tmps)))) as pool:
        list(pool.map(fsync, tmps))
    for tmp, (_, path) in zip(tmps, files, strict=True):
        os.replace(tmp, path)


def discard(fh: h5py.File | None, path: Path) -> None:
    """Closes and deletes the temporary file of ``path`` after a failure, also when closing fails."""
    try:
        if fh is not None and fh.id.valid:
            fh.close()
    except OSError as err:  # e.g. ENOSPC while HDF5 flushes: the file is debris either way
        logger.warning("could not close %s cleanly (%s); deleting it", tmp_path(path), err)
    finally:
        tmp_path(path).unlink(missing_ok=True)


def new_dataset(
    fh: h5py.File,
    name: str,
    shape: tuple[int, ...],
    dtype: Any,
    chunk_rows: int,
    compression: str | None = None,
    fill: Any = None,
) -> h5py.Dataset:
    """Creates a dataset resizable along axis 0, chunked ``chunk_rows`` rows at a time, without timestamps."""
    maxshape = (None,) + tuple(shape[1:])
    chunks = (max(1, chunk_rows),) + tuple(max(1, s) for s in shape[1:])
    kwargs: dict[str, Any] = {"track_times": False, "maxshape": maxshape, "chunks": chunks}
    if compression:
        kwargs["compression"] = compression
        if compression == "gzip":
            kwargs["compression_opts"] = 1
    if fill is not None:
        kwargs["fillvalue"] = fill
    return fh.create_dataset(name, shape=shape, dtype=dtype, **kwargs)


def append_rows(ds: h5py.Dataset, rows: np.ndarray | list) -> None:
    """Appends rows along axis 0 (a vlen dataset must be 1-D, as every one this project writes is)."""
    n = len(rows)
    if n == 0:
        return
    start = ds.shape[0]
    ds.resize(start + n, axis=0)
    if ds.dtype.kind == "O":
        # Through the low-level API: h5py's slicing turns equal-length rows into a 2-D array and refuses them, and
        # row by row costs ~0.16 ms a row against ~0.004 ms for one write of the whole batch.
        batch = np.empty(n, dtype=ds.dtype)
        for i, row in enumerate(rows):
            batch[i] = row
        file_space = ds.id.get_space()
        file_space.select_hyperslab((start,), (n,))
        ds.id.write(h5s.create_simple((n,)), file_space, batch)
    else:
        ds[start : start + n] = np.asarray(rows, dtype=ds.dtype)
