"""A small scanline OpenEXR reader and writer in numpy and deflate (ISA-L's, via isal).

Inside a stock Blender the OpenEXR wheel's native libraries clash with Blender's own copies (Blender 3.4
crashes in the first read), so the Blender side reads and writes EXR itself. Supported: scanline images,
single- or multi-part, NONE / ZIPS / ZIP compression, UINT / HALF / FLOAT channels - what Blender writes with
`exr_codec = 'NONE'` and what the canonical view files need. Readers outside Blender may use any EXR library.
"""

import struct
from pathlib import Path

import numpy as np
from isal import isal_zlib

_MAGIC = 20000630
_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
_TYPE_OF = {np.dtype("uint32"): 0, np.dtype("float16"): 1, np.dtype("float32"): 2}
_LINES_PER_BLOCK = {0: 1, 2: 1, 3: 16}  # NONE, ZIPS, ZIP
_NAMES = {0: "none", 2: "zips", 3: "zip"}
#: deflate level of ZIP blocks, written by ISA-L (isal): at level 1 a view's write is 2.4x faster than with zlib's
#: level 1, for 0.8% fewer bytes (bench/bench_exr.py); any zlib inflates them
ZIP_LEVEL = 1


class ExrError(ValueError):
    """The file is not an EXR this module can read; the message names the file and the reason."""


def _cstr(buf: bytes, pos: int) -> tuple[str, int]:
    end = buf.index(b"\0", pos)
    return buf[pos:end].decode("latin-1"), end + 1


def _parse_header(buf: bytes, pos: int) -> tuple[dict, int]:
    header: dict = {}
    while True:
        name, pos = _cstr(buf, pos)
        if not name:
            return header, pos
        kind, pos = _cstr(buf, pos)
        (size,) = struct.unpack_from("<i", buf, pos)
        pos += 4
        value = buf[pos:pos + size]
        pos += size
        if kind == "chlist":
            channels, p = [], 0
            while value[p] != 0:
                cname, p = _cstr(value, p)
                ptype = struct.unpack_from("<i", value, p)[0]
                channels.append((cname, ptype))
                p += 16
            header[name] = channels
        elif kind == "compression":
            header[name] = value[0]
        elif kind == "box2i":
            header[name] = struct.unpack("<4i", value)
        elif kind == "int":
            header[name] = struct.unpack("<i", value)[0]
        elif kind == "string":
            header[name] = value.decode("latin-1")
        else:
            header[name] = value


def _unzip(data: bytes, expected: int) -> np.ndarray:
    raw = np.frombuffer(isal_zlib.decompress(data), dtype=np.uint8)
    if raw.size != expected:
        raise ValueError(f"zip block holds {raw.size} bytes, expected {expected}")
    # undo the delta predictor: t[i] = t[i-1] + raw[i] - 128 (mod 256, which uint8 arithmetic does by itself)
    delta = raw.copy()
    delta[1:] += 128
    t = np.cumsum(delta, dtype=np.uint8)
    half = (expected + 1) // 2
    out = np.empty(expected, dtype=np.uint8)
    out[0::2], out[1::2] = t[:half], t[half:]
    return out


def _deflate(data: bytes) -> bytes:
    return isal_zlib.compress(data, ZIP_LEVEL)


def _predicted(blocks: np.ndarray) -> np.ndarray:
    """The ZIP format's byte reordering and delta predictor, applied to each row of a (blocks, bytes) uint8 array."""
    t = np.concatenate([blocks[:, 0::2], blocks[:, 1::2]], axis=1)
    pred = np.empty_like(t)  # uint8, whose wrap-around is the format's mod 256
    pred[:, 0] = t[:, 0]
    np.subtract(t[:, 1:], t[:, :-1], out=pred[:, 1:])
    pred[:, 1:] += 128
    return pred


def _uncompressed_lines(buf: bytes, table: tuple[int, ...], multipart: bool, y0: int, height: int,
                        line_bytes: int) -> np.ndarray | None:
    """(height, line_bytes) view of an uncompressed part whose one-line blocks lie back to back in line order
    (what Blender writes), or None when they don't and the blocks must be read one by one."""
    pre = (4 if multipart else 0) + 8  # [part number], line number, byte count
    stride = pre + line_bytes
    if len(table) != height or np.any(np.diff(np.asarray(table, dtype=np.int64)) != stride):
        return None
    blocks = np.frombuffer(buf, dtype=np.uint8, count=height * stride, offset=table[0]).reshape(height, stride)
    heads = np.ascontiguousarray(blocks[:, pre - 8:pre]).view("<i4")
    if not (np.array_equal(heads[:, 0], np.arange(y0, y0 + height)) and np.all(heads[:, 1] == line_bytes)):
        return None
    return blocks[:, pre:]


def _block_lines(path: Path, buf: bytes, table: tuple[int, ...], multipart: bool, compression: int, y0: int,
                 y1: int, line_bytes: int) -> np.ndarray:
    """(height, line_bytes) array of a part's scanlines, block by block (any order, any supported compression)."""
    lines = np.empty((y1 - y0 + 1, line_bytes), dtype=np.uint8)
    for offset in table:
        p = offset + (4 if multipart else 0)
        y, size = struct.unpack_from("<ii", buf, p)
        if not y0 <= y <= y1 or len(buf) < p + 8 + size:
            raise ExrError(f"{path}: truncated or corrupt at line {y}")
        count = min(_LINES_PER_BLOCK[compression], y1 - y + 1)
        expected = count * line_bytes
        if compression and size < expected:
            block = _unzip(buf[p + 8:p + 8 + size], expected)
        elif size == expected:
            block = np.frombuffer(buf, dtype=np.uint8, count=size, offset=p + 8)
        else:
            raise ExrError(f"{path}: block at line {y} holds {size} bytes, expected {expected}")
        lines[y - y0:y - y0 + count] = block.reshape(count, line_bytes)
    return lines


def read_exr(path: Path) -> dict[str, np.ndarray]:
    """Reads every channel of every part. Returns channel name -> (H, W) array (uint32, float16 or float32), a
    read-only view into the file's bytes where the part is uncompressed.

    Raises:
        ExrError: not an EXR, tiled/deep, an unsupported compression, or truncated.
    """
    path = Path(path)
    try:
        buf = path.read_bytes()
        magic, version = struct.unpack_from("<ii", buf, 0)
        if magic != _MAGIC:
            raise ExrError(f"{path} is not an OpenEXR file")
        if version & 0x200 or version & 0x800:
            raise ExrError(f"{path} is tiled or deep; only scanline images are supported")
        multipart = bool(version & 0x1000)
        pos, headers = 8, []
        while True:
            header, pos = _parse_header(buf, pos)
            headers.append(header)
            if not multipart or buf[pos] == 0:
                pos += 1 if multipart else 0
                break
        out: dict[str, np.ndarray] = {}
        tables = []
        for header in headers:
            compression = header["compression"]
            if compression not in _LINES_PER_BLOCK:
                raise ExrError(f"{path}: compression {compression} not supported (use NONE, ZIPS or ZIP)")
            x0, y0, x1, y1 = header["dataWindow"]
            n_blocks = -(-(y1 - y0 + 1) // _LINES_PER_BLOCK[compression])
            tables.append(struct.unpack_from(f"<{n_blocks}Q", buf, pos))
            pos += 8 * n_blocks
        for header, table in zip(headers, tables, strict=True):
            compression = header["compression"]
            x0, y0, x1, y1 = header["dataWindow"]
            width, height = x1 - x0 + 1, y1 - y0 + 1
            channels = sorted(header["channels"])
            line_bytes = sum(width * _DTYPES[t].itemsize for _, t in channels)
            lines = _uncompressed_lines(buf, table, multipart, y0, height, line_bytes) if compression == 0 else None
            if lines is None:
                lines = _block_lines(path, buf, table, multipart, compression, y0, y1, line_bytes)
            q = 0
            for name, t in channels:
                n = width * _DTYPES[t].itemsize
                out[name] = lines[:, q:q + n].view(_DTYPES[t])  # rows are contiguous: a view, no copy
                q += n
        return out
    except ExrError:
        raise
    except (OSError, struct.error, ValueError, IndexError, KeyError, isal_zlib.error) as err:
        raise ExrError(f"{path} is not a readable EXR ({type(err).__name__}: {err})") from err


def _attr(name: str, kind: str, value: bytes) -> bytes:
    return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(value)) + value


def write_exr(path: Path, channels: dict[str, np.ndarray], compression: str = "zip") -> None:
    """Writes a single-part scanline EXR holding `channels` (name -> (H, W) uint32/float16/float32 array).

    The header holds only the attributes the format requires, so equal pixels give equal bytes.
    """
    codes = {v: k for k, v in _NAMES.items()}
    if compression not in codes:
        raise ValueError(f"compression {compression!r}; use one of {sorted(codes)}")
    code = codes[compression]
    names = sorted(channels)
    arrays = [np.ascontiguousarray(channels[n]) for n in names]
    height, width = arrays[0].shape
    for name, a in zip(names, arrays, strict=True):
        if a.shape != (height, width) or a.dtype not in _TYPE_OF:
            raise ValueError(f"channel {name!r}: shape {a.shape} dtype {a.dtype}; need ({height}, {width}) "
                             "uint32, float16 or float32")
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<i4xii", _TYPE_OF[a.dtype], 1, 1)
                      for n, a in zip(names, arrays, strict=True)) + b"\0"
    window = struct.pack("<4i", 0, 0, width - 1, height - 1)
    header = b"".join([
        _attr("channels", "chlist", chlist),
        _attr("compression", "compression", bytes([code])),
        _attr("dataWindow", "box2i", window),
        _attr("displayWindow", "box2i", window),
        _attr("lineOrder", "lineOrder", b"\0"),
        _attr("pixelAspectRatio", "float", struct.pack("<f", 1.0)),
        _attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0)),
        _attr("screenWindowWidth", "float", struct.pack("<f", 1.0)),
    ]) + b"\0"
    per_block = _LINES_PER_BLOCK[code]
    little = [a.astype(a.dtype.newbyteorder("<"), copy=False) for a in arrays]
    # a scanline is its row of every channel in turn: one (height, bytes per line) array holds them all
    lines = np.concatenate([a.view(np.uint8).reshape(height, -1) for a in little], axis=1)
    blocks = []
    for y in range(0, height, per_block):
        raw = lines[y:y + per_block].tobytes()
        if code:
            packed = _deflate(_predicted(np.frombuffer(raw, dtype=np.uint8)[None]).tobytes())
            raw = packed if len(packed) < len(raw) else raw
        blocks.append(struct.pack("<ii", y, len(raw)) + raw)
    start = 8 + len(header) + 8 * len(blocks)
    offsets, pos = [], start
    for block in blocks:
        offsets.append(pos)
        pos += len(block)
    data = struct.pack("<ii", _MAGIC, 2) + header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks)
    Path(path).write_bytes(data)
