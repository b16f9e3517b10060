"""The HDF5 rows of one render shard, written by the render worker that finished it (docs/distributed.md).

A worker that has rendered every sample of a shard encodes them exactly as consolidation would (the same survey,
the same per-sample encoders and the one writer of each layout: :class:`SceneFileWriter` for scene-major data,
the §2 bucket writer for sample-major data) into ``rows/shard-XXXXX.h5``, published atomically (a killed worker
leaves at most a dot-named temporary file). The rows are ordered by split (scene-major: train, val, test) or by
bucket (sample-major: 0..11), and by sample index within each, so every split file's rows from one shard are one
contiguous range: the virtual split files (:mod:`pipeline.layouts.virtual`) map each with a single hyperslab.

What the shard holds is returned as a plain dict, which the driver stores in the shard's manifest line; the
manifest line, not the file, is what makes the rows count (a file no line lists is ignored and replaced by the
retried shard's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from core.samples import SPLITS, bucket_of, sample_dir
from pipeline.formats import hdf5 as h5_out
from pipeline.layouts.consolidate import (
    BadSample,
    SampleError,
    _BucketWriter,
    _common_attrs,
    _encode_task,
    _scene_spec,
    _Task,
    plan_consolidation,
)
from pipeline.layouts.scene_file import SceneFileWriter

logger = logging.getLogger(__name__)

ROWS_DIR = "rows"


def rows_path(dataset_dir: str | Path, shard_id: int) -> Path:
    """``DATA_DIR/NAME/rows/shard-XXXXX.h5``, the rows of shard `shard_id`."""
    return Path(dataset_dir) / ROWS_DIR / f"shard-{shard_id:05d}.h5"


def key_order(kind: str) -> list[str]:
    """The split-file keys in the order a shard's rows are grouped: splits (scene-major) or buckets as text."""
    return list(SPLITS) if kind == "scene-major" else [str(b) for b in range(12)]


def write_shard_rows(dataset_dir: str | Path, shard_id: int, indices: Iterable[int],
                     before_publish: Callable[[Path], None] | None = None) -> dict[str, Any]:
    """Encodes the samples `indices` of a dataset into its rows file for shard `shard_id` and publishes it.

    Args:
        dataset_dir: ``DATA_DIR/NAME`` with ``dataset.json`` (a declared layout) and the shard's samples.
        shard_id: the shard (names the file).
        indices: the shard's sample indices.
        before_publish: called with the temporary file once it is complete, before the rename (the test hook
            that kills a worker there).

    Returns:
        What the manifest line records: ``file`` (relative to the dataset folder), ``count`` (rows),
        ``ranges`` (split-file key -> [first row, rows]), ``max_objects``, ``size`` ([H, W] or None),
        ``classes``, ``samples`` ([[index, split, sidecar sha256], ...] of the rows, for the generation id),
        ``bad`` ([[sample, reason], ...] left out).

    Raises:
        LayoutError: dataset.json is missing or its layout cannot be consolidated.
        ValueError: no sample of the shard is usable.
    """
    dataset_dir = Path(dataset_dir)
    indices = sorted(indices)
    missing = [i for i in indices if not (sample_dir(dataset_dir, i) / "sample.json").is_file()]
    if missing:
        raise SampleError(f"{dataset_dir}: samples {missing[:5]} of shard {shard_id} are not rendered")
    plan = plan_consolidation(dataset_dir, indices=indices)
    layout = plan.layout
    keys = key_order(layout.kind)

    def key_of(survey: Any) -> str:
        return plan.split(survey) if layout.kind == "scene-major" else str(bucket_of(survey.index))

    surveys = sorted(plan.surveys, key=lambda s: (keys.index(key_of(s)), s.index))
    bad = list(plan.bad)
    path = rows_path(dataset_dir, shard_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    attrs = _common_attrs(dataset_dir, plan)
    del attrs["generation"]  # a shard has none of its own: the virtual split files carry the dataset's
    attrs["farm_shard"] = shard_id
    writer: Any = (SceneFileWriter(path, _scene_spec(layout, plan.size), attrs) if layout.kind == "scene-major"
                   else _BucketWriter(path, None, plan, attrs))
    ranges: dict[str, list[int]] = {}
    rows: list[list[Any]] = []
    try:
        for survey in surveys:
            task = _Task(survey.index, survey.path, layout, plan.size, plan.max_objects, plan.split(survey))
            status, _, payload = _encode_task(task)
            if status == "bad":
                bad.append(BadSample(survey.name, payload))
                continue
            if layout.kind == "scene-major":
                writer.add_encoded(payload)
            else:
                writer.add(payload)
            key = key_of(survey)
            ranges.setdefault(key, [len(rows), 0])[1] += 1
            rows.append([survey.index, plan.split(survey), survey.sidecar_sha256])
        writer.fh.attrs["farm_ranges"] = json.dumps(ranges, sort_keys=True)
        fh, final = writer.close_for_publish()
        fh.flush()
        if before_publish is not None:
            before_publish(h5_out.tmp_path(final))
        h5_out.publish_all([(fh, final)])
    except BaseException:
        writer.discard()
        raise
    for b in bad:
        logger.error("shard %d: bad sample %s: %s", shard_id, b.name, b.reason)
    return {
        "file": f"{ROWS_DIR}/{path.name}",
        "count": len(rows),
        "ranges": ranges,
        "max_objects": plan.max_objects,
        "size": list(plan.size) if plan.size is not None else None,
        "classes": list(plan.classes),
        "samples": rows,
        "bad": sorted([b.name, b.reason] for b in bad),
    }


def drop_raw_views(dataset_dir: str | Path, indices: Iterable[int]) -> int:
    """Deletes the view files of samples whose rows are published and listed, keeping each ``sample.json``
    (small, and what the sample's completeness and the generation id rest on). Returns the files deleted."""
    removed = 0
    for index in indices:
        folder = sample_dir(dataset_dir, index)
        sidecar = json.loads((folder / "sample.json").read_text())
        for view in sidecar.get("views", []):
            target = folder / view["file"]
            if target.is_file():
                target.unlink()
                removed += 1
    return removed
