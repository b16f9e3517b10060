"""The one place captures and DeepMind imports become files: `scenes_{split}.h5` of docs/formats.md §3.

`SceneFiles` takes `SceneArrays` one at a time (flat memory), writes each split under its temporary name
(`pipeline.formats.hdf5`: fixed libver, no timestamps) and publishes all three when the `with` block ends
cleanly (one rename each, back to back: each file is whole or absent, but a kill between two renames can leave
one split new and another old); on any error every temporary file is deleted, so a failed import leaves no
output. Images are
gzip-filtered, one scene per chunk, as §3 says; the chunks are deflated by ISA-L (level 1) and written directly,
which is ~6x faster than zlib's level 1 on photographs and inflates with any zlib (the same choice as the
canonical EXR, docs/formats.md §1). `add_rows_from` copies rows of another file of this layout chunk by chunk
without decoding them (DeepMind's per-file parts into the final files).

This is a stand-in for the shared scene-file writer of pipeline/layouts (in progress on another branch); the
importers call only `SceneFiles` and `write_scenes`, so switching to it touches this module alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from isal import isal_zlib

from core.camera import VIEWPOINT_ORDER
from core.samples import SPLITS
from pipeline.captures.scene import SceneArrays
from pipeline.formats import hdf5 as h5_out

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
#: Scenes buffered before a flush: small arrays are written a block at a time (a resize per scene costs more
#: than the scene's own bytes). A flush also happens once the buffered deflated images pass FLUSH_BYTES, so
#: memory stays flat for large scenes too (a mazes scene is 300 views of 84x84).
FLUSH_ROWS = 256
FLUSH_BYTES = 32 << 20
_SMALL = {"viewpoints": (7,), "viewpoints_xyzyp": (5,), "K": (3, 3), "cam_to_world": (4, 4)}
_DEFLATE_LEVEL = 1


def scene_file(dataset_dir: str | Path, split: str) -> Path:
    """`DATA_DIR/NAME/scenes_{split}.h5`."""
    return Path(dataset_dir) / f"scenes_{split}.h5"


class _SplitFile:
    """The temporary file of one split; datasets are created at the first scene (or by `ensure`)."""

    def __init__(self, path: Path, split: str, attrs: Mapping[str, Any]) -> None:
        self.path = path
        self.split = split
        self.fh: h5py.File = h5_out.create_h5(path)
        for key, value in attrs.items():
            self.fh.attrs[key] = value
        self.fh.attrs["split"] = split
        self.ds: dict[str, h5py.Dataset] = {}
        self.buf: list[tuple[SceneArrays, bytes]] = []
        self.buf_bytes = 0
        self.last_index: int | None = None

    def ensure(self, views: int, height: int, width: int) -> None:
        if self.ds:
            shape = self.ds["images"].shape[1:4]
            if shape != (views, height, width):
                raise ValueError(f"{self.path.name}: a scene of {views} views of {height}x{width} after scenes of "
                                 f"{shape[0]} views of {shape[1]}x{shape[2]}; a scene file holds one size")
            return
        new = h5_out.new_dataset
        self.fh.attrs["views"] = views
        self.ds["images"] = new(self.fh, "images", (0, views, height, width, 3), np.uint8, 1, compression="gzip")
        for name, tail in _SMALL.items():
            self.ds[name] = new(self.fh, name, (0, views, *tail), np.float32, FLUSH_ROWS)
        self.ds["scene_index"] = new(self.fh, "scene_index", (0,), np.int64, FLUSH_ROWS)

    def _check_order(self, index: int) -> None:
        if self.last_index is not None and index <= self.last_index:
            raise ValueError(f"{self.path.name}: scene {index} comes after scene {self.last_index}; rows must be "
                             "sorted by scene index, each index once")
        self.last_index = index

    def add(self, scene: SceneArrays) -> None:
        self.ensure(scene.views, *scene.size)
        self._check_order(scene.scene_index)
        deflated = isal_zlib.compress(np.ascontiguousarray(scene.images).tobytes(), _DEFLATE_LEVEL)
        self.buf.append((scene, deflated))
        self.buf_bytes += len(deflated)
        if len(self.buf) >= FLUSH_ROWS or self.buf_bytes >= FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if not self.buf:
            return
        start = self.ds["scene_index"].shape[0]
        stop = start + len(self.buf)
        for ds in self.ds.values():
            ds.resize(stop, axis=0)
        for name in _SMALL:
            self.ds[name][start:stop] = np.stack([getattr(s, name) for s, _ in self.buf])
        self.ds["scene_index"][start:stop] = np.array([s.scene_index for s, _ in self.buf], np.int64)
        images = self.ds["images"].id
        for row, (_, deflated) in enumerate(self.buf, start):
            images.write_direct_chunk((row, 0, 0, 0, 0), deflated)
        self.buf.clear()
        self.buf_bytes = 0

    def add_rows_from(self, src: h5py.File, start: int, stop: int) -> None:
        self.flush()
        images = src["images"]
        self.ensure(*images.shape[1:4])
        indices = src["scene_index"][start:stop]
        if len(indices):
            self._check_order(int(indices[0]))
            if np.any(np.diff(indices) <= 0):
                raise ValueError(f"{src.filename}: scene_index is not strictly increasing in rows {start}-{stop}")
            self.last_index = int(indices[-1])
        at = self.ds["scene_index"].shape[0]
        n = stop - start
        for ds in self.ds.values():
            ds.resize(at + n, axis=0)
        for name in (*_SMALL, "scene_index"):
            self.ds[name][at:at + n] = src[name][start:stop]
        sid, did = images.id, self.ds["images"].id
        for k in range(n):
            mask, chunk = sid.read_direct_chunk((start + k, 0, 0, 0, 0))
            did.write_direct_chunk((at + k, 0, 0, 0, 0), chunk, filter_mask=mask)

    @property
    def rows(self) -> int:
        return (self.ds["scene_index"].shape[0] if self.ds else 0) + len(self.buf)


class SceneFiles:
    """`scenes_{train,val,test}.h5` of one dataset, written together and published together.

    Usage:
        with SceneFiles(dataset_dir, attrs) as files:
            files.add("train", scene)          # rows of a split in increasing scene_index
        files.rows                             # {"train": n, "val": 0, "test": m}

    Args:
        dataset_dir: `DATA_DIR/NAME` (created if needed).
        attrs: file attributes besides those §3 fixes (which this class writes): e.g. `dataset`, `generator`,
            `importer`, `source`, `K_assumed`, `K_source`.
        splits: the splits to write; every one gets a file, with zero rows if no scene went to it.
    """

    def __init__(self, dataset_dir: str | Path, attrs: Mapping[str, Any], splits: Iterable[str] = SPLITS) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.splits = tuple(splits)
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"unknown splits {unknown}; use {SPLITS}")
        self.attrs = {"format_version": FORMAT_VERSION, "layout": "scene-major", "viewpoint_order": VIEWPOINT_ORDER,
                      "dataset": self.dataset_dir.name, "generator": "", "dataset_seed": -1,
                      "classes": np.array([], dtype=h5py.string_dtype()),
                      "depth_code": "none: imported captures carry no depth", **attrs}
        self.files: dict[str, _SplitFile] = {}
        self.rows: dict[str, int] = {}
        self._size: tuple[int, int, int] | None = None

    def __enter__(self) -> SceneFiles:
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        try:
            for split in self.splits:
                self.files[split] = _SplitFile(scene_file(self.dataset_dir, split), split, self.attrs)
        except BaseException:
            self._discard()
            raise
        return self

    def add(self, split: str, scene: SceneArrays) -> None:
        """Appends one scene to `split` (scene indices increasing within a split)."""
        self._file(split).add(scene)
        self._size = self._size or (scene.views, *scene.size)

    def add_rows_from(self, split: str, src: h5py.File, start: int, stop: int) -> None:
        """Appends rows `start:stop` of an open scene-major file to `split`, copying image chunks as they are."""
        self._file(split).add_rows_from(src, start, stop)
        self._size = self._size or tuple(src["images"].shape[1:4])  # type: ignore[assignment]

    def rows_of(self, split: str) -> int:
        """Rows written to `split` so far."""
        return self._file(split).rows

    def set_attr(self, split: str, key: str, value: Any) -> None:
        """Sets a file attribute of one split's file."""
        self._file(split).fh.attrs[key] = value

    def _file(self, split: str) -> _SplitFile:
        if split not in self.files:
            raise ValueError(f"split {split!r} is not one of {self.splits}")
        return self.files[split]

    def _discard(self) -> None:
        for f in self.files.values():
            h5_out.discard(f.fh, f.path)

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            if self._size is None:
                raise ValueError(f"no scene to write into {self.dataset_dir}")
            for f in self.files.values():
                f.ensure(*self._size)  # an empty split still declares V, H, W
                f.flush()
                self.rows[f.split] = f.rows
        except BaseException:
            self._discard()
            raise
        for f in self.files.values():
            h5_out.publish(f.fh, f.path)
        logger.info("wrote %s", ", ".join(f"{scene_file(self.dataset_dir, s).name} ({n} scenes)"
                                          for s, n in self.rows.items()))


def write_scenes(dataset_dir: str | Path, scenes: Iterable[tuple[str, SceneArrays]],
                 attrs: Mapping[str, Any]) -> dict[str, int]:
    """Writes `(split, scene)` pairs into `scenes_{split}.h5` (all three splits) atomically.

    Returns:
        Scenes written per split.
    """
    with SceneFiles(dataset_dir, attrs) as files:
        for split, scene in scenes:
            files.add(split, scene)
    return files.rows
