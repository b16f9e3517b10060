"""`preprocess_data.py --compact`: the farm's virtual split files rewritten as classic single files.

For users who move a dataset elsewhere without its ``rows/`` folder. Each virtual file is read row block by row
block and written with the writer consolidation uses for that layout (scene files: deflated one scene per chunk
as consolidation does, so the bytes of every chunk are consolidation's; buckets: the §2 bucket writer), under
temporary names, published together, then ``consolidation.json`` with the same generation id. Afterwards the
split files no longer depend on ``rows/``; the shard files stay (a later ``distributed_render.py -c`` lists
them again), deleting them is the user's choice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from core.layout import LayoutError, read_layout
from pipeline.formats import hdf5 as h5_out
from pipeline.layouts.consolidate import BadSample, _BucketWriter, _Plan, _scene_spec, write_reports
from pipeline.layouts.generations import REPORT, check_generation, split_files
from pipeline.layouts.scene_file import EncodedScene, SceneFileWriter, deflate_chunk

logger = logging.getLogger(__name__)

#: Rows read from a virtual file at once.
BLOCK_ROWS = 256
#: Attributes each writer sets itself.
_WRITER_ATTRS = {"scene-major": ("layout", "views", "viewpoint_order", "fields"),
                 "sample-major": ("layout", "bucket", "split", "fields")}


def _writer(path: Path, src: h5py.File, layout: Any) -> Any:
    own = _WRITER_ATTRS[layout.kind]
    attrs = {k: v for k, v in src.attrs.items() if k not in own}
    if layout.kind == "scene-major":
        attrs["split"] = src.attrs["split"]
        height, width = src["images"].shape[2:4]
        return SceneFileWriter(path, _scene_spec(layout, (int(height), int(width))), attrs)
    most = int(src["class_index"].shape[1])
    plan = _Plan(layout, True, [], [], None, [str(c) for c in src.attrs["classes"]], most)
    return _BucketWriter(path, int(src.attrs["bucket"]), plan, attrs)


def _copy_rows(src: h5py.File, writer: Any, scene_major: bool) -> None:
    total = src["images" if scene_major else "index"].shape[0]
    chunked = set(writer.spec.chunked()) if scene_major else set()
    for start in range(0, total, BLOCK_ROWS):
        block = {name: src[name][start:start + BLOCK_ROWS] for name in src}
        for r in range(len(next(iter(block.values())))):
            if scene_major:
                writer.add_encoded(EncodedScene(
                    chunks={name: deflate_chunk(block[name][r]) for name in chunked},
                    rows={name: np.asarray(block[name][r]) for name in block if name not in chunked}))
            else:
                writer.add({name: block[name][r] for name in block})


def compact(dataset_dir: str | Path) -> dict[str, int]:
    """Rewrites the virtual split files of `dataset_dir` as single files; returns file name -> rows.

    Raises:
        ValueError: there are no virtual split files (nothing to compact), naming the fix.
        GenerationMixError: the split files and consolidation.json do not belong together.
        DatasetLockedError: another writer holds the dataset folder.
    """
    dataset_dir = Path(dataset_dir)
    with h5_out.dataset_lock(dataset_dir, "preprocess_data.py --compact"):
        layout = read_layout(dataset_dir)
        if layout is None:
            raise LayoutError(f"{dataset_dir / 'dataset.json'} declares no layout; nothing the farm wrote is here")
        files = split_files(dataset_dir)
        report = json.loads((dataset_dir / REPORT).read_text()) if (dataset_dir / REPORT).exists() else {}
        if not files or not report.get("virtual"):
            raise ValueError(f"{dataset_dir}: no virtual split files to compact (consolidation.json says "
                             f"virtual={report.get('virtual', False)}); they are already single files, or render "
                             "with distributed_render.py (rows on) first")
        generation = check_generation(dataset_dir, files)
        writers, rows = [], {}
        try:
            for path in files:
                with h5py.File(path, "r") as src:
                    writer = _writer(path, src, layout)
                    writers.append(writer)
                    _copy_rows(src, writer, layout.kind == "scene-major")
                    rows[path.name] = writer.rows
            h5_out.publish_all([w.close_for_publish() for w in writers])
        except BaseException:
            for w in writers:
                w.discard()
            raise
        splits = json.loads((dataset_dir / "splits.json").read_text())["samples"]
        split_of_sample = {int(i): split for split, indices in splits.items() for i in indices}
        bad = [BadSample(b["sample"], b["reason"]) for b in report.get("bad_samples", [])]
        write_reports(dataset_dir, layout, True, str(generation), rows, bad, split_of_sample,
                      extra={"virtual": False, "compacted_from_shards": report.get("shards")})
    logger.info("%s: compacted %d virtual split files into single files", dataset_dir.name, len(rows))
    return rows
