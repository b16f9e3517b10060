"""DeepMind's gqn-datasets (TFRecord) -> scene-major HDF5, file by file, in parallel, resumable.

Source layout (as `gsutil cp -R gs://gqn-dataset/NAME .` leaves it): `SRC/train/NNNN-of-MMMM.tfrecord` and
`SRC/test/NNNN-of-MMMM.tfrecord`, 1-based. Each record is a `tf.train.Example` with `frames` (one JPEG per
view) and `cameras` (5 floats per view: x, y, z, yaw, pitch, radians). DeepMind's train/ becomes split
`train`, test/ split `test`; DeepMind has no validation split, so `scenes_val.h5` is written with zero scenes
(evaluate on `--split test`). Record r of file N is scene `N * FILE_STRIDE + r`, so an index names its source
and stays the same whichever fraction of the files is imported.

How a run goes (`import_gqn`):
1. Check every file name (pattern, the dataset's file count MMMM) and the first record of every file still to
   convert (view count, cameras, image size): a file of another dataset fails before anything is written.
2. Convert each pending file in a worker process into its own part, `NAME/.gqn-parts/SPLIT/NNNN-of-MMMM/`,
   published atomically by `pipeline.captures.writer` with the file's size and record count as attributes. Memory
   stays flat: records are decoded CAMERA_BLOCK ahead and each scene's image chunk is stored as it comes.
3. Concatenate the parts (image chunks copied without decoding) and the rows of files an earlier run already
   put into the final files into new `scenes_{train,val,test}.h5`, published together; each lists its sources
   (file, bytes, scenes, rows) in its `source_files` attribute. Then `import.json` (a report for people) and
   delete the parts.

A killed run leaves finished parts and no half-written file: the next run removes the temporary debris,
converts only the files without a part (a finished file is never converted twice) and goes on to step 3.
Scene counts are checked per file: a part must hold its file's records 0 .. n-1 once each (as counted while
converting), so must the rows copied from an earlier final file; a file whose count differs from the usual
count of its split is named in a warning and in import.json (a file cut at a record boundary reads as valid).
An output made by something else is refused.

DeepMind published no intrinsics. K is recorded as assumed (`K_assumed = True`), from a horizontal field of view
per dataset (`GqnDataset.assumed_fov_deg`: our renderer's twin of the dataset where there is one).
Their yaw and pitch are read in this project's convention (yaw = atan2(d_y, d_x) about world z, pitch the
elevation of the viewing direction, docs/formats.md); the files themselves cannot confirm the axes.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
from tfrecord import example_pb2
from tfrecord.reader import tfrecord_iterator
from tqdm import tqdm

from core import publish
from core.lock import LOCK_NAME
from pipeline.captures.scene import (
    CaptureError,
    SceneArrays,
    assumed_intrinsics,
    cameras_from_xyzyp,
    viewpoints_from_xyzyp,
)
from pipeline.captures.writer import SceneFiles, scene_file
from pipeline.formats import hdf5 as h5_out

logger = logging.getLogger(__name__)

#: Scene index of record r in file N: N * FILE_STRIDE + r (a file holds far fewer records).
FILE_STRIDE = 1_000_000
PARTS = ".gqn-parts"
REPORT = "import.json"
SOURCE_SPLITS = ("train", "test")
_FILE_RE = re.compile(r"^(\d{4})-of-(\d{4})\.tfrecord$")


@dataclass(frozen=True)
class GqnDataset:
    """Sizes of one of DeepMind's datasets (their data_reader.py), and the field of view we assume.

    Attributes:
        views: views per scene (their sequence size).
        size: image side, pixels.
        train_files, test_files: files in train/ and test/ (the MMMM of the names).
        assumed_fov_deg: horizontal field of view recorded in K, degrees (assumed; never published).
    """

    views: int
    size: int
    train_files: int
    test_files: int
    assumed_fov_deg: float = 60.0

    def files(self, split: str) -> int:
        return self.train_files if split == "train" else self.test_files


#: DeepMind's datasets. Fields of view: rooms as our gqn_rooms_* twins (60), Shepard-Metzler as
#: gqn_shepard_metzler (40); jaco and mazes have no twin here, 60 is a plain choice.
DATASETS = {
    "rooms_ring_camera": GqnDataset(10, 64, 2160, 240, 60.0),
    "rooms_free_camera_no_object_rotations": GqnDataset(10, 64, 2160, 240, 60.0),
    "rooms_free_camera_with_object_rotations": GqnDataset(10, 128, 2034, 226, 60.0),
    "shepard_metzler_5_parts": GqnDataset(15, 64, 900, 100, 40.0),
    "shepard_metzler_7_parts": GqnDataset(15, 64, 900, 100, 40.0),
    "jaco": GqnDataset(11, 64, 3600, 400, 60.0),
    "mazes": GqnDataset(300, 84, 1080, 120, 60.0),
}


def dataset_spec(name: str) -> GqnDataset:
    """The sizes of dataset `name`.

    Raises:
        CaptureError: an unknown name (the message lists the known ones).
    """
    if name not in DATASETS:
        raise CaptureError(f"unknown gqn dataset {name!r}; use one of {sorted(DATASETS)}")
    return DATASETS[name]


@dataclass(frozen=True)
class SourceFile:
    """One TFRecord file: its split, 1-based number N and the total M of its name."""

    path: Path
    split: str
    number: int
    of: int

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def size(self) -> int:
        return self.path.stat().st_size


def list_sources(src: str | Path, dataset: str) -> list[SourceFile]:
    """The TFRecord files of `SRC/train` and `SRC/test`, sorted by split and number, names checked.

    Raises:
        CaptureError: no file, a name not of the form NNNN-of-MMMM.tfrecord, or an MMMM that is not the
            dataset's file count (files of another dataset).
    """
    spec = dataset_spec(dataset)
    src = Path(src)
    found = []
    for split in SOURCE_SPLITS:
        folder = src / split
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir(), key=lambda p: p.name):
            if path.name.startswith(".") or not path.is_file():
                continue
            m = _FILE_RE.match(path.name)
            if not m:
                raise CaptureError(f"{path}: not a gqn-datasets file name (NNNN-of-MMMM.tfrecord); move it out of "
                                   f"{folder}")
            number, of = int(m.group(1)), int(m.group(2))
            if of != spec.files(split) or not 1 <= number <= of:
                raise CaptureError(f"{path}: {dataset} has {spec.files(split)} {split} files "
                                   f"(NNNN-of-{spec.files(split):04d}), this one says {number} of {of}: it belongs "
                                   f"to another dataset; pass its --dataset or move it out")
            found.append(SourceFile(path, split, number, of))
    if not found:
        raise CaptureError(f"{src}: no train/*.tfrecord or test/*.tfrecord; give the folder gsutil made "
                           f"(gsutil -m cp -R gs://gqn-dataset/{dataset} .)")
    return found


def _decode_record(raw: memoryview | bytes, spec: GqnDataset, where: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (V, S, S, 3), cameras float64 (V, 5)) of one serialized record."""
    try:
        example = example_pb2.Example.FromString(raw)  # parses out of the reader's buffer; fields are copied
    except Exception as err:  # protobuf's DecodeError is not exported under one stable name across versions
        raise CaptureError(f"{where}: not a tf.train.Example ({err}); the file is corrupt: download it again") from None
    feature = example.features.feature
    if "frames" not in feature or "cameras" not in feature:
        raise CaptureError(f"{where}: the record has features {sorted(feature)}, not frames and cameras: it is not "
                           "a gqn-datasets record")
    frames = feature["frames"].bytes_list.value
    cameras = feature["cameras"].float_list.value
    if len(frames) != spec.views or len(cameras) != 5 * spec.views:
        raise CaptureError(f"{where}: {len(frames)} frames and {len(cameras)} camera numbers, but this dataset has "
                           f"{spec.views} views (5 numbers each): the file is of another dataset; pass its --dataset")
    images = np.empty((spec.views, spec.size, spec.size, 3), np.uint8)
    for v, jpeg in enumerate(frames):
        image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR_RGB)
        if image is None:
            raise CaptureError(f"{where}: frame {v} is not a readable JPEG; the file is corrupt: download it again")
        if image.shape != images.shape[1:]:
            raise CaptureError(f"{where}: frame {v} is {image.shape[1]}x{image.shape[0]}, but this dataset's images "
                               f"are {spec.size}x{spec.size}: the file is of another dataset; pass its --dataset")
        images[v] = image
    return images, np.asarray(cameras, np.float64).reshape(spec.views, 5)


def iter_records(path: Path) -> Iterator[memoryview]:
    """The serialized records of a TFRecord file (the `tfrecord` package's reader).

    Raises:
        CaptureError: the file ends inside a record (truncated).
    """
    fix = f"download it again (gsutil cp gs://gqn-dataset/DATASET/{path.parent.name}/{path.name} .)"
    try:
        yield from tfrecord_iterator(str(path))
    except RuntimeError as err:  # the reader's only signal of a short read
        raise CaptureError(f"{path}: truncated ({err}); {fix}") from None
    except (MemoryError, OverflowError):  # the reader checks no CRC: a garbled length header asks for exabytes
        raise CaptureError(f"{path}: corrupt (a record length larger than memory); {fix}") from None


#: Records whose cameras are turned into viewpoints and matrices in one vectorised call (per scene, the numpy
#: calls' overhead cost more than the arithmetic).
CAMERA_BLOCK = 64


def read_file(source: SourceFile, spec: GqnDataset, K: np.ndarray) -> Iterator[SceneArrays]:
    """The scenes of one TFRecord file, one at a time, in record order (decoded CAMERA_BLOCK records ahead)."""
    K_views = np.ascontiguousarray(np.broadcast_to(np.asarray(K, np.float32), (spec.views, 3, 3)))
    block: list[tuple[int, np.ndarray, np.ndarray]] = []

    def scenes() -> Iterator[SceneArrays]:
        xyzyp = np.stack([cameras for _, _, cameras in block])  # (n, V, 5)
        flat = xyzyp.reshape(-1, 5)
        viewpoints = viewpoints_from_xyzyp(flat).reshape(len(block), spec.views, 7)
        c2w = cameras_from_xyzyp(flat).reshape(len(block), spec.views, 4, 4)
        xyzyp32 = xyzyp.astype(np.float32)
        for i, (r, images, _) in enumerate(block):
            yield SceneArrays(source.number * FILE_STRIDE + r, images, viewpoints[i], xyzyp32[i], K_views, c2w[i])
        block.clear()

    for r, raw in enumerate(iter_records(source.path)):
        if r >= FILE_STRIDE:
            raise CaptureError(f"{source.path}: more than {FILE_STRIDE} records; not a gqn-datasets file")
        images, cameras = _decode_record(raw, spec, f"{source.path} record {r}")
        block.append((r, images, cameras))
        if len(block) == CAMERA_BLOCK:
            yield from scenes()
    if block:
        yield from scenes()


def check_first_record(source: SourceFile, spec: GqnDataset) -> None:
    """Decodes the file's first record: a file of another dataset fails here, before any conversion."""
    for raw in iter_records(source.path):
        _decode_record(raw, spec, f"{source.path} record 0")
        return
    raise CaptureError(f"{source.path}: holds no record; download it again")


def file_attrs(dataset: str, spec: GqnDataset) -> dict[str, Any]:
    """HDF5 attributes of every part and final file of an import of `dataset`."""
    return {"importer": "gqn-datasets", "generator": f"gqn-datasets/{dataset}", "gqn_dataset": dataset,
            "K_assumed": True,
            "K_source": f"assumed: horizontal field of view {spec.assumed_fov_deg} degrees (DeepMind published no "
                        "intrinsics)"}


def part_dir(dataset_dir: Path, source: SourceFile) -> Path:
    return dataset_dir / PARTS / source.split / source.path.stem


def part_file(dataset_dir: Path, source: SourceFile) -> Path:
    return scene_file(part_dir(dataset_dir, source), source.split)


@dataclass(frozen=True)
class _Task:
    source: SourceFile
    dataset: str
    dataset_dir: Path


def convert_file(task: _Task) -> tuple[str, int, float]:
    """Converts one TFRecord file into its part (worker entry point); returns (file name, scenes, seconds)."""
    cv2.setNumThreads(1)  # one file per core: OpenCV's own threads would only contend with the other workers
    started = time.monotonic()
    spec = dataset_spec(task.dataset)
    source = task.source
    out = part_dir(task.dataset_dir, source)
    publish.remove_path(out)
    K = assumed_intrinsics(spec.size, spec.size, spec.assumed_fov_deg)
    attrs = {**file_attrs(task.dataset, spec), "source_file": source.name, "source_bytes": source.size}
    with SceneFiles(out, attrs, splits=(source.split,)) as files:
        records = 0
        for scene in read_file(source, spec, K):
            files.add(source.split, scene)
            records += 1
        files.set_attr(source.split, "records", records)
    return source.name, files.rows[source.split], time.monotonic() - started


def _part_rows(path: Path, source: SourceFile) -> int | None:
    """Scenes of a finished part of `source`, or None when there is none or it is of another version of the file."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as f:
            if int(f.attrs.get("source_bytes", -1)) != source.size:
                logger.warning("%s was made from another %s (size differs); converting it again", path, source.name)
                return None
            records = int(f.attrs.get("records", -1))
            if not _is_whole_file(f["scene_index"][()], source.number, records):
                logger.warning("%s does not hold records 0-%d of %s once each; converting it again", path,
                               records - 1, source.name)
                return None
            return records
    except OSError as err:
        logger.warning("%s is unreadable (%s); converting %s again", path, err, source.name)
        return None


def _is_whole_file(scene_index: np.ndarray, number: int, records: int) -> bool:
    """Whether rows hold records 0 .. records-1 of file `number`, each once, in order: a file's scene count check."""
    return records >= 0 and np.array_equal(scene_index, number * FILE_STRIDE + np.arange(records))


def count_outliers(entries: list[dict[str, Any]]) -> list[str]:
    """Files whose scene count differs from the most common count of their split (a file cut at a record
    boundary reads as valid, only shorter: this is how it shows)."""
    notes = []
    for split in SOURCE_SPLITS:
        counts = Counter(e["scenes"] for e in entries if e["split"] == split)
        if len(counts) > 1:
            usual = max(sorted(counts), key=lambda c: counts[c])
            notes += [f"{split}/{e['file']} holds {e['scenes']} scenes where {counts[usual]} other {split} files "
                      f"hold {usual}: if it was cut short, download it again" for e in entries
                      if e["split"] == split and e["scenes"] != usual]
    return notes


@dataclass
class GqnImportResult:
    """What `import_gqn` did.

    Attributes:
        rows: scenes per split in the final files.
        converted: names of the files converted by this run.
        reused: names of files taken from an earlier run (its parts or its final files).
        seconds: wall time.
    """

    rows: dict[str, int]
    converted: list[str]
    reused: list[str]
    seconds: float


def _previous_rows(dataset_dir: Path, dataset: str) -> dict[str, dict[str, Any]]:
    """Files an earlier import put into the final files, by `name@split`: {file, split, bytes, scenes, rows}.

    Each final file lists its own sources in its `source_files` attribute, so the record stays right whichever
    of the three files a kill left published.

    Raises:
        CaptureError: the folder holds scene files of something else.
    """
    rows: dict[str, dict[str, Any]] = {}
    for split in ("train", "val", "test"):
        path = scene_file(dataset_dir, split)
        if not path.exists():
            continue
        with h5py.File(path, "r") as f:
            made_by = (f.attrs.get("importer"), f.attrs.get("gqn_dataset"))
            listed = f.attrs.get("source_files")
        if made_by != ("gqn-datasets", dataset) or listed is None:
            raise CaptureError(f"{path} was not made by import-gqn of {dataset} (importer {made_by[0]!r}, dataset "
                               f"{made_by[1]!r}); pick another -d NAME (an import never overwrites other scenes)")
        for entry in json.loads(str(listed)):
            rows[f"{entry['file']}@{entry['split']}"] = entry
    return rows


def import_gqn(src: str | Path, dataset_dir: str | Path, dataset: str, jobs: int | None = None,
               progress: bool = False, keep_parts: bool = False) -> GqnImportResult:
    """Imports DeepMind's TFRecord files of `dataset` from `src` into `dataset_dir` (see the module docstring).

    Args:
        src: the folder holding train/ and test/.
        dataset_dir: `DATA_DIR/NAME`.
        dataset: one of DATASETS.
        jobs: worker processes (default: all cores); 1 converts in this process.
        progress: show a progress bar (files and scenes/s).
        keep_parts: keep the per-file parts after the final files are written.

    Raises:
        CaptureError: bad input (naming the file and the fix); nothing new is published then.
    """
    started = time.monotonic()
    spec = dataset_spec(dataset)
    dataset_dir = Path(dataset_dir)
    sources = list_sources(src, dataset)
    created = not dataset_dir.exists()
    dataset_dir.mkdir(parents=True, exist_ok=True)
    try:
        return _import_locked(sources, dataset_dir, dataset, spec, jobs, progress, keep_parts, started)
    except BaseException:
        _tidy_after_failure(dataset_dir, created)
        raise


def _tidy_after_failure(dataset_dir: Path, created: bool) -> None:
    """After a failed import: empty part folders go; so does a dataset folder this run created, unless it holds
    finished parts (kept so that the rerun after the fix does not convert their files again)."""
    parts = dataset_dir / PARTS
    if parts.is_dir():
        for folder in sorted((p for p in parts.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
            if not any(folder.iterdir()):
                folder.rmdir()
        if not any(parts.iterdir()):
            parts.rmdir()
    kept = [p for p in dataset_dir.iterdir() if p.name != LOCK_NAME] if dataset_dir.is_dir() else []
    if created and not kept:
        shutil.rmtree(dataset_dir, ignore_errors=True)


def _import_locked(sources: list[SourceFile], dataset_dir: Path, dataset: str, spec: GqnDataset, jobs: int | None,
                   progress: bool, keep_parts: bool, started: float) -> GqnImportResult:
    """`import_gqn` once the folder exists: holds its lock, converts what is pending, assembles."""
    with h5_out.dataset_lock(dataset_dir):
        before = _previous_rows(dataset_dir, dataset)
        for key, entry in before.items():
            match = next((s for s in sources if f"{s.name}@{s.split}" == key), None)
            if match is not None and match.size != entry["bytes"]:
                raise CaptureError(f"{match.path}: {entry['bytes']} bytes when it was imported, {match.size} now; "
                                   f"delete {dataset_dir} and import again")
        pending = [s for s in sources if f"{s.name}@{s.split}" not in before
                   and _part_rows(part_file(dataset_dir, s), s) is None]
        for source in pending:
            check_first_record(source, spec)
        if pending:
            logger.info("%s: %d of %d files to convert (%d already done) with %d workers", dataset, len(pending),
                        len(sources), len(sources) - len(pending), jobs or os.cpu_count() or 1)
        parts = [s for s in sources if f"{s.name}@{s.split}" not in before]
        if not parts:  # everything in SRC is in the final files already: leave them as they are
            logger.info("%s: all %d files are imported already", dataset_dir, len(sources))
            rows = {split: sum(e["scenes"] for e in before.values() if e["split"] == split)
                    for split in ("train", "val", "test")}
            return GqnImportResult(rows=rows, converted=[], reused=sorted(s.name for s in sources),
                                   seconds=time.monotonic() - started)
        converted = _convert_all(pending, dataset, dataset_dir, jobs, progress)
        rows = _assemble(sources, before, dataset, spec, dataset_dir)
        if not keep_parts:
            shutil.rmtree(dataset_dir / PARTS, ignore_errors=True)
    done = set(converted)
    return GqnImportResult(rows=rows, converted=sorted(done), reused=sorted(s.name for s in sources
                                                                             if s.name not in done),
                           seconds=time.monotonic() - started)


def _convert_all(pending: list[SourceFile], dataset: str, dataset_dir: Path, jobs: int | None,
                 progress: bool) -> list[str]:
    tasks = [_Task(s, dataset, dataset_dir) for s in pending]
    bar = tqdm(total=len(tasks), unit="file", disable=not progress or not tasks, desc=f"import {dataset}")
    converted, scenes, started = [], 0, time.monotonic()

    def done(name: str, n: int, seconds: float) -> None:
        nonlocal scenes
        converted.append(name)
        scenes += n
        logger.debug("%s: %d scenes in %.2f s", name, n, seconds)
        bar.set_postfix(scenes=scenes, per_s=f"{scenes / max(time.monotonic() - started, 1e-9):.0f}")
        bar.update()

    try:
        workers = min(jobs or os.cpu_count() or 1, len(tasks))
        if workers <= 1:
            for task in tasks:
                done(*convert_file(task))
        elif tasks:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                futures = {pool.submit(convert_file, t) for t in tasks}
                while futures:
                    finished, futures = wait(futures, return_when=FIRST_EXCEPTION)
                    for future in finished:
                        if future.exception() is not None:
                            for other in futures:
                                other.cancel()
                            raise future.exception()  # type: ignore[misc]
                        done(*future.result())
    finally:
        bar.close()
    return converted


def _assemble(sources: list[SourceFile], before: dict[str, dict[str, Any]], dataset: str, spec: GqnDataset,
              dataset_dir: Path) -> dict[str, int]:
    """Writes the final files from the parts and the earlier final files; then import.json.

    Files an earlier run imported keep their rows even when they are no longer in SRC (deleted to save space).
    """
    entries = []
    old = {s: scene_file(dataset_dir, s) for s in SOURCE_SPLITS}
    handles: dict[Path, h5py.File] = {}
    items: dict[str, tuple[str, int, str, int, SourceFile | None]] = {
        key: (e["split"], int(e["file"][:4]), e["file"], int(e["bytes"]), None) for key, e in before.items()}
    for source in sources:
        items.setdefault(f"{source.name}@{source.split}", (source.split, source.number, source.name, source.size,
                                                          source))

    def open_h5(path: Path) -> h5py.File:
        if path not in handles:
            handles[path] = h5py.File(path, "r")
        return handles[path]

    try:
        with SceneFiles(dataset_dir, file_attrs(dataset, spec)) as files:
            # by split, then file number: rows stay sorted by scene index
            for key, (split, _, name, size, source) in sorted(
                    items.items(), key=lambda kv: (SOURCE_SPLITS.index(kv[1][0]), kv[1][1])):
                if key in before:
                    start, stop = before[key]["rows"]
                    src = open_h5(old[split])
                else:
                    assert source is not None
                    path = part_file(dataset_dir, source)
                    n = _part_rows(path, source)
                    if n is None:
                        raise CaptureError(f"{path}: the part of {source.path} is missing after its conversion")
                    src = open_h5(path)
                    start, stop = 0, n
                if not _is_whole_file(src["scene_index"][start:stop], int(name[:4]), stop - start):
                    raise CaptureError(f"{src.filename} rows {start}-{stop} do not hold the records of {name} once "
                                       f"each; the file is damaged: delete {dataset_dir} and import again")
                at = files.rows_of(split)
                files.add_rows_from(split, src, start, stop)
                entries.append({"file": name, "split": split, "bytes": size, "scenes": stop - start,
                                "rows": [at, at + stop - start]})
            for split in files.splits:  # val too (empty): every final file says what it holds
                files.set_attr(split, "source_files", json.dumps([e for e in entries if e["split"] == split]))
    finally:
        for handle in handles.values():
            handle.close()
    rows = files.rows
    notes = count_outliers(entries)
    for note in notes:
        logger.warning("%s", note)
    publish.write_json(dataset_dir / REPORT, {
        "count_warnings": notes,
        "format_version": 1, "importer": "gqn-datasets", "gqn_dataset": dataset, "views": spec.views,
        "image_size": spec.size, "scene_index": f"file number * {FILE_STRIDE} + record", "rows": rows,
        "files": entries, "val": "DeepMind has no validation split: scenes_val.h5 holds zero scenes",
        "K_assumed": True, "assumed_fov_deg": spec.assumed_fov_deg})
    logger.info("%s: %s", dataset_dir, ", ".join(f"{s} {n} scenes" for s, n in rows.items()))
    return rows
