"""Reads (and, for tests and benchmarks, writes) the canonical view EXR of docs/formats.md §1.

Channels: ``R, G, B, A`` (FLOAT, linear colour), ``depth`` (FLOAT, planar metres, ``inf`` = nothing hit),
``instance`` and ``semantic`` (UINT, 0 = nothing hit), ``normal.X/Y/Z`` (FLOAT, world-space unit normal) and
optionally ``albedo.R/G/B`` (FLOAT, linear base colour).
The reader walks every part of the file, so a multi-part file with the same channel names reads the same.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import OpenEXR

from core.publish import Staged

logger = logging.getLogger(__name__)

#: Channel name -> numpy dtype of the canonical view EXR.
CANONICAL_CHANNELS: dict[str, type] = {
    "R": np.float32,
    "G": np.float32,
    "B": np.float32,
    "A": np.float32,
    "depth": np.float32,
    "instance": np.uint32,
    "semantic": np.uint32,
    "normal.X": np.float32,
    "normal.Y": np.float32,
    "normal.Z": np.float32,
    "albedo.R": np.float32,
    "albedo.G": np.float32,
    "albedo.B": np.float32,
}
#: Channels consolidation needs; the normals are optional for it.
REQUIRED_CHANNELS = ("R", "G", "B", "depth", "instance", "semantic")


class ExrReadError(ValueError):
    """A view EXR that cannot be read or lacks a canonical channel; the message names the file."""


@dataclass(frozen=True)
class ViewExr:
    """One decoded view.

    Attributes:
        rgb: float32 (H, W, 3), linear colour.
        alpha: float32 (H, W) or None when the file has no ``A``.
        depth: float32 (H, W), planar depth in metres, ``inf`` where nothing was hit.
        instance: uint32 (H, W), 0 = nothing hit.
        semantic: uint32 (H, W), 0 = nothing hit.
        normal: float32 (H, W, 3) or None when the file has no normals.
        albedo: float32 (H, W, 3), linear, or None when the file has no albedo.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None
    depth: np.ndarray
    instance: np.ndarray
    semantic: np.ndarray
    normal: np.ndarray | None
    albedo: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.depth.shape


def read_view_exr(path: str | os.PathLike) -> ViewExr:
    """Reads a canonical view EXR.

    Args:
        path: the ``view_XX.exr`` file.

    Returns:
        The decoded view.

    Raises:
        ExrReadError: the file is missing, corrupt, or lacks one of :data:`REQUIRED_CHANNELS`.
    """
    path = Path(path)
    if not path.is_file():
        raise ExrReadError(f"{path}: missing view file")
    channels: dict[str, np.ndarray] = {}
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            for part in exr.parts:
                for name, channel in part.channels.items():
                    if channel.pixels is not None:
                        channels.setdefault(name, np.asarray(channel.pixels))
    except (RuntimeError, OSError, ValueError, TypeError) as exc:  # OpenEXR reports corrupt files as RuntimeError
        raise ExrReadError(f"{path}: corrupt or unreadable EXR ({exc})") from exc
    if not channels:
        raise ExrReadError(f"{path}: corrupt or truncated EXR (no pixel data could be read)")
    missing = [c for c in REQUIRED_CHANNELS if c not in channels]
    if missing:
        raise ExrReadError(
            f"{path}: missing channel(s) {missing}; found {sorted(channels)}. "
            "Render with rendering.render_exr = True (docs/formats.md §1)."
        )
    shape = channels["depth"].shape
    for name, arr in channels.items():
        if arr.shape != shape:
            raise ExrReadError(f"{path}: channel {name} has shape {arr.shape}, depth has {shape}")
    for name in ("instance", "semantic"):
        if channels[name].dtype != np.uint32:
            raise ExrReadError(f"{path}: channel {name} is {channels[name].dtype}, expected UINT")

    def f32(name: str) -> np.ndarray:
        return channels[name].astype(np.float32, copy=False)

    rgb = np.stack([f32("R"), f32("G"), f32("B")], axis=-1)
    normal = None
    if all(f"normal.{a}" in channels for a in "XYZ"):
        normal = np.stack([f32(f"normal.{a}") for a in "XYZ"], axis=-1)
    albedo = None
    if all(f"albedo.{c}" in channels for c in "RGB"):
        albedo = np.stack([f32(f"albedo.{c}") for c in "RGB"], axis=-1)
    return ViewExr(
        rgb=rgb,
        alpha=f32("A") if "A" in channels else None,
        depth=f32("depth"),
        instance=channels["instance"],
        semantic=channels["semantic"],
        normal=normal,
        albedo=albedo,
    )


def write_view_exr(
    path: str | os.PathLike,
    rgb: np.ndarray,
    depth: np.ndarray,
    instance: np.ndarray,
    semantic: np.ndarray,
    normal: np.ndarray | None = None,
    alpha: np.ndarray | None = None,
    albedo: np.ndarray | None = None,
) -> None:
    """Writes a canonical view EXR (one part, ZIP, the channels of §1); used by tests and benchmarks.

    The file is written to a temporary name in the same folder and renamed, so a crash leaves no partial file.

    Args:
        path: destination ``view_XX.exr``.
        rgb: float (H, W, 3), linear colour.
        depth: float (H, W), metres, ``inf`` where nothing was hit.
        instance: integer (H, W), 0 = nothing hit.
        semantic: integer (H, W), 0 = nothing hit.
        normal: float (H, W, 3); zeros when None.
        alpha: float (H, W); 1 where something was hit when None.
        albedo: float (H, W, 3), linear; no albedo channels when None.
    """
    path = Path(path)
    h, w = depth.shape
    if normal is None:
        normal = np.zeros((h, w, 3), np.float32)
    if alpha is None:
        alpha = (np.asarray(instance) > 0).astype(np.float32)
    channels = {
        "R": rgb[..., 0],
        "G": rgb[..., 1],
        "B": rgb[..., 2],
        "A": alpha,
        "depth": depth,
        "instance": instance,
        "semantic": semantic,
        "normal.X": normal[..., 0],
        "normal.Y": normal[..., 1],
        "normal.Z": normal[..., 2],
    }
    if albedo is not None:
        channels.update({f"albedo.{c}": albedo[..., i] for i, c in enumerate("RGB")})
    channels = {k: np.ascontiguousarray(v, dtype=CANONICAL_CHANNELS[k]) for k, v in channels.items()}
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with Staged(path) as staged, OpenEXR.File(header, channels) as exr:
        exr.write(str(staged.path))
