"""Consolidation of the raw render output (docs/formats.md §1) into HDF5 (§2 buckets, §3 scene files).

The dataset's declared layout (`dataset.json` "layout", :mod:`core.layout`) says how: a sample-major dataset
becomes ``imgs_{bucket:02d}.h5``, bucket = ``index % 12``; a scene-major one becomes ``scenes_{train,val,test}.h5``,
one row per scene (written by :mod:`pipeline.layouts.scene_file`). A dataset rendered before layouts were
declared gets its layout inferred once from its samples (more than one view: scene-major), with a warning, and
the inferred declaration is recorded in ``consolidation.json``.

How it runs:

1. Survey (process pool): every sample folder's sidecar is loaded and checked; the survey returns what the
   layout is checked against (views, view file format, classes, resolution, records, declared split). A sample
   whose sidecar is missing or invalid, or that disagrees with the layout, is *bad*.
2. Encode (process pool): each good sample's views are decoded and encoded (PNGs and metadata rows for buckets;
   deflated scene chunks for scene files). A corrupt or missing view file makes that sample bad.
3. The main process is the one HDF5 writer: it takes the results in sample order and appends them to temporary
   files, which are renamed over the outputs only when every file is complete (see :mod:`pipeline.formats.hdf5`).

Bad samples are logged one line each (``bad sample 000042: <reason>``), skipped, listed in
``consolidation.json`` and returned; the caller decides the exit status.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm import tqdm

from core.layout import Layout, LayoutError, read_layout
from core.publish import write_json
from core.samples import N_BUCKETS, SPLIT_OF_BUCKET, SPLIT_RULE, SPLITS, bucket_of, split_of
from pipeline.formats import hdf5 as h5_out
from pipeline.formats.depth import encode_depth, encode_depth_cm8
from pipeline.formats.exr import ExrReadError, read_view_exr
from pipeline.formats.png import (
    PngError,
    decode_png,
    encode_png8,
    encode_png16,
    linear_to_srgb8,
    png_bit_depth,
)
from pipeline.layouts.scene_file import EncodedScene, SceneFileError, SceneFileWriter, SceneSpec, encode_scene
from pipeline.quality.raw_samples import (
    OBJECT_FIELDS,
    Sample,
    SidecarError,
    list_sample_dirs,
    load_sample,
)
from render.voxels import BinvoxError, read_binvox

logger = logging.getLogger(__name__)

#: Version of the consolidated files' contract (2: seed-compatible 8-bit `png_targets` + `png_depth`, normals,
#: records and `fields`).
FORMAT_VERSION = 2
VLEN_U8 = h5py.vlen_dtype(np.dtype(np.uint8))
_CHUNK_ROWS = 64
#: Layout channels consolidation stores in scene files, and the EXR channels every EXR input needs.
_SCENE_CHANNELS = ("depth", "instance", "semantic", "normal", "albedo")
_EXR_NEEDS = ("depth", "instance", "semantic")
#: Per-row datasets of a bucket file; records may not take these names.
_BUCKET_FIELDS = ("index", "seed", "split", "png_images", "png_targets", "png_depth", "K", "cam_to_world",
                  "num_objects", "light", "instance_id", "class_index", *OBJECT_FIELDS)
_SPLIT_CODE = {s: i for i, s in enumerate(SPLITS)}


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
        declaration: the layout used (declared in dataset.json, or inferred).
        declared: whether dataset.json declared it.
    """

    layout: str
    rows: dict[str, int] = field(default_factory=dict)
    bad: list[BadSample] = field(default_factory=list)
    with_targets: bool = False
    declaration: Layout | None = None
    declared: bool = True

    @property
    def written(self) -> int:
        """Samples (or scenes) written over all files."""
        return sum(self.rows.values())


# --------------------------------------------------------------------------------------------------- pools
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


# --------------------------------------------------------------------------------------------------- survey
@dataclass(frozen=True)
class _Survey:
    """What the layout is checked against, from one sample's checked sidecar."""

    index: int
    name: str
    path: str
    n_views: int
    image_format: str  # "exr", "png" or "mixed"
    classes: tuple[str, ...]
    resolution: tuple[int, int]  # (width, height)
    n_objects: int
    split: Any  # the sidecar's "split", None when absent
    view_records: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...]  # per view: sorted (name, shape)
    sample_records: tuple[tuple[str, tuple[int, ...]], ...]
    sidecar_sha256: str = ""  # what the sample is: the generation id of a consolidation hashes these


def _record_shapes(records: Any, where: str) -> tuple[tuple[str, tuple[int, ...]], ...]:
    """Sorted (name, shape) of a sidecar's records object; raises SidecarError for non-numbers."""
    if records is None:
        return ()
    if not isinstance(records, dict):
        raise SidecarError(f"{where} must be an object of numbers or lists of numbers, got {type(records).__name__}")
    out = []
    for name, value in sorted(records.items()):
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise SidecarError(f"{where}.{name} is not numeric ({exc})") from exc
        if not np.all(np.isfinite(arr)):
            raise SidecarError(f"{where}.{name} has non-finite values")
        out.append((name, tuple(arr.shape)))
    return tuple(out)


def _view_format(sample: Sample) -> str:
    exts = {Path(v["file"]).suffix.lower() for v in sample.views}
    return {frozenset({".exr"}): "exr", frozenset({".png"}): "png"}.get(frozenset(exts), "mixed")


def _survey(path: Path) -> _Survey | BadSample:
    """Worker: load and check one sample's sidecar."""
    try:
        sample = load_sample(path)
        where = str(path / "sample.json")
        view_records = tuple(_record_shapes(v.get("records"), f"{where}: views[{i}].records")
                             for i, v in enumerate(sample.views))
        sample_records = _record_shapes(sample.sidecar.get("records"), f"{where}: records")
    except SidecarError as exc:
        return BadSample(path.name, str(exc))
    return _Survey(
        index=sample.index, name=sample.name, path=str(path), n_views=len(sample.views),
        image_format=_view_format(sample), classes=tuple(sample.sidecar["classes"]), resolution=sample.resolution,
        n_objects=len(sample.sidecar["objects"]), split=sample.sidecar.get("split"),
        view_records=view_records, sample_records=sample_records,
        sidecar_sha256=hashlib.sha256((path / "sample.json").read_bytes()).hexdigest(),
    )


# --------------------------------------------------------------------------------------------------- layout
def _mode(values: Iterable[Any]) -> Any:
    counts = Counter(values)
    return max(counts, key=lambda v: (counts[v], str(v)))


def infer_layout(dataset_dir: Path, surveys: list[_Survey]) -> Layout:
    """The layout of a dataset rendered before layouts were declared, as consolidation always guessed it.

    More than one view in any sample means scene-major; the view count and file format are the most common
    ones; the channels are those of the first EXR (normals and albedo when it has them); records are the first
    sample's; the split is the index rule.

    Raises:
        ValueError: view files mix .exr and .png within samples.
    """
    image_format = _mode(s.image_format for s in surveys)
    if image_format == "mixed":
        raise ValueError(f"{dataset_dir}: view files mix .exr and .png within samples; re-render the dataset")
    kept = [s for s in surveys if s.image_format == image_format]
    scene_major = any(s.n_views > 1 for s in surveys)
    channels: tuple[str, ...] = ("rgb",)
    if image_format == "exr":
        first = kept[0]
        sidecar = json.loads((Path(first.path) / "sample.json").read_text())
        try:
            view = read_view_exr(Path(first.path) / sidecar["views"][0]["file"])
        except ExrReadError:
            view = None  # that sample is reported bad later; infer normals from the declaration's default
        channels = ("rgb", *_EXR_NEEDS)
        if view is not None and view.normal is not None:
            channels += ("normal",)
        if view is not None and view.albedo is not None:
            channels += ("albedo",)
    return Layout(
        kind="scene-major" if scene_major else "sample-major",
        views=_mode(s.n_views for s in surveys) if scene_major else 1,
        image_format=image_format,
        channels=channels,
        view_records=dict(kept[0].view_records[0]) if kept[0].view_records else {},
        sample_records=dict(kept[0].sample_records),
        split=SPLIT_RULE,
    )


def _check_layout_usable(dataset_dir: Path, layout: Layout) -> None:
    """Raises LayoutError for a valid declaration this consolidation cannot store."""
    where = Path(dataset_dir) / "dataset.json"
    if layout.image_format == "exr":
        missing = [c for c in _EXR_NEEDS if c not in layout.channels]
        if missing:
            raise LayoutError(f"{where}: consolidation reads EXR views with depth, instance and semantic channels "
                              f"(docs/formats.md §1), the layout lacks {missing}: declare them")
    reserved = set(_BUCKET_FIELDS) if layout.kind == "sample-major" else set()
    names = [*layout.view_records, *layout.sample_records]
    clash = sorted((set(names) & reserved) | {n for n in names if names.count(n) > 1})
    if layout.kind == "scene-major":
        try:
            _scene_spec(layout, (1, 1))
        except SceneFileError as exc:
            raise LayoutError(f"{where}: {exc}") from None
    elif layout.sample_arrays:
        raise LayoutError(f"{where}: per-sample arrays {sorted(layout.sample_arrays)} are stored in scene files "
                          "only; declare the dataset scene-major (dataset.layout_kind = 'scene-major')")
    if clash:
        raise LayoutError(f"{where}: record names {clash} clash with each other or with the datasets of "
                          "docs/formats.md §2; rename them in the generator")


def _scene_channels(layout: Layout) -> tuple[str, ...]:
    return tuple(c for c in _SCENE_CHANNELS if c in layout.channels)


def _disagreement(s: _Survey, layout: Layout, classes: tuple[str, ...], resolution: tuple[int, int] | None) -> str:
    """Why a surveyed sample does not fit the layout ("" when it does)."""
    if s.n_views != layout.views:
        return f"has {s.n_views} views, the layout declares {layout.views}"
    if s.image_format != layout.image_format:
        return f"view files are {s.image_format}, the layout declares {layout.image_format}"
    if s.classes != classes:
        return "its 'classes' differ from the dataset's"
    if resolution is not None and s.resolution != resolution:
        return f"resolution {list(s.resolution)} differs from the dataset's {list(resolution)}"
    want_view = tuple(sorted(layout.view_records.items()))
    for i, got in enumerate(s.view_records):
        if got != want_view:
            return f"views[{i}].records {dict(got)} differ from the layout's view_records {dict(want_view)}"
    if s.sample_records != tuple(sorted(layout.sample_records.items())):
        return f"records {dict(s.sample_records)} differ from the layout's sample_records {layout.sample_records}"
    if layout.split == "declared" and s.split not in SPLITS:
        return f"'split' is {s.split!r}; the layout declares each sample's split, one of {list(SPLITS)}"
    return ""


@dataclass
class _Plan:
    layout: Layout
    declared: bool
    surveys: list[_Survey]
    bad: list[BadSample]
    size: tuple[int, int] | None  # (H, W) for scene files
    classes: list[str]
    max_objects: int

    def split(self, s: _Survey) -> str:
        return s.split if self.layout.split == "declared" else split_of(s.index)


def plan_consolidation(dataset_dir: Path, pool: Any = None, indices: Iterable[int] | None = None) -> _Plan:
    """Surveys every sample (or only those of `indices`, as a render worker does for the rows of its shard) and
    checks them against the dataset's layout (declared, else inferred once).

    Raises:
        FileNotFoundError: no ``samples/`` folder.
        LayoutError: dataset.json is missing or corrupt, or declares a layout that cannot be consolidated.
        ValueError: no sample has a valid sidecar.
    """
    dataset_dir = Path(dataset_dir)
    dirs = list_sample_dirs(dataset_dir)
    if indices is not None:
        wanted = {f"{i:06d}" for i in indices}
        dirs = [d for d in dirs if d.name in wanted]
    layout = read_layout(dataset_dir)
    surveys, bad = [], []
    for result in map_ordered(_survey, dirs, pool=pool):
        (bad if isinstance(result, BadSample) else surveys).append(result)
    if not surveys:
        raise ValueError(f"{dataset_dir}: no sample with a valid sidecar ({len(bad)} bad)")
    declared = layout is not None
    if layout is None:
        layout = infer_layout(dataset_dir, surveys)
        logger.warning(
            "%s: dataset.json declares no layout (rendered before declarations, format_version 1); inferred %s "
            "from the samples and recorded it in consolidation.json. Add it to dataset.json as \"layout\" to "
            "make it explicit", dataset_dir / "dataset.json", json.dumps(layout.to_json(), sort_keys=True),
        )
    _check_layout_usable(dataset_dir, layout)
    fits = [s for s in surveys if s.n_views == layout.views and s.image_format == layout.image_format]
    classes = _mode(s.classes for s in fits or surveys)
    # The resolution is not declared: scene files take the most common one (bucket rows are PNGs of any size).
    resolution = _mode(s.resolution for s in fits or surveys) if layout.kind == "scene-major" else None
    kept = []
    for s in surveys:
        reason = _disagreement(s, layout, classes, resolution)
        if reason:
            bad.append(BadSample(s.name, reason))
        else:
            kept.append(s)
    if not kept:
        raise ValueError(f"{dataset_dir}: no sample fits the layout {layout.to_json()} ({len(bad)} bad); "
                         f"first: {sorted(bad, key=lambda b: b.name)[0].reason}")
    bad.sort(key=lambda b: b.name)
    size = (resolution[1], resolution[0]) if resolution is not None else None
    max_objects = max(1, max(s.n_objects for s in kept))
    return _Plan(layout, declared, kept, bad, size, list(classes), max_objects)


# --------------------------------------------------------------------------------------------------- encoding
@dataclass(frozen=True)
class _Task:
    index: int
    path: str
    layout: Layout
    size: tuple[int, int] | None  # (H, W) every view must have, or None
    max_objects: int
    split: str


def _read_exr(path: Path, size: tuple[int, int] | None, layout: Layout) -> Any:
    view = read_view_exr(path)
    if size is not None and view.shape != size:
        raise SampleError(f"{path}: image is {view.shape[1]}x{view.shape[0]}, the dataset's is {size[1]}x{size[0]}")
    for channel in ("normal", "albedo"):
        if channel in layout.channels and getattr(view, channel) is None:
            raise SampleError(f"{path}: no {channel} channels, the layout declares {channel}")
    return view


def _read_png(path: Path, size: tuple[int, int] | None) -> tuple[np.ndarray, bytes]:
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise SampleError(f"{path}: missing view file") from exc
    if png_bit_depth(data) != 8:
        raise SampleError(f"{path}: expected an 8-bit PNG")
    rgb = decode_png(data)
    if rgb.shape[2] != 3:
        raise SampleError(f"{path}: expected RGB, got {rgb.shape[2]} channels")
    if size is not None and rgb.shape[:2] != size:
        raise SampleError(f"{path}: image is {rgb.shape[1]}x{rgb.shape[0]}, the dataset's is {size[1]}x{size[0]}")
    return rgb, data


def _ids8(ids: np.ndarray, name: str, path: Path | str) -> np.ndarray:
    """uint8 ids; ids above 255 do not fit the 8-bit datasets (§2 png_targets, §3 instance/semantic)."""
    top = int(ids.max(initial=0))
    if top > 255:
        raise SampleError(f"{path}: {name} id {top} does not fit uint8 (docs/formats.md §2-3)")
    return ids.astype(np.uint8)


def _records(records: dict[str, Any] | None, shapes: dict[str, tuple[int, ...]]) -> dict[str, np.ndarray]:
    records = records or {}
    return {name: np.asarray(records[name], np.float32).reshape(shape) for name, shape in shapes.items()}


def _object_arrays(sidecar: dict[str, Any], m: int) -> dict[str, np.ndarray]:
    objs = sidecar["objects"]
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
    out["light"] = np.asarray(sidecar.get("light", [0.0, 0.0, 0.0]), np.float32)
    return out


def _bucket_row(task: _Task, sidecar: dict[str, Any], folder: Path) -> dict[str, np.ndarray]:
    """One §2 row: encoded PNGs, cameras, objects, records."""
    view = sidecar["views"][0]
    path = folder / view["file"]
    row = _object_arrays(sidecar, task.max_objects)
    if task.layout.image_format == "png":
        row["png_images"] = np.frombuffer(_read_png(path, task.size)[1], np.uint8)
    else:
        exr = _read_exr(path, task.size, task.layout)
        try:
            depth_mm = encode_depth(exr.depth)
        except ValueError as exc:
            raise SampleError(f"{path}: {exc}") from exc
        # The seed's 8-bit target PNG (instance, semantic, depth in cm) and the lossless depth beside it.
        target = np.stack([_ids8(exr.instance, "instance", path), _ids8(exr.semantic, "semantic", path),
                           encode_depth_cm8(exr.depth)], axis=-1)
        row["png_images"] = np.frombuffer(encode_png8(linear_to_srgb8(exr.rgb)), np.uint8)
        row["png_targets"] = np.frombuffer(encode_png8(target), np.uint8)
        row["png_depth"] = np.frombuffer(encode_png16(depth_mm), np.uint8)
    row.update(
        index=np.int64(task.index),
        seed=np.int64(sidecar.get("seed", -1)),
        split=np.int8(_SPLIT_CODE[task.split]),
        K=np.asarray(view["K"], np.float32),
        cam_to_world=np.asarray(view["cam_to_world_opencv"], np.float32),
        **_records(view.get("records"), task.layout.view_records),
        **_records(sidecar.get("records"), task.layout.sample_records),
    )
    return row


def _scene(task: _Task, sidecar: dict[str, Any], folder: Path) -> EncodedScene:
    """One §3 row, deflated."""
    layout = task.layout
    views = sidecar["views"]
    paths = [folder / v["file"] for v in views]
    if layout.image_format == "png":
        images = np.stack([_read_png(p, task.size)[0] for p in paths])
        channels: dict[str, np.ndarray] = {}
    else:
        exrs = [_read_exr(p, task.size, layout) for p in paths]
        images = np.stack([linear_to_srgb8(v.rgb) for v in exrs])
        try:
            depth = np.stack([encode_depth(v.depth) for v in exrs])
        except ValueError as exc:
            raise SampleError(f"{folder}: {exc}") from exc
        channels = {"depth": depth}
        for key in ("instance", "semantic"):
            channels[key] = _ids8(np.stack([getattr(v, key) for v in exrs]), key, folder)
        if "normal" in layout.channels:
            channels["normal"] = np.stack([v.normal for v in exrs]).astype(np.float16)
        if "albedo" in layout.channels:
            channels["albedo"] = np.stack([linear_to_srgb8(v.albedo) for v in exrs])
    spec = _scene_spec(layout, task.size)
    arrays = {name: _sample_array(folder, sidecar, name, shape) for name, shape in layout.sample_arrays.items()}
    return encode_scene(
        spec, task.index, images,
        K=np.asarray([v["K"] for v in views], np.float64),
        cam_to_world=np.asarray([v["cam_to_world_opencv"] for v in views], np.float64),
        # The sidecar's own viewpoints, stored as rendered (not recomputed from the poses).
        viewpoints=np.asarray([v["viewpoint_gqn"] for v in views], np.float32),
        viewpoints_xyzyp=np.asarray([v["viewpoint_xyzyp"] for v in views], np.float32),
        channels=channels,
        view_records={name: np.asarray([(v.get("records") or {})[name] for v in views], np.float32).reshape(
            (len(views), *shape)) for name, shape in layout.view_records.items()},
        sample_records=_records(sidecar.get("records"), layout.sample_records),
        scene_arrays=arrays,
    )


def _sample_array(folder: Path, sidecar: dict[str, Any], name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A declared per-sample array: the binvox grid the sidecar's `arrays[name]["file"]` names (uint8 0/1)."""
    entry = (sidecar.get("arrays") or {}).get(name)
    if not isinstance(entry, dict) or not isinstance(entry.get("file"), str):
        raise SampleError(f"{folder / 'sample.json'}: no arrays.{name}.file, the layout declares {name} {list(shape)}")
    path = folder / entry["file"]
    try:
        grid, _, _ = read_binvox(path)
    except FileNotFoundError as exc:
        raise SampleError(f"{path}: missing {name} file") from exc
    except BinvoxError as exc:
        raise SampleError(str(exc)) from exc
    if grid.shape != tuple(shape):
        raise SampleError(f"{path}: {name} grid is {list(grid.shape)}, the layout declares {list(shape)}")
    return grid


def _encode_task(task: _Task) -> tuple[str, int, Any]:
    """Worker: decode and encode one sample. Returns ("ok", index, payload) or ("bad", index, reason)."""
    folder = Path(task.path)
    try:
        sidecar = json.loads((folder / "sample.json").read_text())  # checked by the survey
        if task.layout.kind == "scene-major":
            return "ok", task.index, _scene(task, sidecar, folder)
        return "ok", task.index, _bucket_row(task, sidecar, folder)
    except (SampleError, ExrReadError, PngError, SceneFileError, OSError) as exc:
        return "bad", task.index, str(exc)


# --------------------------------------------------------------------------------------------------- writers
def _common_attrs(dataset_dir: Path, plan: _Plan) -> dict[str, Any]:
    first = json.loads((Path(plan.surveys[0].path) / "sample.json").read_text())
    return {
        "format_version": FORMAT_VERSION,
        "dataset": Path(dataset_dir).name,
        "generator": str(first.get("generator", "")),
        "dataset_seed": int(first.get("dataset_seed", -1)),
        "classes": np.array(plan.classes, dtype=h5py.string_dtype()),
        "depth_code": "uint16 millimetres; 0 = no hit, 65535 = beyond 65.534 m",
        "split_rule": plan.layout.split,
        "generation": generation_id(plan),
    }


def generation_id(plan: _Plan) -> str:
    """The id every file of one consolidation carries (split files and consolidation.json alike): a digest of
    the layout and of every usable sample (index, split, sidecar bytes), so the same input gives the same id (and
    the same bytes) and files from consolidations of different inputs never pass as one dataset."""
    return generation_digest(plan.layout, [(s.index, plan.split(s), s.sidecar_sha256) for s in plan.surveys])


def generation_digest(layout: Layout, samples: Iterable[tuple[int, str, str]]) -> str:
    """The generation id of a consolidation of `samples` ((index, split, sidecar sha256) each) in `layout`; the
    render farm's virtual split files (pipeline.layouts.virtual) compute theirs with it from the shards' rows."""
    h = hashlib.sha256(json.dumps(layout.to_json(), sort_keys=True).encode())
    for index, split, sha in sorted(samples):
        h.update(f"{index}:{split}:{sha}\n".encode())
    return h.hexdigest()[:32]


def _scene_spec(layout: Layout, size: tuple[int, int]) -> SceneSpec:
    return SceneSpec(views=layout.views, height=size[0], width=size[1], channels=_scene_channels(layout),
                     view_records=layout.view_records, sample_records=layout.sample_records,
                     scene_arrays={name: (shape, "uint8") for name, shape in layout.sample_arrays.items()})


class _BucketWriter:
    """Appends rows of one ``imgs_XX.h5`` (§2) to its temporary file, ``_CHUNK_ROWS`` at a time."""

    def __init__(self, path: Path, bucket: int | None, plan: _Plan, attrs: dict[str, Any]):
        self.path = path
        self.fh = h5_out.create_h5(path)
        for key, value in attrs.items():
            self.fh.attrs[key] = value
        self.fh.attrs["layout"] = "sample-major"
        if bucket is not None:  # None: a render worker's shard rows, which hold rows of every bucket
            self.fh.attrs["bucket"] = bucket
        if bucket is not None and plan.layout.split == SPLIT_RULE:
            self.fh.attrs["split"] = SPLIT_OF_BUCKET[bucket]
        m, new = plan.max_objects, h5_out.new_dataset
        specs: dict[str, tuple[tuple[int, ...], Any]] = {
            "index": ((), np.int64),
            "seed": ((), np.int64),
            "split": ((), np.int8),
            "png_images": ((), VLEN_U8),
            "K": ((3, 3), np.float32),
            "cam_to_world": ((4, 4), np.float32),
            "num_objects": ((), np.int32),
            "light": ((3,), np.float32),
            "instance_id": ((m,), np.int32),
            "class_index": ((m,), np.int32),
        }
        if plan.layout.image_format == "exr":
            specs["png_targets"] = ((), VLEN_U8)
            specs["png_depth"] = ((), VLEN_U8)
        for key, shape in OBJECT_FIELDS.items():
            specs[key] = ((m, *shape), np.float32)
        for key, shape in (*plan.layout.view_records.items(), *plan.layout.sample_records.items()):
            specs[key] = (shape, np.float32)
        self.fh.attrs["fields"] = json.dumps(sorted(specs))
        self.ds = {k: new(self.fh, k, (0, *shape), dt, _CHUNK_ROWS) for k, (shape, dt) in specs.items()}
        self.buf: dict[str, list] = {k: [] for k in self.ds}

    def add(self, row: dict[str, np.ndarray]) -> None:
        for key in self.buf:
            self.buf[key].append(row[key])
        if len(self.buf["index"]) >= _CHUNK_ROWS:
            self.flush()

    def flush(self) -> None:
        h5_out.reserve(self.path, sum(np.asarray(r).nbytes for rows in self.buf.values() for r in rows))
        for key, rows in self.buf.items():
            h5_out.append_rows(self.ds[key], rows)
            rows.clear()

    @property
    def rows(self) -> int:
        return self.ds["index"].shape[0] + len(self.buf["index"])

    def close_for_publish(self) -> tuple[h5py.File, Path]:
        """Writes what is buffered; the (file, final path) for :func:`h5_out.publish_all`."""
        self.flush()
        return self.fh, self.path

    def discard(self) -> None:
        h5_out.discard(self.fh, self.path)


# --------------------------------------------------------------------------------------------------- driver
def bucket_file(dataset_dir: Path, bucket: int) -> Path:
    """``DATA_DIR/NAME/imgs_{bucket:02d}.h5``."""
    return Path(dataset_dir) / f"imgs_{bucket:02d}.h5"


def scene_file(dataset_dir: Path, split: str) -> Path:
    """``DATA_DIR/NAME/scenes_{split}.h5``."""
    return Path(dataset_dir) / f"scenes_{split}.h5"


def _outputs(dataset_dir: Path, plan: _Plan, buckets: Iterable[int] | None) -> tuple[dict[Any, Path],
                                                                                      Callable[[_Survey], Any]]:
    """Output file per key (split or bucket) and the key of a sample."""
    if plan.layout.kind == "scene-major":
        if buckets is not None:
            raise ValueError("-b/--buckets applies to sample-major datasets; scene files are written per split")
        return {s: scene_file(dataset_dir, s) for s in SPLITS}, plan.split
    keys = sorted(set(range(N_BUCKETS) if buckets is None else buckets))
    if not keys or any(not 0 <= b < N_BUCKETS for b in keys):
        raise ValueError(f"buckets must be in 0..{N_BUCKETS - 1}, got {keys}")
    return {b: bucket_file(dataset_dir, b) for b in keys}, lambda s: bucket_of(s.index)


def _open_writers(dataset_dir: Path, plan: _Plan, paths: dict[Any, Path]) -> dict[Any, Any]:
    attrs = _common_attrs(dataset_dir, plan)
    writers: dict[Any, Any] = {}
    try:
        for key, path in paths.items():
            if plan.layout.kind == "scene-major":
                writers[key] = SceneFileWriter(path, _scene_spec(plan.layout, plan.size), {**attrs, "split": key})
            else:
                writers[key] = _BucketWriter(path, key, plan, attrs)
    except BaseException:
        for writer in writers.values():
            writer.discard()
        raise
    return writers


def _write_reports(dataset_dir: Path, plan: _Plan, result: ConsolidationResult, split_of_sample: dict[int, str]):
    write_reports(dataset_dir, plan.layout, plan.declared, generation_id(plan), result.rows, result.bad,
                  split_of_sample)


def write_reports(dataset_dir: Path, layout: Layout, declared: bool, generation: str, rows: dict[str, int],
                  bad: list[BadSample], split_of_sample: dict[int, str], extra: dict[str, Any] | None = None) -> None:
    """Writes ``splits.json`` and then ``consolidation.json`` (the file readers check generations against, so
    last); `extra` adds keys to consolidation.json (the farm's virtual files say ``"virtual": true``)."""
    write_json(
        dataset_dir / "splits.json",
        {
            "format_version": FORMAT_VERSION,
            "layout": layout.kind,
            "rule": layout.split,
            "split_of_bucket": {str(b): SPLIT_OF_BUCKET[b] for b in range(N_BUCKETS)},
            "bucket": "index % 12",
            "samples": {s: sorted(i for i, t in split_of_sample.items() if t == s) for s in SPLITS},
        },
    )
    write_json(
        dataset_dir / "consolidation.json",
        {
            "format_version": FORMAT_VERSION,
            "generation": generation,
            "layout": layout.kind,
            "layout_declaration": layout.to_json(),
            "layout_declared": declared,
            "views": layout.views,
            "input": layout.image_format,
            "with_targets": layout.image_format == "exr",
            "rows": rows,
            "bad_samples": [{"sample": b.name, "reason": b.reason} for b in bad],
            **(extra or {}),
        },
    )


def consolidate(
    dataset_dir: Path,
    jobs: int = 1,
    buckets: Iterable[int] | None = None,
    require_exr: bool = False,
    progress: bool = False,
) -> ConsolidationResult:
    """Consolidates ``DATA_DIR/NAME`` into §2 buckets or §3 scene files, as its layout declares.

    Args:
        dataset_dir: ``DATA_DIR/NAME`` holding ``dataset.json`` and ``samples/``.
        jobs: processes surveying, decoding and encoding samples (1 = all in this process).
        buckets: sample-major datasets only: the buckets to (re)write; all 12 when None.
        require_exr: fail unless the views are EXR (the original ``-e``); targets are stored whenever they are.
        progress: show a tqdm bar.

    Returns:
        What was written and which samples were left out.

    Raises:
        FileNotFoundError: no ``samples/`` folder.
        LayoutError: dataset.json is missing, corrupt or declares an unusable layout.
        ValueError: bad arguments, no usable sample, PNG input with ``require_exr``.
        DatasetLockedError: another writer holds the dataset folder (core.lock).
        DiskFullError: too little space; nothing is left behind.
    """
    dataset_dir = Path(dataset_dir)
    with h5_out.dataset_lock(dataset_dir), worker_pool(jobs) as pool:
        plan = plan_consolidation(dataset_dir, pool=pool)
        layout = plan.layout
        if require_exr and layout.image_format != "exr":
            raise ValueError(
                f"{dataset_dir}: -e/--exr asks for EXR views but the samples hold {layout.image_format.upper()} "
                "files; render with rendering.render_exr = True or drop -e"
            )
        result = ConsolidationResult(layout=layout.kind, with_targets=layout.image_format == "exr",
                                     declaration=layout, declared=plan.declared)
        paths, key_of = _outputs(dataset_dir, plan, buckets)
        surveys = [s for s in plan.surveys if key_of(s) in paths]
        tasks = [_Task(s.index, s.path, layout, plan.size, plan.max_objects, plan.split(s)) for s in surveys]
        by_index = {s.index: s for s in surveys}
        logger.info(
            "consolidating %d %s samples of %s (%d views, %s) into %d files with %d process(es)",
            len(tasks), layout.kind, dataset_dir.name, layout.views, layout.image_format, len(paths), jobs,
        )
        # Bad samples of the buckets not written are not this run's to report.
        bad = [b for b in plan.bad if not b.name.isdigit() or layout.kind == "scene-major"
               or bucket_of(int(b.name)) in paths]
        split_of_sample: dict[int, str] = {}
        writers = _open_writers(dataset_dir, plan, paths)
        try:
            results = map_ordered(_encode_task, tasks, pool=pool)
            for status, index, payload in tqdm(results, total=len(tasks), disable=not progress, unit="sample"):
                survey = by_index[index]
                if status == "bad":
                    bad.append(BadSample(survey.name, payload))
                    continue
                writer = writers[key_of(survey)]
                if layout.kind == "scene-major":
                    writer.add_encoded(payload)
                else:
                    writer.add(payload)
                split_of_sample[index] = plan.split(survey)
            for writer in writers.values():
                result.rows[writer.path.name] = writer.rows
            h5_out.publish_all([writer.close_for_publish() for writer in writers.values()])
        except h5_out.DiskFullError as err:
            # the whole consolidation's need, from what the rows written so far took
            done = sum(writer.rows for writer in writers.values())
            written = sum(h5_out.temp_size(writer.path) for writer in writers.values())
            for writer in writers.values():
                writer.discard()
            needed = int(written / max(done, 1) * len(tasks)) + h5_out.MIN_HEADROOM
            raise h5_out.DiskFullError(err.path, max(needed, err.needed), err.free) from None
        except BaseException:
            for writer in writers.values():
                writer.discard()
            raise
        bad.sort(key=lambda b: b.name)
        result.bad = bad
        _write_reports(dataset_dir, plan, result, split_of_sample)
    for b in bad:
        logger.error("bad sample %s: %s", b.name, b.reason)
    logger.info(
        "consolidated %d samples into %d files in %s; %d bad sample(s) skipped",
        result.written, len(result.rows), dataset_dir, len(bad),
    )
    return result


def running_elsewhere(samples: int = 5, interval_s: float = 0.005) -> float | None:
    """Median number of runnable tasks other than this one (/proc/loadavg's "running"), None where unknown."""
    counts = []
    for i in range(samples):
        try:
            running = Path("/proc/loadavg").read_text().split()[3].split("/")[0]
        except (OSError, IndexError):
            return None
        counts.append(max(0, int(running) - 1))  # this process is running while it reads the file
        if i + 1 < samples:
            time.sleep(interval_s)
    return float(np.median(counts))


def default_jobs() -> int:
    """Processes to use by default: the CPUs this process may run on that other work leaves idle, at least 1.

    A pool is faster only on idle cores. Where every core is busy, the kernel shares the CPU between sessions
    (autogroups), not processes, so a pool gets no more time than one process and its own cost (forking, sending
    rows back) makes it slower: on this project's shared 2-CPU VM with other sessions' work runnable, 2 workers
    were slower than 1 process at 64x64 and 128x128 (docs/benchmarks.md). Idle CPUs are estimated from the tasks
    runnable now (a 20 ms look at /proc/loadavg); without it, all CPUs.
    """
    cpus = max(1, len(os.sched_getaffinity(0)))
    busy = running_elsewhere()
    if busy is None:
        return cpus
    return max(1, min(cpus, math.ceil(cpus - busy)))
