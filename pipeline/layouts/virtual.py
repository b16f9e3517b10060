"""The split files of a farm-rendered dataset as HDF5 virtual datasets over its shard rows (no pixel copied).

Every dataset of ``scenes_{split}.h5`` (scene-major) or ``imgs_XX.h5`` (sample-major) is an h5py virtual
dataset whose rows are, shard after shard in shard order, that key's contiguous range of each shard's
``rows/shard-XXXXX.h5`` (:mod:`pipeline.layouts.farm_rows`); the sources are named relative to the dataset folder,
so the folder moves as a whole. Because shards are consecutive index ranges and each shard groups its rows by key
in index order, the virtual files hold the rows in the order, with the names, dtypes, shapes and attributes of a
single-process consolidation of the same samples (tests/pipeline/test_farm_vds.py compares every array).

The per-object datasets of buckets are (rows, M, ...) with M the most objects of any sample; a shard with fewer
maps into the first columns and the rest reads the fill value consolidation pads with (class_index -1, else 0).

Files are published atomically and ``consolidation.json`` last, with the generation id consolidation would give
the same samples (:func:`pipeline.layouts.consolidate.generation_digest`), so readers' generation checks hold.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from h5py import h5d, h5p, h5s

from core.layout import LayoutError, read_layout
from core.samples import SPLIT_OF_BUCKET, SPLIT_RULE
from pipeline.formats import hdf5 as h5_out
from pipeline.layouts.consolidate import BadSample, bucket_file, generation_digest, scene_file, write_reports
from pipeline.layouts.farm_rows import key_order
from pipeline.quality.raw_samples import OBJECT_FIELDS

logger = logging.getLogger(__name__)

#: Bucket datasets with a per-object axis (axis 1, padded to the dataset's most objects).
OBJECT_DATASETS = ("instance_id", "class_index", *OBJECT_FIELDS)
#: Attributes of a shard file that are not the split files'.
_SHARD_ATTRS = ("farm_shard", "farm_ranges")


def _fill(name: str) -> Any:
    return -1 if name == "class_index" else None


def _check_shards(rows: Sequence[dict[str, Any]]) -> None:
    """All shards must agree on what consolidation takes from the whole dataset (classes, image size)."""
    first = rows[0]
    for info in rows[1:]:
        for key in ("classes", "size"):
            if info[key] != first[key]:
                raise ValueError(f"{info['file']} has {key} {info[key]}, {first['file']} has {first[key]}: the shards "
                                 "were rendered differently; re-render the dataset into a new folder")


def _virtual_dataset(fh: h5py.File, name: str, tid: Any, dtype: np.dtype, tail: tuple[int, ...],
                     parts: list[tuple[str, int, int, int, tuple[int, ...]]]) -> None:
    """Creates the virtual dataset `name` of shape (rows, *tail) from `parts` (source file, its rows, first row,
    rows, its tail), one after the other.

    Through HDF5's own calls: h5py's VirtualLayout deep-copies its source for every slice taken, which made
    this ~10x slower (measured: ~4 ms a shard for the dozen datasets of a bucket file)."""
    total = sum(count for _, _, _, count, _ in parts)
    dcpl = h5p.create(h5p.DATASET_CREATE)
    fill = _fill(name)
    if fill is not None:
        dcpl.set_fill_value(np.array(fill, dtype=dtype))
    space = h5s.create_simple((total, *tail))
    at = 0
    for filename, rows, start, count, src_tail in parts:
        target = space.copy()  # the mapping keeps its own copy of each selection
        target.select_hyperslab((at, *([0] * len(tail))), (count, *src_tail))
        source = h5s.create_simple((rows, *src_tail))
        source.select_hyperslab((start, *([0] * len(src_tail))), (count, *src_tail))
        dcpl.set_virtual(target, filename.encode(), name.encode(), source)
        at += count
    h5d.create(fh.id, name.encode(), tid, space, dcpl=dcpl)


def _virtual_file(dataset_dir: Path, final: Path, key: str, rows: Sequence[dict[str, Any]],
                  template: h5py.File, attrs: dict[str, Any]) -> tuple[h5py.File, Path, int]:
    """Writes one split file's temporary file; returns (file, final path, rows)."""
    parts = [(info, *info["ranges"][key]) for info in rows if info["ranges"].get(key, [0, 0])[1] > 0]
    total = sum(count for _, _, count in parts)
    most = max(info["max_objects"] for info in rows)
    fh = h5_out.create_h5(final)
    try:
        for name, value in attrs.items():
            fh.attrs[name] = value
        for name in sorted(template):
            ds = template[name]
            tail = tuple(ds.shape[1:])
            padded = name in OBJECT_DATASETS and fh.attrs.get("layout") == "sample-major"
            if padded:
                tail = (most, *tail[1:])
            if total == 0:  # no row of this split yet: an empty real dataset, as consolidation writes
                fh.create_dataset(name, shape=(0, *tail), dtype=ds.dtype, maxshape=(None, *tail),
                                  chunks=(1, *(max(1, t) for t in tail)), track_times=False,
                                  fillvalue=_fill(name))
                continue
            sources = [(info["file"], info["count"], start, count,
                        (info["max_objects"], *tail[1:]) if padded else tail) for info, start, count in parts]
            _virtual_dataset(fh, name, ds.id.get_type(), ds.dtype, tail, sources)
    except BaseException:
        h5_out.discard(fh, final)
        raise
    return fh, final, total


def publish_virtual(dataset_dir: str | Path, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Writes the split files of `dataset_dir` as virtual datasets over the shard rows `rows` and the reports.

    Args:
        dataset_dir: ``DATA_DIR/NAME``, holding ``dataset.json`` and ``rows/``.
        rows: the ``rows`` records of the manifest's lines (:func:`pipeline.layouts.farm_rows.write_shard_rows`),
            in shard order; only these shards are used, whatever else ``rows/`` holds.

    Returns:
        split file name -> rows.

    Raises:
        LayoutError: dataset.json declares no layout.
        ValueError: no shard rows, or shards that disagree on classes or image size.
    """
    dataset_dir = Path(dataset_dir)
    if not rows:
        raise ValueError(f"{dataset_dir}: the manifest lists no shard with rows; render with rows on "
                         "(distributed_render.py without --no_rows), or consolidate with preprocess_data.py -f")
    layout = read_layout(dataset_dir)
    if layout is None:
        raise LayoutError(f"{dataset_dir / 'dataset.json'} declares no layout; the farm writes rows only for "
                          "declared layouts: consolidate with preprocess_data.py -f")
    _check_shards(rows)
    scene_major = layout.kind == "scene-major"
    template_path = dataset_dir / rows[0]["file"]
    out, totals = [], {}
    with h5py.File(template_path, "r") as template:
        common = {k: v for k, v in template.attrs.items() if k not in _SHARD_ATTRS}
        samples = [tuple(s) for info in rows for s in info["samples"]]
        generation = generation_digest(layout, samples)
        try:
            for key in key_order(layout.kind):
                attrs = {**common, "generation": generation}
                if scene_major:
                    attrs["split"] = key
                    final = scene_file(dataset_dir, key)
                else:
                    attrs["bucket"] = int(key)
                    if layout.split == SPLIT_RULE:
                        attrs["split"] = SPLIT_OF_BUCKET[int(key)]
                    final = bucket_file(dataset_dir, int(key))
                fh, final, total = _virtual_file(dataset_dir, final, key, rows, template, attrs)
                out.append((fh, final))
                totals[final.name] = total
            h5_out.publish_all(out)
        except BaseException:
            for fh, final in out:
                h5_out.discard(fh, final)
            raise
    bad = sorted((BadSample(name, reason) for info in rows for name, reason in info["bad"]), key=lambda b: b.name)
    write_reports(dataset_dir, layout, True, generation, totals, bad, {int(i): split for i, split, _ in samples},
                  extra={"virtual": True, "shards": len(rows)})
    logger.info("%s: virtual split files over %d shards (%d rows)", dataset_dir.name, len(rows), sum(totals.values()))
    return totals


def manifest_rows(manifest_lines: Sequence[Any]) -> list[dict[str, Any]]:
    """The rows records of manifest entries (objects with `.shard` and `.rows`), in shard order, those with rows."""
    return [entry.rows for entry in sorted(manifest_lines, key=lambda e: e.shard) if entry.rows]
