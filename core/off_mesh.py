"""Read Object File Format (`.off`) meshes and write them as Wavefront OBJ.

Blender 5.0 has no OFF importer, so `pipeline.assets` converts every OFF mesh (CGAL's sample meshes, OFF files
in user folders) to OBJ, which `bpy.ops.wm.obj_import` reads. Supported: ASCII `OFF`, `COFF`, `NOFF`, `CNOFF`,
`STOFF` headers (per-vertex colours, normals and texture coordinates are read past and dropped), `#` comments,
counts on the header line or the next one, faces of any arity. Binary OFF is refused with a clear error.
"""

from __future__ import annotations

import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core import publish

logger = logging.getLogger(__name__)

_HEADER = re.compile(r"^(ST)?(C)?(N)?OFF$")


class OffFormatError(ValueError):
    """An OFF file is malformed or uses a variant this reader does not handle."""


@dataclass(frozen=True)
class OffMesh:
    """A polygon mesh read from OFF.

    Attributes:
        vertices: float64 (V, 3) positions in the file's units.
        faces: one int64 array of vertex indices (0-based) per face; arities may differ.
    """

    vertices: np.ndarray
    faces: tuple[np.ndarray, ...]

    @property
    def bbox(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Axis-aligned bounding box `((xmin, ymin, zmin), (xmax, ymax, zmax))` of the vertices."""
        if len(self.vertices) == 0:
            raise OffFormatError("an empty mesh has no bounding box")
        lo, hi = self.vertices.min(axis=0), self.vertices.max(axis=0)
        return (tuple(float(v) for v in lo), tuple(float(v) for v in hi))  # type: ignore[return-value]


def _content_lines(text: str) -> list[str]:
    lines = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line:
            lines.append(line)
    return lines


def parse_off(text: str, source: str = "<text>") -> OffMesh:
    """Parse the text of an ASCII OFF file.

    Args:
        text: file contents.
        source: what to name in error messages.

    Raises:
        OffFormatError: unknown header, binary OFF, wrong counts or out-of-range vertex indices.
    """
    lines = _content_lines(text)
    if not lines:
        raise OffFormatError(f"{source}: empty file, expected an 'OFF' header")
    head = lines[0].split()
    keyword = head[0]
    if not _HEADER.match(keyword):
        raise OffFormatError(f"{source}: header {keyword!r} is not an OFF variant this reader knows (OFF, COFF, NOFF, STOFF)")
    if len(head) > 1 and head[1].upper() == "BINARY":
        raise OffFormatError(f"{source}: binary OFF is not supported; convert it to ASCII OFF, OBJ or PLY")
    rest = head[1:]
    pos = 1
    if len(rest) < 2:
        if len(lines) < 2:
            raise OffFormatError(f"{source}: missing the 'vertices faces edges' count line")
        rest = lines[1].split()
        pos = 2
    try:
        n_vertices, n_faces = int(rest[0]), int(rest[1])
    except (ValueError, IndexError) as err:
        raise OffFormatError(f"{source}: bad count line {' '.join(rest)!r}: {err}") from err
    if n_vertices < 0 or n_faces < 0:
        raise OffFormatError(f"{source}: negative counts {n_vertices} vertices, {n_faces} faces")
    if len(lines) < pos + n_vertices + n_faces:
        raise OffFormatError(
            f"{source}: truncated: header promises {n_vertices} vertices and {n_faces} faces, "
            f"file has {len(lines) - pos} data lines"
        )
    try:
        vertices = np.array(
            [[float(v) for v in line.split()[:3]] for line in lines[pos : pos + n_vertices]], dtype=np.float64
        ).reshape(n_vertices, 3)
    except ValueError as err:
        raise OffFormatError(f"{source}: bad vertex line: {err}") from err
    faces = []
    for k, line in enumerate(lines[pos + n_vertices : pos + n_vertices + n_faces]):
        fields = line.split()
        try:
            arity = int(fields[0])
            idx = np.array([int(v) for v in fields[1 : 1 + arity]], dtype=np.int64)
        except ValueError as err:
            raise OffFormatError(f"{source}: face {k}: bad line {line!r}: {err}") from err
        if arity < 3 or len(idx) != arity:
            raise OffFormatError(f"{source}: face {k} has {len(idx)} of {arity} indices (need >= 3)")
        if idx.min() < 0 or idx.max() >= n_vertices:
            raise OffFormatError(f"{source}: face {k} indexes vertex {int(idx.max())}, mesh has {n_vertices}")
        faces.append(idx)
    return OffMesh(vertices=vertices, faces=tuple(faces))


def read_off(path: str | Path) -> OffMesh:
    """Read an ASCII OFF file (see `parse_off`)."""
    path = Path(path)
    return parse_off(path.read_text(encoding="latin-1"), source=str(path))


def obj_text(mesh: OffMesh, comment: str = "") -> str:
    """Format a mesh as OBJ text: `v` lines then 1-based `f` lines (no normals, no UVs)."""
    out = io.StringIO()
    if comment:
        for line in comment.splitlines():
            out.write(f"# {line}\n")
    np.savetxt(out, mesh.vertices, fmt="v %.9g %.9g %.9g")
    for face in mesh.faces:
        out.write("f " + " ".join(str(int(i) + 1) for i in face) + "\n")
    return out.getvalue()


def write_obj(mesh: OffMesh, path: str | Path, comment: str = "") -> None:
    """Write a mesh as OBJ atomically (temporary file in the same folder, then `os.replace`)."""
    publish.write_text(path, obj_text(mesh, comment))
