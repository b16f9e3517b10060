"""Atomic publishing: a file or folder is written under a temporary name beside its final path and renamed
into place only when complete, so readers see the whole thing or nothing, whatever kills the writer.

One temporary-name scheme for the whole project: `.tmp-<pid>-<host>~<name>`, beside the final `<name>`. It
keeps the final suffix (Pillow and numpy pick formats by it), starts with a dot (listings of published
items skip it), and names its owner, so `remove_dead_debris` can tell a killed writer's leftovers on this
machine from a live writer's work (or another node's on a shared file system).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any

from core.process import hostname, pid_alive

logger = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
_TMP_RE = re.compile(r"^\.tmp-(\d+)-([^~]*)~(.+)$")


def temp_path(final: str | os.PathLike) -> Path:
    """The temporary path `final` is written under before it is published (same folder, same suffix)."""
    final = Path(final)
    return final.with_name(f"{TMP_PREFIX}{os.getpid()}-{hostname()}~{final.name}")


def temp_owner(path: str | os.PathLike) -> tuple[int, str, str] | None:
    """(pid, host, final name) of a temporary path of this scheme, or None for any other name."""
    m = _TMP_RE.match(Path(path).name)
    return (int(m.group(1)), m.group(2), m.group(3)) if m else None


def is_dead_debris(path: str | os.PathLike) -> bool:
    """Whether `path` is a temporary item of a writer on this machine that no longer runs."""
    owner = temp_owner(path)
    return owner is not None and owner[1] == hostname() and not pid_alive(owner[0])


def remove_dead_debris(folder: str | os.PathLike) -> list[Path]:
    """Removes the temporary files and folders of dead writers on this machine from `folder` (sorted)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for entry in sorted(folder.iterdir()):
        if is_dead_debris(entry):
            logger.warning("removing %s left by an interrupted run", entry)
            remove_path(entry)
            removed.append(entry)
    return removed


def remove_path(path: Path) -> None:
    """Deletes a file or a folder tree; nothing when it is absent."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def fsync(path: Path) -> None:
    """Flushes a file's data to disk (before a rename makes it visible)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Staged:
    """A file or folder written under its temporary name and published on a clean exit of the `with` block.

    A file replaces whatever `final` held. A folder is renamed into place only if `final` does not exist yet:
    when another writer published it first, ours is dropped and `published` stays False (same inputs give the
    same bytes, so keeping either is correct). On an exception the temporary item is removed.

    Args:
        final: the path readers will see.
        folder: stage a folder (created empty) instead of a file.
        durable: fsync a staged file before the rename (for files a crash must never leave empty).

    Attributes:
        path: the temporary path to write.
        published: whether the item is now at `final`.
    """

    def __init__(self, final: str | os.PathLike, folder: bool = False, durable: bool = False) -> None:
        self.final = Path(final)
        self.folder = folder
        self.durable = durable
        self.path = temp_path(self.final)
        self.published = False

    def __enter__(self) -> Staged:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        remove_path(self.path)
        if self.folder:
            self.path.mkdir()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            remove_path(self.path)
            return
        try:
            if self.folder:
                try:
                    os.rename(self.path, self.final)
                except OSError:  # published meanwhile by another writer: keep theirs
                    remove_path(self.path)
                    return
            else:
                if self.durable:
                    fsync(self.path)
                os.replace(self.path, self.final)
        except BaseException:
            remove_path(self.path)
            raise
        self.published = True


def write_bytes(final: str | os.PathLike, data: bytes, durable: bool = False) -> None:
    """Writes `data` to `final` atomically."""
    with Staged(final, durable=durable) as staged:
        staged.path.write_bytes(data)


def write_text(final: str | os.PathLike, text: str, durable: bool = False) -> None:
    """Writes UTF-8 `text` to `final` atomically."""
    write_bytes(final, text.encode("utf-8"), durable=durable)


def write_json(final: str | os.PathLike, obj: Any, indent: int | None = 1, sort_keys: bool = True,
               durable: bool = False) -> None:
    """Writes `obj` as JSON (UTF-8, newline at the end) to `final` atomically."""
    write_text(final, json.dumps(obj, indent=indent, sort_keys=sort_keys, ensure_ascii=False) + "\n",
               durable=durable)


def copy_file(src: str | os.PathLike, final: str | os.PathLike) -> None:
    """Copies `src` to `final` atomically."""
    with Staged(final) as staged:
        shutil.copyfile(src, staged.path)
