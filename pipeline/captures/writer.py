"""Where captures and DeepMind imports become files: `scenes_{split}.h5` (docs/formats.md §3) through the one
scene-file writer, `pipeline.layouts.scene_file.SceneFileWriter`.

`SceneFiles` takes `SceneArrays` one at a time (flat memory: the shared writer stores each scene's image chunk
as it comes and buffers 64 rows of the small datasets), keeps one writer per split, and publishes all three with
`pipeline.formats.hdf5.publish_all` when the `with` block ends cleanly (fsynced together, then one rename each:
each file is whole or absent; a kill between two renames can leave one split new and another old). On any error
every temporary file is deleted, so a failed import leaves no output.

One difference from `scene_file.encode_scene`: the image chunk is deflated by ISA-L (level 1) instead of zlib
(level 1). Both are the gzip filter's format and inflate with any zlib; ISA-L takes 0.4 ms for a scene of ten
64x64 views where zlib takes 2.2 ms, which is most of what separates DeepMind's import from 1,000 scenes/s on
two cores. The chunks' bytes therefore differ from what HDF5's own filter would write (`scene_file`'s promise for
renders); they are deterministic. `encode` builds the `EncodedScene` that `SceneFileWriter.add_encoded` takes.
`add_rows_from` copies rows of another scene file chunk by chunk without decoding them (DeepMind's per-file
parts into the final files).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from isal import isal_zlib

from core import publish
from core.samples import SPLITS
from pipeline.captures.scene import SceneArrays
from pipeline.formats import hdf5 as h5_out
from pipeline.layouts.consolidate import FORMAT_VERSION
from pipeline.layouts.generations import REPORT
from pipeline.layouts.scene_file import EncodedScene, SceneFileWriter, SceneSpec

logger = logging.getLogger(__name__)

_DEFLATE_LEVEL = 1
_ROWS = ("viewpoints", "viewpoints_xyzyp", "K", "cam_to_world")
#: Rows of a source file read at once by `add_rows_from` (its small datasets; the images go chunk by chunk).
COPY_BLOCK = 1024


def scene_file(dataset_dir: str | Path, split: str) -> Path:
    """`DATA_DIR/NAME/scenes_{split}.h5`."""
    return Path(dataset_dir) / f"scenes_{split}.h5"


def spec_of(scene: SceneArrays) -> SceneSpec:
    """The file spec of scenes like `scene`: V views of H x W, colour only."""
    return SceneSpec(views=scene.views, height=scene.size[0], width=scene.size[1])


def encode(spec: SceneSpec, scene: SceneArrays) -> EncodedScene:
    """One scene for `SceneFileWriter.add_encoded`: the image chunk deflated by ISA-L, the rows as they are.

    Raises:
        ValueError: the scene has another view count or size than the file, or non-finite camera numbers.
    """
    if (scene.views, *scene.size) != (spec.views, spec.height, spec.width):
        raise ValueError(f"scene {scene.scene_index}: {scene.views} views of {scene.size[0]}x{scene.size[1]} after "
                         f"scenes of {spec.views} views of {spec.height}x{spec.width}; a scene file holds one size")
    rows = {name: getattr(scene, name) for name in _ROWS}
    bad = [name for name, arr in rows.items() if not np.all(np.isfinite(arr))]
    if bad:
        raise ValueError(f"scene {scene.scene_index}: {bad} hold NaN or infinite values")
    rows["scene_index"] = np.int64(scene.scene_index)
    deflated = isal_zlib.compress(memoryview(np.ascontiguousarray(scene.images)).cast("B"), _DEFLATE_LEVEL)
    return EncodedScene(chunks={"images": (deflated, 0)}, rows=rows)


class SceneFiles:
    """`scenes_{train,val,test}.h5` of one dataset, written together and published together.

    Usage:
        with SceneFiles(dataset_dir, attrs) as files:
            files.add("train", scene)          # rows of a split in increasing scene_index
        files.rows                             # {"train": n, "val": 0, "test": m}

    Args:
        dataset_dir: `DATA_DIR/NAME` (created if needed).
        attrs: file attributes besides those the writer sets (`layout`, `views`, `viewpoint_order`, `fields`) and
            the §3 defaults here (`format_version`, `dataset`, `generator`, `dataset_seed`, `classes`, `depth_code`,
            `split_rule`): e.g. `importer`, `source`, `K_assumed`, `K_source`.
        splits: the splits to write; every one gets a file, with zero rows if no scene went to it.
    """

    def __init__(self, dataset_dir: str | Path, attrs: Mapping[str, Any], splits: Iterable[str] = SPLITS) -> None:
        self.dataset_dir = Path(dataset_dir)
        self.splits = tuple(splits)
        unknown = [s for s in self.splits if s not in SPLITS]
        if unknown:
            raise ValueError(f"unknown splits {unknown}; use {SPLITS}")
        self.attrs = {"format_version": FORMAT_VERSION, "dataset": self.dataset_dir.name, "generator": "",
                      "dataset_seed": -1, "classes": np.array([], dtype=h5py.string_dtype()),
                      "depth_code": "none: imported captures carry no depth", "split_rule": "declared", **attrs}
        self.writers: dict[str, SceneFileWriter] = {}
        self.spec: SceneSpec | None = None
        self.rows: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self._pending_attrs: dict[str, dict[str, Any]] = {s: {} for s in self.splits}
        # the consolidation generation of the imported files (pipeline/layouts/generations.py): a digest of what
        # was written, so readers can tell these files from those of another import or consolidation. It digests
        # each chunk's length and CRC-32 (ISA-L: 2 us for a scene's chunk, where SHA-256 of its bytes took 46 us)
        self._generation = hashlib.sha256()

    def __enter__(self) -> SceneFiles:
        self.dataset_dir.mkdir(parents=True, exist_ok=True)
        return self

    def _writer(self, split: str, spec: SceneSpec) -> SceneFileWriter:
        if split not in self.splits:
            raise ValueError(f"split {split!r} is not one of {self.splits}")
        if self.spec is None:
            self.spec = spec
        if split not in self.writers:
            writer = SceneFileWriter(scene_file(self.dataset_dir, split), self.spec, {**self.attrs, "split": split})
            self.writers[split] = writer
        return self.writers[split]

    def _check_order(self, split: str, first: int, last: int) -> None:
        previous = self._last.get(split)
        if previous is not None and first <= previous:
            raise ValueError(f"scenes_{split}.h5: scene {first} comes after scene {previous}; rows must be sorted "
                             "by scene index, each index once")
        self._last[split] = last

    def add(self, split: str, scene: SceneArrays) -> None:
        """Appends one scene to `split` (scene indices increasing within a split)."""
        writer = self._writer(split, self.spec or spec_of(scene))
        encoded = encode(writer.spec, scene)
        self._check_order(split, scene.scene_index, scene.scene_index)
        self._note(split, scene.scene_index, encoded)
        writer.add_encoded(encoded)

    def _note(self, split: str, scene_index: int, encoded: EncodedScene) -> None:
        text = f"{split}:{scene_index}:" + "".join(
            f"{name}:{len(encoded.chunks[name][0])}:{isal_zlib.crc32(encoded.chunks[name][0])}:"
            for name in sorted(encoded.chunks))
        self._generation.update(text.encode())

    def add_rows_from(self, split: str, src: h5py.File, start: int, stop: int) -> None:
        """Appends rows `start:stop` of an open scene file to `split`, copying image chunks as they are."""
        views, height, width = src["images"].shape[1:4]
        writer = self._writer(split, self.spec or SceneSpec(views=views, height=height, width=width))
        if (views, height, width) != (writer.spec.views, writer.spec.height, writer.spec.width):
            raise ValueError(f"{src.filename}: {views} views of {height}x{width}, the file holds "
                             f"{writer.spec.views} views of {writer.spec.height}x{writer.spec.width}")
        images = src["images"].id
        for block in range(start, stop, COPY_BLOCK):
            end = min(block + COPY_BLOCK, stop)
            rows = {name: src[name][block:end] for name in (*_ROWS, "scene_index")}
            index = rows["scene_index"]
            if np.any(np.diff(index) <= 0):
                raise ValueError(f"{src.filename}: scene_index is not strictly increasing in rows {block}-{end}")
            self._check_order(split, int(index[0]), int(index[-1]))
            for k in range(end - block):
                mask, chunk = images.read_direct_chunk((block + k, 0, 0, 0, 0))
                encoded = EncodedScene(chunks={"images": (chunk, mask)}, rows={name: rows[name][k] for name in rows})
                self._note(split, int(index[k]), encoded)
                writer.add_encoded(encoded)

    def rows_of(self, split: str) -> int:
        """Rows written to `split` so far."""
        return self.writers[split].rows if split in self.writers else 0

    def set_attr(self, split: str, key: str, value: Any) -> None:
        """Sets a file attribute of one split's file (written when the files are published)."""
        if split not in self.splits:
            raise ValueError(f"split {split!r} is not one of {self.splits}")
        self._pending_attrs[split][key] = value

    def _discard(self) -> None:
        for writer in self.writers.values():
            writer.discard()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            self._discard()
            return
        try:
            if self.spec is None:
                raise ValueError(f"no scene to write into {self.dataset_dir}")
            for split in self.splits:  # an empty split still gets its file, declaring V, H, W
                writer = self._writer(split, self.spec)
                for key, value in self._pending_attrs[split].items():
                    writer.fh.attrs[key] = value
                writer.fh.attrs["generation"] = self._generation.hexdigest()[:32]
                self.rows[split] = writer.rows
            closed = [self.writers[split].close_for_publish() for split in self.splits]
        except BaseException:
            self._discard()
            raise
        try:
            h5_out.publish_all(closed)
        except BaseException:
            self._discard()
            raise
        publish.write_json(self.dataset_dir / REPORT, {
            "format_version": FORMAT_VERSION, "generation": self._generation.hexdigest()[:32], "layout": "scene-major",
            "input": "import", "rows": {scene_file(self.dataset_dir, s).name: n for s, n in self.rows.items()}})
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
