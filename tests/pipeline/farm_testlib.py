"""Helpers shared by the render-farm tests (tests/pipeline/test_farm*.py): comparing split files array by array."""

import shutil
from pathlib import Path

import h5py
import numpy as np

from pipeline.layouts.consolidate import consolidate


def classic_copy(dataset_dir: Path, root: Path) -> Path:
    """`dataset.json` and `samples/` of `dataset_dir` copied to `root/<same name>` and consolidated there by the
    one-machine way (one process); the same folder name, so the `dataset` attribute matches too."""
    ref = root / dataset_dir.name
    ref.mkdir(parents=True)
    shutil.copy(dataset_dir / "dataset.json", ref / "dataset.json")
    shutil.copytree(dataset_dir / "samples", ref / "samples")
    consolidate(ref, jobs=1)
    return ref


def assert_same_split_files(farm: Path, classic: Path) -> int:
    """Every split file of `classic` exists in `farm` with the same datasets (every array, dtype and shape equal)
    and the same file attributes; returns the rows compared."""
    files = sorted(p.name for p in classic.glob("*.h5"))
    assert files and files == sorted(p.name for p in farm.glob("*.h5"))
    rows = 0
    for name in files:
        with h5py.File(classic / name, "r") as a, h5py.File(farm / name, "r") as b:
            assert sorted(a) == sorted(b), name
            for key in a:
                x, y = a[key][()], b[key][()]
                assert (x.dtype, x.shape) == (y.dtype, y.shape), (name, key)
                if x.dtype == object:  # variable-length PNG bytes
                    assert all(np.array_equal(p, q) for p, q in zip(x, y, strict=True)), (name, key)
                else:
                    assert np.array_equal(x, y), (name, key)
            assert sorted(a.attrs) == sorted(b.attrs), name
            for key in a.attrs:
                assert np.array_equal(np.asarray(a.attrs[key]), np.asarray(b.attrs[key])), (name, key)
            rows += len(a["images" if "images" in a else "index"])
    return rows


def is_virtual(path: Path) -> bool:
    with h5py.File(path, "r") as fh:
        return all(fh[key].is_virtual for key in fh if fh[key].shape[0])
