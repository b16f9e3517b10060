"""Digests of what consolidation (and preprocessing) write for fixed raw datasets: the "same bytes" check.

`outputs(work_dir)` consolidates a fixed set of raw datasets and returns, per output file, a digest of each HDF5
dataset (dtype, shape and the row bytes) and of each file attribute. The digests of the code as it was before
issue 12 are committed in `tests/data/consolidate_golden.json`; `test_consolidate_golden.py` compares the current
code's digests against them, minus the changes issue 12 makes on purpose. Digests are per dataset rather than per
file because HDF5 file bytes also change when a dataset is added, which is not what the check is about.

The raw inputs: ray-cast fixture datasets (`tests/fixtures_raw.py`, deterministic) and two tiny real renders made
with bpy 5.0.1 and committed under `tests/data/raw/` (so the check never needs Blender):

    render.py -d selfstudy --count 3 -p "rendering.resolution = 16" -p "rendering.render_samples = 2" \
        -p "rendering.render_exr = True"
    render.py -d rooms --count 2 -g gqn_rooms_ring_camera (same settings)

The golden file is the output of the code before issue 12 (commit 394c6c3). When the fixture inputs change,
regenerate it with that code and the current fixtures, never with the current consolidation:

    git archive 394c6c3 | tar -x -C /tmp/old && cp tests/fixtures_raw.py /tmp/old/tests/
    cd /tmp/old && ln -s /work/wt-layouts/.venv .venv && .venv/bin/python -m tests.pipeline.consolidate_golden
    cp /tmp/old/tests/data/consolidate_golden.json /work/wt-layouts/tests/data/
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from pipeline.layouts.consolidate import consolidate
from pipeline.layouts.preprocess import preprocess
from tests.fixtures_raw import make_raw_dataset

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "data" / "consolidate_golden.json"
RAW = REPO / "tests" / "data" / "raw"


def _dataset_digest(ds: h5py.Dataset) -> str:
    h = hashlib.sha256()
    h.update(f"{ds.dtype.str if ds.dtype.kind != 'O' else 'vlen'}{ds.shape}".encode())
    if ds.dtype.kind == "O":  # vlen rows: length-prefixed so that row boundaries count
        for row in ds[()] if ds.shape[0] else []:
            data = np.asarray(row).tobytes()
            h.update(len(data).to_bytes(8, "little") + data)
    else:
        h.update(np.ascontiguousarray(ds[()]).tobytes())
    return h.hexdigest()


def _attr_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return [_attr_value(v) for v in value.tolist()]
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def file_digest(path: Path) -> dict[str, Any]:
    """{"datasets": {name: sha256}, "attrs": {name: value as JSON}} of one HDF5 file."""
    with h5py.File(path, "r") as fh:
        return {
            "datasets": {name: _dataset_digest(fh[name]) for name in sorted(fh)},
            "attrs": {name: _attr_value(fh.attrs[name]) for name in sorted(fh.attrs)},
        }


def _inputs(work: Path) -> list[tuple[Path, bool]]:
    """(dataset folder, preprocess it too) for every raw input, written under `work`."""
    out = [
        (make_raw_dataset(work, "fixture_single", n_samples=14, resolution=(16, 12)), True),
        (make_raw_dataset(work, "fixture_png", n_samples=3, exr=False), False),
        (make_raw_dataset(work, "fixture_ring", n_samples=13, n_views=3, resolution=(12, 12)), False),
    ]
    for name, prep in (("selfstudy", True), ("rooms", False)):
        shutil.copytree(RAW / name, work / name)
        out.append((work / name, prep))
    return out


def outputs(work: Path, prepare: Any = None) -> dict[str, dict[str, Any]]:
    """Consolidates (and for single-view inputs preprocesses to 8 px) every input; digests by "dataset/file".

    Args:
        work: an empty folder to write the datasets into.
        prepare: optional callable(dataset_dir) run on each raw dataset before consolidation.
    """
    digests = {}
    for dataset_dir, prep in _inputs(work):
        if prepare is not None:
            prepare(dataset_dir)
        consolidate(dataset_dir, jobs=1)
        if prep:
            preprocess(dataset_dir, res=8, jobs=1)
        for path in sorted(dataset_dir.glob("*.h5")):
            digests[f"{dataset_dir.name}/{path.name}"] = file_digest(path)
    return digests


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        digests = outputs(Path(tmp))
    GOLDEN.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    print(f"wrote {len(digests)} file digests to {GOLDEN}", file=sys.stderr)


if __name__ == "__main__":
    main()
