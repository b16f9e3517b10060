"""Consolidation of the raw render output (docs/formats.md §1) into HDF5 (§2 buckets, §3 scene files).

Single-view datasets (every sidecar has one view) become ``imgs_{bucket:02d}.h5``, bucket = ``index % 12``;
multi-view datasets (GQN, ENR, fruit) become ``scenes_{train,val,test}.h5``, one row per scene.

How it runs:

1. The main process lists the sample folders (sorted) and loads every sidecar; a missing or invalid sidecar
   makes that sample *bad*.
2. A process pool decodes each sample's EXR (or PNG) views and encodes them (sRGB PNG + 16-bit target PNG for
   buckets; dense arrays for scenes). A corrupt or missing view file makes that sample bad.
3. The main process is the one HDF5 writer: it takes the results in sample order and appends them to temporary
   files, which are renamed over the outputs only when every file is complete (see :mod:`pipeline.formats.hdf5`).

Bad samples are logged one line each (``bad sample 000042: <reason>``), skipped, listed in
``consolidation.json`` and returned; the caller decides the exit status.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from core.camera import VIEWPOINT_ORDER
from pipeline.formats import hdf5 as h5_out
from pipeline.formats.depth import encode_depth
from pipeline.formats.exr import ExrReadError, read_view_exr
from pipeline.formats.png import (
    PngError,
    decode_png,
    encode_png8,
    encode_png16,
    linear_to_srgb8,
    png_bit_depth,
)
from pipeline.quality.raw_samples import (
    N_BUCKETS,
    OBJECT_FIELDS,
    SPLIT_OF_BUCKET,
    SPLITS,
    Sample,
    SidecarError,
    bucket_of,
    list_sample_dirs,
    load_sample,
    split_of,
)

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
VLEN_U8 = h5py.vlen_dtype(np.dtype(np.uint8))
_CHUNK_ROWS = 64


class SampleError(ValueError):
    """A sample whose views cannot be consolidated; the message says why."""


@dataclass(frozen=True)
class BadSample:
    """A sample left out of the consolidated files.

    Attributes:
        name: the sample folder name (``000042``).
        reason: what was wrong, naming the file.
    """

    name: str
    reason: str


@dataclass
class ConsolidationResult:
    """What a consolidation run wrote.

    Attributes:
        layout: ``"sample-major"`` (§2 buckets) or ``"scene-major"`` (§3 scene files).
        rows: output file name -> rows written.
        bad: samples left out.
        with_targets: whether instance/semantic/depth targets were stored (EXR input).
    """

    layout: str
    rows: dict[str, int] = field(default_factory=dict)
    bad: list[BadSample] = field(default_factory=list)
    with_targets: bool = False

    @property
    def written(self) -> int:
        """Samples (or scenes) written over all files."""
        return sum(self.rows.values())


# --------------------------------------------------------------------------------------------------- workers
@dataclass(frozen=True)
class _Task:
    index: int
    name: str
    paths: tuple[str, ...]
    kind: str  # "exr" | "png"
    size: tuple[int, int] | None  # (H, W) every view must have, or None
    scene_major: bool


def _view_arrays(path: str, kind: str, size: tuple[int, int] | None) -> dict[str, Any]:
    """Decodes one view into sRGB uint8 (and targets for EXR); raises SampleError / ExrReadError / PngError."""
    if kind == "exr":
        view = read_view_exr(path)
        if size is not None and view.shape != size:
            raise SampleError(f"{path}: image is {view.shape[1]}x{view.shape[0]}, sidecar says {size[1]}x{size[0]}")
        if view.instance.max(initial=0) > 65535 or view.semantic.max(initial=0) > 65535:
            raise SampleError(f"{path}: instance/semantic id above 65535 does not fit the 16-bit target PNG")
        try:
            depth = encode_depth(view.depth)
        except ValueError as exc:
            raise SampleError(f"{path}: {exc}") from exc
        return {
            "rgb": linear_to_srgb8(view.rgb),
            "instance": view.instance,
            "semantic": view.semantic,
            "depth": depth,
        }
    if kind == "png":
        try:
            data = Path(path).read_bytes()
        except FileNotFoundError as exc:
            raise SampleError(f"{path}: missing view file") from exc
        if png_bit_depth(data) != 8:
            raise SampleError(f"{path}: expected an 8-bit PNG")
        rgb = decode_png(data)
        if rgb.shape[2] != 3:
            raise SampleError(f"{path}: expected RGB, got {rgb.shape[2]} channels")
        if size is not None and rgb.shape[:2] != size:
            raise SampleError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]}, sidecar says {size[1]}x{size[0]}")
        return {"rgb": rgb, "png": data}
    raise ValueError(f"unknown view kind {kind!r}")


def _encode_task(task: _Task) -> tuple[str, int, Any]:
    """Worker: decode and encode one sample. Returns ("ok", index, payload) or ("bad", index, reason)."""
    try:
        views = [_view_arrays(p, task.kind, task.size) for p in task.paths]
    except (SampleError, ExrReadError, PngError, OSError) as exc:
        return "bad", task.index, str(exc)
    if task.scene_major:
        payload: dict[str, np.ndarray] = {"images": np.stack([v["rgb"] for v in views])}
        if task.kind == "exr":
            for key in ("instance", "semantic"):
                ids = np.stack([v[key] for v in views])
                if ids.max(initial=0) > 255:
                    return "bad", task.index, f"{key} id {ids.max()} does not fit uint8 (docs/formats.md §3)"
                payload[key] = ids.astype(np.uint8)
            payload["depth"] = np.stack([v["depth"] for v in views])
        return "ok", task.index, payload
    (view,) = views
    if task.kind == "png":
        return "ok", task.index, (view["png"], None)
    target = np.stack([view["instance"], view["semantic"], view["depth"]], axis=-1).astype(np.uint16)
    return "ok", task.index, (encode_png8(view["rgb"]), encode_png16(target))


@contextlib.contextmanager
def worker_pool(jobs: int) -> Iterator[Any]:
    """A process pool of ``jobs`` workers, or None for ``jobs <= 1``.

    Workers are forked where the platform allows it (start-up in milliseconds instead of a second of imports per
    worker with "spawn"). Create the pool before opening any HDF5 file so that no worker inherits an open handle.
    """
    if jobs <= 1:
        yield None
        return
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    with mp.get_context(method).Pool(jobs) as pool:
        yield pool


def map_ordered(fn: Callable[[Any], Any], tasks: list, jobs: int = 1, pool: Any = None) -> Iterator[Any]:
    """Applies ``fn`` to ``tasks`` in ``pool`` (or a new pool of ``jobs`` processes; inline for 1), in order."""
    if pool is None and (jobs <= 1 or len(tasks) <= 1):
        yield from map(fn, tasks)
        return
    with contextlib.ExitStack() as stack:
        if pool is None:
            pool = stack.enter_context(worker_pool(jobs))
        chunksize = max(1, min(16, len(tasks) // (pool._processes * 8)))
        yield from pool.imap(fn, tasks, chunksize=chunksize)


# --------------------------------------------------------------------------------------------------- planning
def _mode(values: Iterable[Any]) -> Any:
    counts = Counter(values)
    return max(counts, key=lambda v: (counts[v], str(v)))


def _view_kind(sample: Sample) -> str:
    exts = {Path(v["file"]).suffix.lower() for v in sample.views}
    if exts == {".exr"}:
        return "exr"
    if exts == {".png"}:
        return "png"
    return "mixed"


@dataclass
class _Plan:
    samples: list[Sample]
    bad: list[BadSample]
    scene_major: bool
    kind: str
    views: int
    size: tuple[int, int] | None
    classes: list[str]
    max_objects: int


def plan_consolidation(dataset_dir: Path) -> _Plan:
    """Loads every sidecar and decides the layout, input kind, view count and resolution.

    Raises:
        FileNotFoundError: no ``samples/`` folder.
        ValueError: no sample has a valid sidecar.
    """
    samples, bad = [], []
    for path in list_sample_dirs(dataset_dir):
        try:
            samples.append(load_sample(path))
        except SidecarError as exc:
            bad.append(BadSample(path.name, str(exc)))
    if not samples:
        raise ValueError(f"{dataset_dir}: no sample with a valid sidecar ({len(bad)} bad)")

    def keep(pred: Callable[[Sample], bool], reason: Callable[[Sample], str]) -> None:
        nonlocal samples
        kept = []
        for s in samples:
            if pred(s):
                kept.append(s)
            else:
                bad.append(BadSample(s.name, reason(s)))
        samples = kept

    n_views = _mode(len(s.views) for s in samples)
    scene_major = any(len(s.views) > 1 for s in samples)
    if scene_major:
        keep(lambda s: len(s.views) == n_views, lambda s: f"has {len(s.views)} views, the dataset has {n_views}")
    kind = _mode(_view_kind(s) for s in samples)
    keep(lambda s: _view_kind(s) == kind, lambda s: f"view files are {_view_kind(s)}, the dataset's are {kind}")
    if kind == "mixed":
        raise ValueError(f"{dataset_dir}: view files mix .exr and .png within samples; re-render the dataset")
    classes = _mode(tuple(s.sidecar["classes"]) for s in samples)
    keep(lambda s: tuple(s.sidecar["classes"]) == classes, lambda s: "its 'classes' differ from the dataset's")
    size = None
    if scene_major:
        res = _mode(s.resolution for s in samples)
        keep(lambda s: s.resolution == res, lambda s: f"resolution {s.resolution} differs from the dataset's {res}")
        size = (res[1], res[0])
    max_objects = max(1, max(len(s.sidecar["objects"]) for s in samples))
    bad.sort(key=lambda b: b.name)
    return _Plan(samples, bad, scene_major, kind, n_views, size, list(classes), max_objects)


# --------------------------------------------------------------------------------------------------- metadata
def _object_arrays(sample: Sample, m: int) -> dict[str, np.ndarray]:
    objs = sample.sidecar["objects"]
    out: dict[str, np.ndarray] = {
        "instance_id": np.zeros(m, np.int32),
        "class_index": np.full(m, -1, np.int32),
    }
    for key, shape in OBJECT_FIELDS.items():
        out[key] = np.zeros((m, *shape), np.float32)
    for i, obj in enumerate(objs):
        out["instance_id"][i] = obj["instance_id"]
        out["class_index"][i] = obj["class_index"]
        for key in OBJECT_FIELDS:
            out[key][i] = obj[key]
    out["num_objects"] = np.int32(len(objs))
    out["light"] = np.asarray(sample.sidecar.get("light", [0.0, 0.0, 0.0]), np.float32)
    return out


def _common_attrs(fh: h5py.File, dataset_dir: Path, plan: _Plan, layout: str) -> None:
    first = plan.samples[0].sidecar
    fh.attrs["format_version"] = FORMAT_VERSION
    fh.attrs["layout"] = layout
    fh.attrs["dataset"] = Path(dataset_dir).name
    fh.attrs["generator"] = str(first.get("generator", ""))
    fh.attrs["dataset_seed"] = int(first.get("dataset_seed", -1))
    fh.attrs["classes"] = np.array(plan.classes, dtype=h5py.string_dtype())
    fh.attrs["depth_code"] = "uint16 millimetres; 0 = no hit, 65535 = beyond 65.534 m"


class _BucketWriter:
    """Appends rows of one ``imgs_XX.h5`` (§2) to its temporary file, ``_CHUNK_ROWS`` at a time."""

    def __init__(self, path: Path, bucket: int, plan: _Plan, dataset_dir: Path, with_targets: bool):
        self.path = path
        self.fh = h5_out.create_h5(path)
        _common_attrs(self.fh, dataset_dir, plan, "sample-major")
        self.fh.attrs["bucket"] = bucket
        self.fh.attrs["split"] = SPLIT_OF_BUCKET[bucket]
        m, new = plan.max_objects, h5_out.new_dataset
        specs: dict[str, tuple[tuple[int, ...], Any]] = {
            "index": ((), np.int64),
            "seed": ((), np.int64),
            "png_images": ((), VLEN_U8),
            "K": ((3, 3), np.float32),
            "cam_to_world": ((4, 4), np.float32),
            "num_objects": ((), np.int32),
            "light": ((3,), np.float32),
            "instance_id": ((m,), np.int32),
            "class_index": ((m,), np.int32),
        }
        if with_targets:
            specs["png_targets"] = ((), VLEN_U8)
        for key, shape in OBJECT_FIELDS.items():
            specs[key] = ((m, *shape), np.float32)
        self.ds = {k: new(self.fh, k, (0, *shape), dt, _CHUNK_ROWS) for k, (shape, dt) in specs.items()}
        self.buf: dict[str, list] = {k: [] for k in self.ds}

    def add(self, sample: Sample, png: bytes, target: bytes | None) -> None:
        view = sample.views[0]
        row = _object_arrays(sample, self.ds["class_index"].shape[1])
        row.update(
            index=np.int64(sample.index),
            seed=np.int64(sample.sidecar.get("seed", -1)),
            png_images=np.frombuffer(png, np.uint8),
            K=np.asarray(view["K"], np.float32),
            cam_to_world=np.asarray(view["cam_to_world_opencv"], np.float32),
        )
        if target is not None:
            row["png_targets"] = np.frombuffer(target, np.uint8)
        for key in self.buf:
            self.buf[key].append(row[key])
        if len(self.buf["index"]) >= _CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        for key, rows in self.buf.items():
            h5_out.append_rows(self.ds[key], rows)
            rows.clear()

    @property
    def rows(self) -> int:
        return self.ds["index"].shape[0] + len(self.buf["index"])


class _SceneWriter:
    """Appends scene rows of one ``scenes_{split}.h5`` (§3) to its temporary file."""

    def __init__(self, path: Path, split: str, plan: _Plan, dataset_dir: Path, with_targets: bool):
        self.path = path
        self.fh = h5_out.create_h5(path)
        _common_attrs(self.fh, dataset_dir, plan, "scene-major")
        self.fh.attrs["split"] = split
        self.fh.attrs["views"] = plan.views
        self.fh.attrs["viewpoint_order"] = VIEWPOINT_ORDER
        v, (h, w), new = plan.views, plan.size, h5_out.new_dataset
        self.ds = {
            "images": new(self.fh, "images", (0, v, h, w, 3), np.uint8, 1, compression="gzip"),
            "viewpoints": new(self.fh, "viewpoints", (0, v, 7), np.float32, _CHUNK_ROWS),
            "viewpoints_xyzyp": new(self.fh, "viewpoints_xyzyp", (0, v, 5), np.float32, _CHUNK_ROWS),
            "K": new(self.fh, "K", (0, v, 3, 3), np.float32, _CHUNK_ROWS),
            "cam_to_world": new(self.fh, "cam_to_world", (0, v, 4, 4), np.float32, _CHUNK_ROWS),
            "scene_index": new(self.fh, "scene_index", (0,), np.int64, _CHUNK_ROWS),
        }
        if with_targets:
            self.ds["depth"] = new(self.fh, "depth", (0, v, h, w), np.uint16, 1, compression="gzip")
            for key in ("instance", "semantic"):
                self.ds[key] = new(self.fh, key, (0, v, h, w), np.uint8, 1, compression="gzip")

    def add(self, sample: Sample, payload: dict[str, np.ndarray]) -> None:
        views = sample.views
        row = dict(payload)
        row["viewpoints"] = np.asarray([v["viewpoint_gqn"] for v in views], np.float32)
        row["viewpoints_xyzyp"] = np.asarray([v["viewpoint_xyzyp"] for v in views], np.float32)
        row["K"] = np.asarray([v["K"] for v in views], np.float32)
        row["cam_to_world"] = np.asarray([v["cam_to_world_opencv"] for v in views], np.float32)
        row["scene_index"] = np.int64(sample.index)
        for key, ds in self.ds.items():
            h5_out.append_rows(ds, [row[key]])

    def flush(self) -> None:
        """Rows are written as they come; nothing buffered."""

    @property
    def rows(self) -> int:
        return self.ds["scene_index"].shape[0]


# --------------------------------------------------------------------------------------------------- driver
def bucket_file(dataset_dir: Path, bucket: int) -> Path:
    """``DATA_DIR/NAME/imgs_{bucket:02d}.h5``."""
    return Path(dataset_dir) / f"imgs_{bucket:02d}.h5"


def scene_file(dataset_dir: Path, split: str) -> Path:
    """``DATA_DIR/NAME/scenes_{split}.h5``."""
    return Path(dataset_dir) / f"scenes_{split}.h5"


def consolidate(
    dataset_dir: Path,
    jobs: int = 1,
    buckets: Iterable[int] | None = None,
    require_exr: bool = False,
    progress: bool = False,
) -> ConsolidationResult:
    """Consolidates ``DATA_DIR/NAME`` into §2 buckets or §3 scene files (chosen by the number of views).

    Args:
        dataset_dir: ``DATA_DIR/NAME`` holding ``samples/``.
        jobs: processes decoding and encoding views (1 = all in this process).
        buckets: single-view datasets only: the buckets to (re)write; all 12 when None.
        require_exr: fail unless the views are EXR (the original ``-e``); targets are stored whenever they are.
        progress: show a tqdm bar.

    Returns:
        What was written and which samples were left out.

    Raises:
        FileNotFoundError: no ``samples/`` folder.
        ValueError: bad arguments, no usable sample, PNG input with ``require_exr``.
        h5_out.DatasetBusyError: another run holds the dataset.
    """
    dataset_dir = Path(dataset_dir)
    plan = plan_consolidation(dataset_dir)
    if require_exr and plan.kind != "exr":
        raise ValueError(
            f"{dataset_dir}: -e/--exr asks for EXR views but the samples hold {plan.kind.upper()} files; "
            "render with rendering.render_exr = True or drop -e"
        )
    with_targets = plan.kind == "exr"
    layout = "scene-major" if plan.scene_major else "sample-major"
    result = ConsolidationResult(layout=layout, with_targets=with_targets)
    if plan.scene_major:
        if buckets is not None:
            raise ValueError("-b/--buckets applies to single-view datasets; scene files are written per split")
        keys: list[Any] = list(SPLITS)
        key_of: Callable[[int], Any] = split_of
        paths = {s: scene_file(dataset_dir, s) for s in SPLITS}
    else:
        keys = sorted(set(range(N_BUCKETS) if buckets is None else buckets))
        if not keys or any(not 0 <= b < N_BUCKETS for b in keys):
            raise ValueError(f"buckets must be in 0..{N_BUCKETS - 1}, got {keys}")
        key_of = bucket_of
        paths = {b: bucket_file(dataset_dir, b) for b in keys}
    samples = [s for s in plan.samples if key_of(s.index) in paths]
    by_index = {s.index: s for s in samples}
    tasks = [
        _Task(
            index=s.index,
            name=s.name,
            paths=tuple(str(s.view_path(v)) for v in range(len(s.views))),
            kind=plan.kind,
            size=plan.size,
            scene_major=plan.scene_major,
        )
        for s in samples
    ]
    logger.info(
        "consolidating %d %s samples of %s (%s views, %s) into %d files with %d process(es)",
        len(tasks), layout, dataset_dir.name, plan.views, plan.kind, len(paths), jobs,
    )
    bad = [b for b in plan.bad if not b.name.isdigit() or key_of(int(b.name)) in paths]
    with h5_out.dataset_lock(dataset_dir), worker_pool(min(jobs, len(tasks))) as pool:
        writers: dict[Any, _BucketWriter | _SceneWriter] = {}
        try:
            for key in keys:
                cls = _SceneWriter if plan.scene_major else _BucketWriter
                writers[key] = cls(paths[key], key, plan, dataset_dir, with_targets)
            results = map_ordered(_encode_task, tasks, pool=pool)
            for status, index, payload in tqdm(results, total=len(tasks), disable=not progress, unit="sample"):
                sample = by_index[index]
                if status == "bad":
                    bad.append(BadSample(sample.name, payload))
                    continue
                writer = writers[key_of(index)]
                if plan.scene_major:
                    writer.add(sample, payload)
                else:
                    writer.add(sample, *payload)
            for writer in writers.values():
                writer.flush()
                result.rows[writer.path.name] = writer.rows
            for writer in writers.values():
                h5_out.publish(writer.fh, writer.path)
        except BaseException:
            for key, writer in writers.items():
                h5_out.discard(writer.fh, paths[key])
            raise
        bad.sort(key=lambda b: b.name)
        result.bad = bad
        h5_out.write_json_atomic(
            dataset_dir / "splits.json",
            {
                "format_version": FORMAT_VERSION,
                "layout": layout,
                "split_of_bucket": {str(b): SPLIT_OF_BUCKET[b] for b in range(N_BUCKETS)},
                "bucket": "index % 12",
            },
        )
        h5_out.write_json_atomic(
            dataset_dir / "consolidation.json",
            {
                "layout": layout,
                "views": plan.views,
                "input": plan.kind,
                "with_targets": with_targets,
                "rows": result.rows,
                "bad_samples": [{"sample": b.name, "reason": b.reason} for b in bad],
            },
        )
    for b in bad:
        logger.error("bad sample %s: %s", b.name, b.reason)
    logger.info(
        "consolidated %d samples into %d files in %s; %d bad sample(s) skipped",
        result.written, len(result.rows), dataset_dir, len(bad),
    )
    return result


def default_jobs() -> int:
    """Processes to use by default: the CPUs this process may run on."""
    return max(1, len(os.sched_getaffinity(0)))
