"""PNG encoding for consolidation: 8-bit sRGB colour and targets, 16-bit depth (docs/formats.md §2).

Pillow (installed with scikit-image) encodes and decodes 8-bit PNGs and 16-bit greyscale ones, but it cannot
write a 16-bit RGB PNG and silently reduces one to 8 bits when reading it. 16-bit PNGs are therefore encoded
(and decoded) here with numpy and zlib: plain, standard PNGs (bit depth 16, no interlace). The greyscale form
(`png_depth`) reads correctly with Pillow and imageio; the RGB form needs a full PNG reader (libpng, OpenCV's
``IMREAD_UNCHANGED``, ``pypng``) or :func:`decode_png`.

Colour: Blender's Combined pass is linear scene-referred RGB; :func:`linear_to_srgb8` applies the sRGB transfer
function (IEC 61966-2-1) after clipping to [0, 1] and rounds to 8 bits.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: zlib level of the PNGs we write; fixed so that a re-run gives the same bytes.
ZLIB_LEVEL = 6
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # PNG colour type -> channels (palette images are not supported)


class PngError(ValueError):
    """Bytes that are not a PNG this module can decode."""


def linear_to_srgb(linear: np.ndarray) -> np.ndarray:
    """Linear RGB -> sRGB-encoded float in [0, 1] (values clipped first; NaN becomes 0).

    Args:
        linear: float array, any shape.

    Returns:
        float32 array of the same shape in [0, 1].
    """
    x = np.nan_to_num(np.asarray(linear, dtype=np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    x = np.clip(x, 0.0, 1.0)
    low = x * np.float32(12.92)
    high = np.float32(1.055) * np.power(x, np.float32(1.0 / 2.4)) - np.float32(0.055)
    return np.where(x <= np.float32(0.0031308), low, high).astype(np.float32)


def linear_to_srgb8(linear: np.ndarray) -> np.ndarray:
    """Linear RGB -> 8-bit sRGB, ``round(255 * srgb(clip(x, 0, 1)))``.

    Args:
        linear: float array (..., 3).

    Returns:
        uint8 array of the same shape.
    """
    return np.rint(linear_to_srgb(linear) * 255.0).astype(np.uint8)


def encode_png8(rgb: np.ndarray) -> bytes:
    """Encodes an (H, W, 3) uint8 image as PNG bytes (Pillow, fixed compression level, no metadata)."""
    rgb = np.ascontiguousarray(rgb)
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {rgb.dtype} {rgb.shape}")
    buf = io.BytesIO()
    Image.fromarray(rgb, mode="RGB").save(buf, format="PNG", compress_level=ZLIB_LEVEL)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png16(img: np.ndarray) -> bytes:
    """Encodes a uint16 image as a 16-bit PNG: (H, W) or (H, W, 1) greyscale, (H, W, 3) RGB.

    Every scanline uses the PNG "Up" filter (difference to the row above), which turns the flat regions of id
    maps and smooth depth into zeros for zlib. Deterministic: the same array gives the same bytes. Pillow and
    imageio decode the greyscale form exactly (uint16); the RGB form needs a full PNG reader (see module docstring).

    Args:
        img: uint16 (H, W), (H, W, 1) or (H, W, 3).

    Returns:
        PNG bytes (bit depth 16; colour type 0 = greyscale or 2 = RGB).
    """
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    if img.dtype != np.uint16 or img.ndim != 3 or img.shape[2] not in (1, 3):
        raise ValueError(f"expected uint16 (H, W), (H, W, 1) or (H, W, 3), got {img.dtype} {img.shape}")
    h, w, c = img.shape
    rows = img.astype(">u2").view(np.uint8).reshape(h, w * c * 2)
    prior = np.zeros_like(rows)
    prior[1:] = rows[:-1]
    filtered = np.empty((h, w * c * 2 + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # Up
    filtered[:, 1:] = rows - prior  # uint8 arithmetic wraps modulo 256, as the filter requires
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0 if c == 1 else 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(filtered.tobytes(), ZLIB_LEVEL))
        + _chunk(b"IEND", b"")
    )


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    a16, b16, c16 = a.astype(np.int16), b.astype(np.int16), c.astype(np.int16)
    p = a16 + b16 - c16
    pa, pb, pc = np.abs(p - a16), np.abs(p - b16), np.abs(p - c16)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c)).astype(np.uint8)


def _unfilter(raw: np.ndarray, h: int, stride: int, bpp: int) -> np.ndarray:
    """Undoes PNG scanline filters. None/Sub/Up are vectorised; Average/Paeth walk pixel by pixel."""
    data = raw.reshape(h, stride + 1)
    ftypes = data[:, 0]
    if np.all(ftypes == 2):  # all "Up" (what encode_png16 writes): a running sum down each column
        return np.cumsum(data[:, 1:], axis=0, dtype=np.uint8)
    if np.all(ftypes == 0):
        return data[:, 1:].copy()
    out = np.zeros((h, stride), dtype=np.uint8)
    prior = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        ftype, line = int(data[y, 0]), data[y, 1:]
        if ftype == 0:
            row = line.copy()
        elif ftype == 1:  # Sub: running sum along each byte lane of a pixel
            lanes = line.reshape(-1, bpp).astype(np.int64)
            row = (np.cumsum(lanes, axis=0) % 256).astype(np.uint8).reshape(-1)
        elif ftype == 2:
            row = line + prior
        elif ftype in (3, 4):
            row = np.zeros(stride, dtype=np.uint8)
            for x in range(0, stride, bpp):
                a = row[x - bpp : x] if x else np.zeros(bpp, np.uint8)
                b = prior[x : x + bpp]
                if ftype == 3:
                    pred = ((a.astype(np.uint16) + b) // 2).astype(np.uint8)
                else:
                    c = prior[x - bpp : x] if x else np.zeros(bpp, np.uint8)
                    pred = _paeth(a, b, c)
                row[x : x + bpp] = line[x : x + bpp] + pred
        else:
            raise PngError(f"unknown PNG filter type {ftype} in row {y}")
        out[y] = row
        prior = row
    return out


def _decode_raw(data: bytes) -> np.ndarray:
    """Decodes a non-interlaced, non-palette PNG of bit depth 8 or 16 with numpy + zlib."""
    if not data.startswith(PNG_SIGNATURE):
        raise PngError("not a PNG (bad signature)")
    pos, ihdr, idat = len(PNG_SIGNATURE), None, []
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = data[pos + 8 + length : pos + 12 + length]
        if len(body) != length or len(crc) != 4:
            raise PngError(f"truncated PNG chunk {kind!r}")
        if struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise PngError(f"CRC mismatch in PNG chunk {kind!r}")
        if kind == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        raise PngError("PNG without IHDR or IDAT")
    w, h, depth, ctype, _, _, interlace = ihdr
    if depth not in (8, 16) or ctype not in _CHANNELS or interlace:
        raise PngError(f"unsupported PNG: bit depth {depth}, colour type {ctype}, interlace {interlace}")
    nch = _CHANNELS[ctype]
    bpp = nch * depth // 8
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    except zlib.error as exc:
        raise PngError(f"corrupt PNG image data: {exc}") from exc
    if raw.size != h * (w * bpp + 1):
        raise PngError(f"PNG image data has {raw.size} bytes, expected {h * (w * bpp + 1)}")
    rows = _unfilter(raw, h, w * bpp, bpp)
    dtype = np.dtype(">u2") if depth == 16 else np.dtype(np.uint8)
    img = rows.view(dtype).reshape(h, w, nch)
    return img.astype(dtype.newbyteorder("=")) if depth == 16 else img


def png_bit_depth(data: bytes) -> int:
    """Bit depth from a PNG's IHDR (bytes 24 of the file)."""
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE):
        raise PngError("not a PNG (bad signature or too short)")
    return data[24]


def decode_png(data: bytes | np.ndarray) -> np.ndarray:
    """Decodes PNG bytes to an (H, W, C) array: uint8 for 8-bit PNGs (Pillow), uint16 for 16-bit ones (numpy).

    Args:
        data: encoded bytes, or the uint8 array h5py returns for a vlen uint8 row.

    Raises:
        PngError: if the bytes are not a decodable PNG.
    """
    data = data.tobytes() if isinstance(data, np.ndarray) else bytes(data)
    if png_bit_depth(data) == 16:
        return _decode_raw(data)
    try:
        with Image.open(io.BytesIO(data)) as im:
            arr = np.asarray(im)
    except (OSError, SyntaxError) as exc:  # Pillow reports broken files as OSError / SyntaxError
        raise PngError(f"corrupt 8-bit PNG: {exc}") from exc
    return arr[..., None] if arr.ndim == 2 else arr
