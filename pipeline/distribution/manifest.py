"""`DATA_DIR/NAME/manifest.jsonl`: one JSON line per finished shard of a distributed render.

Only the driver writes it (a single writer), and only after it has seen every sample of the shard
complete on disk. Each line is appended with one `write` on an `O_APPEND` descriptor and fsynced, so a
killed driver leaves at most a torn last line without a newline; `load` ignores it and `repair` cuts it
off. The format is documented in docs/formats.md §1.
"""

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from core import publish

logger = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.jsonl"


class ManifestError(ValueError):
    """The manifest is corrupt or does not fit the current run; the message says which line and what to do."""


@dataclass(frozen=True)
class ManifestEntry:
    """One finished shard.

    Attributes:
        shard: shard id in the plan (see pipeline.distribution.shards.plan_shards).
        samples: its sample indices, ascending.
        seed: the dataset seed (`dataset.seed`); sample i's own seed derives from (seed, i).
        config_hash: sha256 of the gin config that made the samples (as in dataset.json).
        blender_version: Blender that rendered the shard's last attempt.
        threads: Cycles threads of that worker.
        attempts: how many attempts the shard took in the run that finished it (1 = no retry).
        node: Ray node id of the worker that finished it ("local" without Ray).
        seconds: wall time of the finishing attempt.
        rows: the shard's published HDF5 rows (`file`, `count`, `ranges`, ...: pipeline.layouts.farm_rows); None
            for a shard rendered without rows (the key is then left out of the line).
    """

    shard: int
    samples: list[int]
    seed: int
    config_hash: str
    blender_version: str
    threads: int
    attempts: int = 1
    node: str = "local"
    seconds: float = 0.0
    rows: dict | None = None
    extra: dict = field(default_factory=dict)

    def to_line(self) -> str:
        """The JSON line (with its newline) for this entry; keys sorted so equal entries give equal bytes."""
        record = asdict(self)
        extra = record.pop("extra")
        record["seconds"] = round(record["seconds"], 3)
        if record["rows"] is None:  # lines of shards without rows keep the bytes they always had
            del record["rows"]
        return json.dumps({**extra, **record}, sort_keys=True) + "\n"

    @classmethod
    def from_record(cls, record: dict) -> "ManifestEntry":
        """Parses one decoded line; unknown keys are kept in `extra`.

        Raises:
            KeyError, TypeError, ValueError: a required key is missing or has the wrong type.
        """
        known = {"shard", "samples", "seed", "config_hash", "blender_version", "threads", "attempts", "node", "seconds",
                 "rows"}
        rows = record.get("rows")
        if rows is not None and not (isinstance(rows, dict) and isinstance(rows.get("file"), str)
                                     and isinstance(rows.get("count"), int)):
            raise ValueError(f"rows must be an object with file and count, got {rows!r}")
        samples = [int(i) for i in record["samples"]]
        return cls(
            shard=int(record["shard"]),
            samples=samples,
            seed=int(record["seed"]),
            config_hash=str(record["config_hash"]),
            blender_version=str(record["blender_version"]),
            threads=int(record["threads"]),
            attempts=int(record.get("attempts", 1)),
            node=str(record.get("node", "local")),
            seconds=float(record.get("seconds", 0.0)),
            rows=rows,
            extra={k: v for k, v in record.items() if k not in known},
        )


def manifest_path(dataset_dir: Path) -> Path:
    """Where the manifest of `dataset_dir` lives."""
    return Path(dataset_dir) / MANIFEST_NAME


def load(path: Path) -> list[ManifestEntry]:
    """Entries of the manifest at `path` in file order ([] if it does not exist); a torn last line is ignored.

    Raises:
        ManifestError: a complete line is not a valid entry, or a shard is listed twice.
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    torn = lines.pop()  # b"" when the file ends with a newline, else a line the writer never finished
    if torn:
        logger.warning("%s: ignoring a torn last line (%d bytes) left by an interrupted run", path, len(torn))
    entries: list[ManifestEntry] = []
    seen: dict[int, int] = {}
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            entry = ManifestEntry.from_record(json.loads(raw))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as err:
            raise ManifestError(
                f"{path} line {number} is not a valid shard entry ({type(err).__name__}: {err}); "
                "fix or delete that line and re-run with -c (its shard will be checked and re-done)"
            ) from err
        if entry.shard in seen:
            raise ManifestError(f"{path} lists shard {entry.shard} twice (lines {seen[entry.shard]} and {number}); "
                                "delete one of them and re-run with -c")
        seen[entry.shard] = number
        entries.append(entry)
    return entries


def rewrite(path: Path, entries: Iterable[ManifestEntry]) -> None:
    """Atomically replaces the manifest with `entries` (used to drop a torn line or broken shards)."""
    publish.write_text(path, "".join(entry.to_line() for entry in entries), durable=True)


def append(path: Path, entry: ManifestEntry) -> None:
    """Appends one entry with a single write and fsyncs it; the caller must be the only writer."""
    line = entry.to_line().encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, line)
        if written != len(line):  # a regular file takes the whole line or the disk is full
            raise OSError(f"short write to {path}: {written} of {len(line)} bytes")
        os.fsync(fd)
    finally:
        os.close(fd)
