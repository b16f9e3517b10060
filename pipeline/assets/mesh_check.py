"""A cheap check of a mesh file before it enters the index: that it is not empty and parses as its format says.

Blender's importers accept a broken or empty OBJ without a word at index time and fail (or import nothing) at
render time, inside a shard. Loading every mesh at index time is too slow for ShapeNet-sized folders (tens of
thousands of models), so this reads the file's structure only: OBJ vertex and face lines, the PLY/STL/glTF
headers. What it rejects is listed by `pipeline.assets index`; what it lets through can still fail in Blender,
which then skips that sample (batch.bad_mesh).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path


def _obj_problem(data: bytes) -> str | None:
    if data.count(b"\0") or sum(b < 9 or 13 < b < 32 for b in data[:4096]) > 40:
        return "not a text OBJ file (binary data)"
    vertices = faces = 0
    for number, raw in enumerate(data.decode("latin-1").splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if parts[0] == "v":
            try:
                [float(p) for p in parts[1:4]]
            except ValueError:
                return f"line {number}: unreadable vertex {raw.strip()[:60]!r}"
            if len(parts) < 4:
                return f"line {number}: a vertex needs 3 coordinates"
            vertices += 1
        elif parts[0] == "f":
            faces += 1
    if not vertices or not faces:
        return f"no geometry ({vertices} vertices, {faces} faces)"
    return None


def mesh_problem(path: str | Path) -> str | None:
    """Why the mesh file at `path` cannot be a usable mesh, or None when its structure looks sound."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"unreadable ({err.strerror})"
    if not data.strip():
        return "empty file"
    suffix = path.suffix.lower()
    if suffix == ".obj":
        return _obj_problem(data)
    if suffix == ".ply":
        return None if data.startswith(b"ply") and b"end_header" in data[:65536] else "not a PLY file (bad header)"
    if suffix == ".stl":
        if data[:5].lower() == b"solid" and b"facet" in data:
            return None
        if len(data) >= 84 and len(data) == 84 + 50 * struct.unpack("<I", data[80:84])[0] and data[80:84] != b"\0" * 4:
            return None
        return "not an STL file (neither ASCII facets nor a binary triangle count that fits its size)"
    if suffix == ".glb":
        return None if data[:4] == b"glTF" else "not a GLB file (no glTF magic)"
    if suffix == ".gltf":
        try:
            return None if "meshes" in json.loads(data) else "a glTF file without meshes"
        except (ValueError, UnicodeDecodeError):
            return "not a glTF file (invalid JSON)"
    return None  # OFF is parsed fully by core.off_mesh during conversion
