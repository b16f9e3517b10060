"""What a raw sample is on disk (docs/formats.md §1): its folder name, the rule that makes it complete, and
the split it belongs to.

A sample folder `samples/NNNNNN/` is published atomically (`core.publish.Staged`) with `sample.json` written
last inside it, so a folder with that name holding a sidecar is complete; anything else is work in progress
or debris.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

SAMPLES = "samples"
SIDECAR = "sample.json"
SAMPLE_DIR_RE = re.compile(r"^\d{6}$")
DATASET_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

#: Default split rule: bucket = index % 12; buckets 0-9 train, 10 val, 11 test (docs/formats.md §2).
N_BUCKETS = 12
SPLITS = ("train", "val", "test")
SPLIT_OF_BUCKET = {b: ("train" if b < 10 else "val" if b == 10 else "test") for b in range(N_BUCKETS)}
SPLIT_RULE = "index % 12"


def dataset_dir(data_dir: str | os.PathLike, name: str) -> Path:
    """`DATA_DIR/NAME` for a dataset name, which must be a plain name inside DATA_DIR.

    Raises:
        ValueError: a name with a path separator, `..`, or another character than letters, digits, `._-`
            (a dataset elsewhere is reached by pointing `--data_dir` or DATA_DIR there).
    """
    if not DATASET_NAME_RE.match(name) or ".." in name:
        raise ValueError(f"dataset name {name!r} must be a plain name inside DATA_DIR (letters, digits, '.', '_', "
                         "'-'; no '/' or '..'); to write elsewhere, point --data_dir (or DATA_DIR) at that folder")
    return Path(data_dir) / name


def sample_dir_name(index: int) -> str:
    """Folder name of sample `index`: six digits."""
    if index < 0:
        raise ValueError(f"sample index must be >= 0, got {index}")
    return f"{index:06d}"


def samples_dir(dataset_dir: str | os.PathLike) -> Path:
    """`DATA_DIR/NAME/samples`."""
    return Path(dataset_dir) / SAMPLES


def sample_dir(dataset_dir: str | os.PathLike, index: int) -> Path:
    """`DATA_DIR/NAME/samples/NNNNNN`."""
    return samples_dir(dataset_dir) / sample_dir_name(index)


def is_complete(dataset_dir: str | os.PathLike, index: int) -> bool:
    """Whether sample `index` is published: its folder exists and holds its sidecar."""
    return (sample_dir(dataset_dir, index) / SIDECAR).is_file()


def bucket_of(index: int) -> int:
    """Bucket of a sample index under the default split rule."""
    return index % N_BUCKETS


def split_of(index: int, declared: str | None = None) -> str:
    """Split of a sample: the one its generator declared, else the default rule's.

    Raises:
        ValueError: a declared split that is not one of SPLITS.
    """
    if declared is not None:
        if declared not in SPLITS:
            raise ValueError(f"declared split {declared!r} is not one of {SPLITS}")
        return declared
    return SPLIT_OF_BUCKET[bucket_of(index)]
