"""Decode GIMP pattern files (`.pat`) into numpy images.

Blender cannot read `.pat`, so `pipeline.assets` decodes them and writes PNGs. The layout, checked against
the 168 patterns Debian's `gimp-data` and `gimp-data-extras` ship (all version 1):

| offset | type | field |
| --- | --- | --- |
| 0 | uint32 BE | header_size: bytes before the pixels (24 + name length, NUL included) |
| 4 | uint32 BE | version (1) |
| 8 | uint32 BE | width |
| 12 | uint32 BE | height |
| 16 | uint32 BE | bytes_per_pixel: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA |
| 20 | 4 bytes | magic `GPAT` |
| 24 | bytes | name, UTF-8, NUL-terminated, up to header_size |
| header_size | uint8 | height x width x bytes_per_pixel pixels, rows top to bottom |
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

MAGIC = b"GPAT"
_FIXED = struct.Struct(">5I4s")  # header_size, version, width, height, bytes_per_pixel, magic
SUPPORTED_VERSIONS = (1,)
#: Largest side we accept; real patterns are at most a few hundred pixels.
MAX_SIDE = 16384


class GimpPatternError(ValueError):
    """A `.pat` file is truncated, has a bad magic or an unsupported layout."""


@dataclass(frozen=True)
class GimpPattern:
    """One decoded pattern.

    Attributes:
        name: the pattern's display name stored in the file.
        pixels: uint8 array (height, width, channels), channels = bytes_per_pixel (1 grey, 2 grey + alpha,
            3 RGB, 4 RGBA).
    """

    name: str
    pixels: np.ndarray

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def decode_pattern(data: bytes, source: str = "<bytes>") -> GimpPattern:
    """Decode the bytes of a GIMP `.pat` file.

    Args:
        data: the whole file.
        source: what to name in error messages (usually the file path).

    Returns:
        The pattern, pixels as uint8 (height, width, channels).

    Raises:
        GimpPatternError: truncated data, wrong magic, unsupported version or bytes per pixel.
    """
    if len(data) < _FIXED.size:
        raise GimpPatternError(f"{source}: {len(data)} bytes is shorter than the {_FIXED.size}-byte GIMP pattern header")
    header_size, version, width, height, bpp, magic = _FIXED.unpack_from(data)
    if magic != MAGIC:
        raise GimpPatternError(f"{source}: magic is {magic!r}, expected {MAGIC!r}; this is not a GIMP pattern (.pat) file")
    if version not in SUPPORTED_VERSIONS:
        raise GimpPatternError(f"{source}: pattern version {version} is not supported (only {SUPPORTED_VERSIONS})")
    if bpp not in (1, 2, 3, 4):
        raise GimpPatternError(f"{source}: bytes_per_pixel={bpp}, expected 1, 2, 3 or 4")
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise GimpPatternError(f"{source}: size {width}x{height} is out of range 1..{MAX_SIDE}")
    if header_size < _FIXED.size:
        raise GimpPatternError(f"{source}: header_size={header_size} is smaller than the fixed header ({_FIXED.size})")
    expected = header_size + width * height * bpp
    if len(data) < expected:
        raise GimpPatternError(
            f"{source}: truncated: {len(data)} bytes, header says {expected} ({width}x{height}x{bpp} + {header_size})"
        )
    if len(data) > expected:
        logger.debug("%s: %d trailing bytes ignored", source, len(data) - expected)
    name = data[_FIXED.size : header_size].split(b"\0", 1)[0].decode("utf-8", errors="replace")
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * bpp, offset=header_size)
    return GimpPattern(name=name, pixels=pixels.reshape(height, width, bpp).copy())


def read_pattern(path: str | Path) -> GimpPattern:
    """Read and decode one `.pat` file (see `decode_pattern`)."""
    path = Path(path)
    return decode_pattern(path.read_bytes(), source=str(path))


def encode_pattern(pixels: np.ndarray, name: str) -> bytes:
    """Encode uint8 pixels (height, width[, channels]) as a version-1 GIMP pattern.

    The inverse of `decode_pattern`; used by tests and to hand patterns back to GIMP.
    """
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"pattern pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        pixels = pixels[:, :, None]
    if pixels.ndim != 3 or pixels.shape[2] not in (1, 2, 3, 4):
        raise ValueError(f"pattern pixels must be (H, W) or (H, W, 1..4), got shape {pixels.shape}")
    name_bytes = name.encode("utf-8") + b"\0"
    height, width, bpp = pixels.shape
    header = _FIXED.pack(_FIXED.size + len(name_bytes), 1, width, height, bpp, MAGIC)
    return header + name_bytes + np.ascontiguousarray(pixels).tobytes()
