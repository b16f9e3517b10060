"""Solid voxel grids of meshes and their binvox files (RenderNet's shape input), without Blender.

Plain numpy + trimesh, so generators, exports and tests use it anywhere; this is the one place binvox files
are read and written (pipeline/ imports it; render/ may not import pipeline/).

The unit cube. A mesh is voxelised in the frame the renderer gives a `MeshSpec(normalize=True)` mesh: its
bounding box centred at the origin with its largest side 1 (`normalise_to_unit_cube`), so it lies in
[-0.5, 0.5]^3. `load_mesh_file` reads a file in the axes the renderer's importers give it, so
`normalise_to_unit_cube(load_mesh_file(p)[0])` is where the renderer puts mesh `p`. A grid of `dim`^3 voxels
tiles that cube: voxel [i, j, k] (world x, y, z, z up) is the cell of side 1/dim centred at
`-0.5 + (i + 0.5) / dim` (likewise j, k). That is binvox's own mapping `x = scale * (i + 0.5) / dim + translate`
with `translate = (-0.5, -0.5, -0.5)` and `scale = 1` (`UNIT_CUBE_TRANSLATE`, `UNIT_CUBE_SCALE`), which is
what the binvox files record.

What counts as occupied: a voxel whose cell holds a sample of the surface (samples at most half a voxel apart,
so nearly every cell the surface passes through, as binvox marks surface voxels) or that lies inside the closed
surface. `voxelize` fills only closed (watertight) meshes (trimesh's hole fill of the shell) and refuses
anything else rather than guessing. `voxelize_mesh` adds binvox's own rule for open meshes, space carving
(`fill="carve"`): a voxel is empty when it can see out of the grid along one of the 6 axis directions without
meeting a surface voxel, and occupied otherwise (surface voxels and everything they hide from all 6 directions).
With `fill="auto"` a closed mesh is filled exactly and an open one (or one whose closed fill leaks) is carved;
`VoxelGrid.fill` says which rule made the grid, and the renderer records it in the sidecar.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import trimesh
from core import publish
from core.off_mesh import OffFormatError, read_off
from trimesh import grouping
from trimesh.exchange import binvox as trimesh_binvox
from trimesh.voxel import encoding as voxel_encoding
from trimesh.voxel import morphology

logger = logging.getLogger(__name__)

#: binvox `translate` and `scale` of a grid over the unit cube [-0.5, 0.5]^3.
UNIT_CUBE_TRANSLATE = (-0.5, -0.5, -0.5)
UNIT_CUBE_SCALE = 1.0
#: How far (in unit-cube units) a vertex may stray outside [-0.5, 0.5]^3: float32 round-off of a normalised mesh.
_CUBE_TOLERANCE = 1e-5
#: binvox's `xzy` storage order (y fastest) as a permutation of our [x, y, z] axes (its own inverse).
_XZY = (0, 2, 1)
#: Largest distance (in voxels) between neighbouring surface samples: half a voxel, so consecutive samples
#: never skip a voxel and the shell stays closed for the fill.
_MAX_EDGE = 0.5
#: Surface samples handled at once (x 3 float64 = 48 MB, a few such arrays), so a mesh of large faces never
#: needs more memory.
_POINTS_PER_BATCH = 2_000_000
#: Vertices closer than 1e-8 (in unit-cube units) are one vertex (trimesh's merge tolerance).
_MERGE_DIGITS = 8
#: Faces whose (2 x area)^2 is below this are degenerate (zero area) and dropped.
_MIN_AREA2 = 1e-24


#: How the renderer's importers place a file's (x, y, z) in the world (measured with bpy 5.0.1): Blender's OBJ
#: importer (forward -Z, up Y) maps it to (x, -z, y); its PLY and STL importers and the renderer's own OFF
#: reader keep the file's axes. Rows: world axes; columns: file axes.
IMPORT_AXES = {
    ".obj": ((1.0, 0.0, 0.0), (0.0, 0.0, -1.0), (0.0, 1.0, 0.0)),
    ".ply": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    ".stl": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
    ".off": ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)),
}


class VoxelizationError(ValueError):
    """A mesh that has no well-defined solid: empty, degenerate, open, or outside the unit cube."""


class OpenMeshError(VoxelizationError):
    """A mesh the closed fill cannot fill (open, no volume, or a leaking shell); space carving still can."""


#: Fill rules of `voxelize_mesh`: "closed" (watertight meshes only), "carve" (binvox's space carving),
#: "auto" (closed when it works, else carve).
FILL_METHODS = ("closed", "carve", "auto")


@dataclass(frozen=True)
class VoxelGrid:
    """A solid occupancy grid and the rule that filled it.

    Attributes:
        grid: uint8 (D, D, D) indexed [x, y, z], 0/1 (read-only: grids may be shared from a cache).
        fill: "closed" (inside of a watertight surface) or "carve" (space carving of an open one).
    """

    grid: np.ndarray
    fill: str


class BinvoxError(ValueError):
    """A binvox file or grid this module cannot read or write."""


def load_mesh_file(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """A mesh file's triangles in the world axes the renderer imports it with (before normalisation).

    All objects and groups of the file together, as the renderer sizes them together. Polygons are split into
    triangles (trimesh for OBJ/PLY/STL; a fan for OFF, read by core.off_mesh).

    Args:
        path: an .obj, .ply, .stl or .off file.
    Returns:
        vertices: (N, 3) float64 in the file's units, world axes (`IMPORT_AXES`).
        faces: (M, 3) int64 triangles.
    Raises:
        VoxelizationError: another format, an unreadable file, or a file without triangles.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in IMPORT_AXES:
        raise VoxelizationError(f"{path}: no loader for {suffix!r} files; use one of {sorted(IMPORT_AXES)}")
    if not path.is_file():
        raise VoxelizationError(f"{path}: no such mesh file")
    try:
        if suffix == ".off":
            off = read_off(path)
            vertices = off.vertices
            fans = [np.stack([np.full(len(f) - 2, f[0]), f[1:-1], f[2:]], axis=1) for f in off.faces if len(f) >= 3]
            faces = np.concatenate(fans) if fans else np.zeros((0, 3), np.int64)
        else:
            # skip_materials: only geometry matters here, and textures would be decoded for nothing
            mesh = trimesh.load(path, force="mesh", process=False, skip_materials=True)
            vertices, faces = np.asarray(mesh.vertices), np.asarray(mesh.faces)
    except (OSError, ValueError, IndexError, OffFormatError) as exc:
        raise VoxelizationError(f"{path}: could not read the mesh ({exc})") from exc
    if len(faces) == 0:
        raise VoxelizationError(f"{path}: the file holds no triangles")
    axes = np.asarray(IMPORT_AXES[suffix])
    return np.asarray(vertices, dtype=np.float64) @ axes.T, np.asarray(faces, dtype=np.int64)


def normalise_to_unit_cube(vertices: np.ndarray, name: str = "mesh") -> np.ndarray:
    """Moves and scales vertices as the renderer does for `MeshSpec(normalize=True)`.

    `v' = (v - (lo + hi) / 2) / max(hi - lo)`, with lo, hi the per-axis minimum and maximum of the vertices:
    the bounding box is centred at the origin and its largest side becomes 1 (render/blender_scene.py
    `_prototype`), so renders and voxels of one mesh agree.

    Args:
        vertices: (N, 3) float positions in any unit.
        name: the mesh's name or path, for error messages.
    Returns:
        (N, 3) float64 positions inside [-0.5, 0.5]^3.
    Raises:
        VoxelizationError: no vertices, non-finite values, or a bounding box of zero size.
    """
    v = _vertices(vertices, name)
    lo, hi = v.min(axis=0), v.max(axis=0)
    size = float((hi - lo).max())
    if size <= 0.0:
        raise VoxelizationError(f"{name}: all vertices coincide; a mesh needs a non-zero size to be normalised")
    return (v - (lo + hi) / 2.0) / size


def voxelize(vertices: np.ndarray, faces: np.ndarray, dim: int = 64, name: str = "mesh") -> np.ndarray:
    """Solid occupancy grid of a closed triangle mesh already in the unit cube.

    Args:
        vertices: (N, 3) float positions inside [-0.5, 0.5]^3 (see `normalise_to_unit_cube`), world axes.
        faces: (M, 3) int vertex indices of triangles.
        dim: voxels along each axis.
        name: the mesh's name or path, named by every error.
    Returns:
        uint8 (dim, dim, dim) grid indexed [x, y, z], 1 = occupied (inside or on the surface), 0 = empty;
        voxel centres as in the module docstring.
    Raises:
        VoxelizationError: empty or degenerate mesh, not watertight, encloses no volume, vertices outside the
            unit cube, bad shapes or indices.
    """
    mesh, dim = _checked_mesh(vertices, faces, dim, name)
    return _closed_fill(mesh, dim, name)


@dataclass(frozen=True)
class _Mesh:
    """A checked triangle mesh: vertices merged at equal positions, degenerate faces dropped.

    Why not a trimesh.Trimesh: its `process=True`, `is_watertight` and `volume` (the whole mass-properties
    integral) cost ~0.13 s together on a 75k-face mesh, as much as the rest of voxelising it; the few numbers
    the fills need are a sort and a sum each here.
    """

    vertices: np.ndarray
    faces: np.ndarray

    @functools.cached_property
    def edge_uses(self) -> np.ndarray:
        """How many faces use each distinct (undirected) edge."""
        edges = np.sort(self.faces[:, [0, 1, 1, 2, 2, 0]].reshape(-1, 2), axis=1)
        return np.unique(edges[:, 0] * len(self.vertices) + edges[:, 1], return_counts=True)[1]

    @property
    def is_watertight(self) -> bool:
        """Every edge bounds exactly two faces (trimesh's definition)."""
        return bool((self.edge_uses == 2).all())

    @property
    def volume(self) -> float:
        """Signed volume enclosed: the divergence theorem on F = (x, 0, 0), trimesh's own formula (so the grids
        are those its `volume` gave). On a consistently wound closed mesh every formula agrees; on one with mixed
        winding (CGAL's `boeing`) none means much, and this one keeps the leak test where it was."""
        a, b, c = (self.vertices[self.faces[:, k]] for k in range(3))
        return float(np.dot(np.cross(b - a, c - a)[:, 0], a[:, 0] + b[:, 0] + c[:, 0]) / 6.0)


def _checked_mesh(vertices: np.ndarray, faces: np.ndarray, dim: int, name: str) -> tuple[_Mesh, int]:
    """The mesh with equal vertices merged and its degenerate faces dropped, after every check both fills share."""
    if not isinstance(dim, int | np.integer) or dim < 2:
        raise VoxelizationError(f"{name}: dim must be an integer >= 2, got {dim!r}")
    dim = int(dim)
    v = _vertices(vertices, name)
    f = np.asarray(faces)
    if f.ndim != 2 or f.shape[1] != 3 or f.shape[0] == 0:
        raise VoxelizationError(f"{name}: faces must be a non-empty (M, 3) array of triangles, got shape {f.shape}")
    if f.dtype.kind not in "iu":
        raise VoxelizationError(f"{name}: faces must be integer vertex indices, got dtype {f.dtype}")
    if f.min() < 0 or f.max() >= len(v):
        raise VoxelizationError(f"{name}: face indices must lie in [0, {len(v) - 1}], got [{f.min()}, {f.max()}]")
    outside = np.abs(v).max()
    if outside > 0.5 + _CUBE_TOLERANCE:
        raise VoxelizationError(f"{name}: vertices reach {outside:.6g} from the origin, outside the unit cube "
                                "[-0.5, 0.5]^3; pass them through normalise_to_unit_cube first")
    # Merge vertices at equal positions (to 1e-8, trimesh's merge tolerance): mesh files split vertices along UV
    # and normal seams, which would make a closed surface look open.
    unique, inverse = grouping.unique_rows(v, digits=_MERGE_DIGITS)
    v, f = v[unique], inverse[f.astype(np.int64)]
    a, b, c = (v[f[:, k]] for k in range(3))
    area2 = np.einsum("ij,ij->i", *(2 * [np.cross(b - a, c - a)]))  # (2 x area)^2
    keep = (f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0]) & (area2 > _MIN_AREA2)
    if not keep.any():
        raise VoxelizationError(f"{name}: every face is degenerate (zero area); nothing to voxelise")
    return _Mesh(v, f[keep]), dim


def _shell(mesh: _Mesh, dim: int) -> np.ndarray:
    """Surface voxels of a unit-cube mesh (index space: voxel i is centred at i, its cell [i - 0.5, i + 0.5])."""
    return _surface_voxels((mesh.vertices[mesh.faces] + 0.5) * dim - 0.5, dim)


def _closed_fill(mesh: _Mesh, dim: int, name: str, shell: np.ndarray | None = None) -> np.ndarray:
    """Solid grid of a watertight mesh: its surface voxels (`shell`, computed when None) and the holes they
    enclose."""
    if not mesh.is_watertight:
        uses = mesh.edge_uses
        raise OpenMeshError(
            f"{name}: mesh is not watertight ({int(np.sum(uses == 1))} edges bound one face only, "
            f"{int(np.sum(uses > 2))} are shared by more than two), so it has no inside to fill; close or repair "
            "it (e.g. trimesh.repair.fill_holes)")
    volume = abs(mesh.volume)
    if volume < 1e-12:
        raise OpenMeshError(f"{name}: closed surface encloses no volume (flat or self-cancelling)")

    if shell is None:
        shell = _shell(mesh, dim)
    solid = np.asarray(morphology.fill(voxel_encoding.DenseEncoding(shell), method="holes").dense, dtype=bool)
    # A gap in the shell lets the fill's background leak inside, leaving only the shell: a grid far below the
    # mesh's own volume. (Thin parts are all shell anyway, so this only fires where a leak loses voxels.)
    enclosed = volume * dim**3
    if solid.sum() < 0.9 * enclosed:
        raise OpenMeshError(f"{name}: the filled grid holds {int(solid.sum())} voxels but the mesh encloses "
                                f"{enclosed:.0f} voxels' volume: its surface leaks at dim {dim} (self-intersecting "
                                "or inverted parts); repair the mesh")
    return solid.astype(np.uint8)


def voxelize_mesh(vertices: np.ndarray, faces: np.ndarray, dim: int = 64, name: str = "mesh",
                  fill: str = "auto") -> VoxelGrid:
    """Solid occupancy grid of a mesh in the unit cube, open meshes included.

    Args:
        vertices, faces, dim, name: as `voxelize`.
        fill: "closed" (refuse open meshes, as `voxelize`), "carve" (space carving whatever the mesh) or "auto"
            (the closed fill when the mesh is watertight and its shell does not leak, else carving). Only 21 of
            the 75 Sweet Home 3D chairs and 87 of CGAL's 138 meshes are closed, so datasets use "auto".
    Returns:
        The grid and the rule that filled it (`VoxelGrid.fill`).
    Raises:
        VoxelizationError: empty or degenerate meshes, bad shapes or indices, vertices outside the unit cube
            (any fill); `OpenMeshError` for an open mesh with fill="closed"; an unknown fill.
    """
    if fill not in FILL_METHODS:
        raise VoxelizationError(f"{name}: fill = {fill!r}; use one of {FILL_METHODS}")
    mesh, dim = _checked_mesh(vertices, faces, dim, name)
    shell = None  # sampled once: a closed fill that leaks is carved from the same surface voxels
    # "auto" skips the closed fill of an open mesh outright (its error message alone costs a sort of the edges)
    if fill == "closed" or (fill == "auto" and mesh.is_watertight):
        if mesh.is_watertight:
            shell = _shell(mesh, dim)
        try:
            return _frozen(VoxelGrid(_closed_fill(mesh, dim, name, shell), "closed"))
        except OpenMeshError as err:
            if fill == "closed":
                raise
            logger.debug("%s; carving instead", err)
    return _frozen(VoxelGrid(carve(_shell(mesh, dim) if shell is None else shell), "carve"))


def carve(shell: np.ndarray) -> np.ndarray:
    """binvox's space carving of a surface-voxel grid: a voxel is empty exactly when, along one of the 6 axis
    directions, no surface voxel lies between it and the grid's border; everything else is occupied.

    Each direction is one cumulative OR along an axis (a voxel is hidden from that side once any surface voxel
    came before it, itself included), so carving costs six passes over the grid.

    Args:
        shell: bool (D, D, D) surface voxels.
    Returns:
        uint8 (D, D, D) solid grid (a superset of `shell`).
    """
    shell = np.asarray(shell, dtype=bool)
    seen = np.zeros(shell.shape, dtype=bool)
    for axis in range(3):
        seen |= ~np.logical_or.accumulate(shell, axis=axis)  # visible from the axis' low end
        flipped = np.flip(shell, axis=axis)
        seen |= np.flip(~np.logical_or.accumulate(flipped, axis=axis), axis=axis)  # from its high end
    return (~seen).astype(np.uint8)


@functools.lru_cache(maxsize=16)
def voxelize_file(path: str, dim: int = 64, fill: str = "auto") -> VoxelGrid:
    """The solid grid of a mesh file in the renderer's unit cube (`load_mesh_file`, `normalise_to_unit_cube`,
    `voxelize_mesh`), cached per process: a generator checks a mesh voxelises and the renderer writes the same grid.

    Raises:
        VoxelizationError: the file cannot be read or the mesh cannot be voxelised; the message names the path.
    """
    vertices, faces = load_mesh_file(path)
    return voxelize_mesh(normalise_to_unit_cube(vertices, str(path)), faces, dim=dim, name=str(path), fill=fill)


def _frozen(voxels: VoxelGrid) -> VoxelGrid:
    voxels.grid.setflags(write=False)
    return voxels


def write_binvox(path: str | os.PathLike, grid: np.ndarray, translate: Sequence[float] = UNIT_CUBE_TRANSLATE,
                 scale: float = UNIT_CUBE_SCALE) -> None:
    """Writes a cubic occupancy grid as a binvox file, atomically.

    The voxel data are run-length encoded by trimesh (binvox's `xzy` order, y fastest; runs split at 255).
    The header is written here as binvox itself writes it (`#binvox 1`, `dim`, `translate`, `scale`, `data`,
    one per line): trimesh's own header puts a comment on line 2, where strict readers such as binvox_rw (used
    by RenderNet) expect `dim`.

    Args:
        path: the file to write (replaced if present).
        grid: (D, D, D) uint8 or bool indexed [x, y, z], values 0/1.
        translate: (3,) world position of the grid's minimum corner.
        scale: world side length of the whole grid (voxel side = scale / D).
    Raises:
        BinvoxError: a grid that is not cubic and binary, or a non-finite translate / non-positive scale.
    """
    grid = np.asarray(grid)
    if grid.ndim != 3 or len(set(grid.shape)) != 1 or grid.shape[0] == 0:
        raise BinvoxError(f"{path}: binvox grids here are cubic (D, D, D), got shape {grid.shape}")
    if grid.dtype != np.bool_ and (grid.dtype.kind not in "iu" or grid.min() < 0 or grid.max() > 1):
        raise BinvoxError(f"{path}: grid values must be 0/1 (uint8 or bool), got dtype {grid.dtype}")
    t = [float(x) for x in translate]
    if len(t) != 3 or not all(np.isfinite(t)):
        raise BinvoxError(f"{path}: translate must be 3 finite numbers, got {translate!r}")
    s = float(scale)
    if not np.isfinite(s) or s <= 0:
        raise BinvoxError(f"{path}: scale must be a positive number, got {scale!r}")
    dense = voxel_encoding.DenseEncoding(grid.astype(bool))
    rle = dense.transpose(_XZY).flat.run_length_data(dtype=np.uint8)
    d = grid.shape[0]
    # repr() of a float is the shortest string that reads back to the same float: translate and scale survive.
    header = f"#binvox 1\ndim {d} {d} {d}\ntranslate {t[0]!r} {t[1]!r} {t[2]!r}\nscale {s!r}\ndata\n"
    publish.write_bytes(path, header.encode("ascii") + rle.tobytes())


def read_binvox(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, float]:
    """Reads a binvox file written by `write_binvox` or by binvox itself.

    Args:
        path: the binvox file.
    Returns:
        grid: uint8 (D, D, D) indexed [x, y, z] (transposed from binvox's `xzy` storage), values 0/1.
        translate: (3,) float64.
        scale: float.
    Raises:
        BinvoxError: not a binvox file, a non-cubic grid, or run lengths that do not cover D^3 voxels.
    """
    with open(path, "rb") as fh:
        parsed = trimesh_binvox.parse_binvox(fh)
    shape = tuple(int(x) for x in parsed.shape)
    if len(shape) != 3 or len(set(shape)) != 1:
        raise BinvoxError(f"{path}: expected a cubic grid 'dim D D D', got dim {shape}")
    rle = parsed.rle_data
    if len(rle) % 2:
        raise BinvoxError(f"{path}: voxel data has an odd number of bytes ({len(rle)}); the file is truncated")
    total = int(rle[1::2].astype(np.int64).sum())
    if total != int(np.prod(shape)):
        raise BinvoxError(f"{path}: run lengths cover {total} voxels, dim {shape} needs {int(np.prod(shape))}; "
                          "the file is truncated or corrupt")
    if rle[0::2].max(initial=0) > 1:
        raise BinvoxError(f"{path}: voxel values must be 0 or 1, found {int(rle[0::2].max())}")
    flat = voxel_encoding.RunLengthEncoding(rle, dtype=bool)
    grid = flat.reshape(shape).transpose(_XZY).dense
    return grid.astype(np.uint8), np.asarray(parsed.translate, dtype=np.float64), float(parsed.scale)


def _surface_voxels(triangles: np.ndarray, dim: int) -> np.ndarray:
    """Boolean (dim, dim, dim) grid of the voxels holding a sample of any triangle (index-space coordinates).

    Why not trimesh's voxeliser (`voxelize_subdivide`): it subdivides the whole mesh until every edge is short,
    and on meshes with long slivers that costs far more than their area: measured at 64^3 on these machines,
    CGAL's `cheese` (17,786 faces) took 32.7 s and most meshes 0.3-4 s.

    Here each triangle is sampled in rows parallel to its longest edge (base a-b, apex c): rows at most
    `_MAX_EDGE / sqrt(2)` apart, samples at most `_MAX_EDGE` apart along each row, so every point of the
    triangle lies within sqrt(1/8 + 1/16) = 0.43 voxel of a sample (drop it onto the row below: the row's own
    extent covers its foot, as the angles at a and b are acute). The samples grow with a triangle's area and
    base, not with its longest edge squared: a lattice with half-voxel steps along every edge, as before, spent
    ~0.2-0.35 s on a few meshes of long slivers (Sweet Home 3D's `bench`, CGAL's `cheese`); rows cost a third of
    that over all meshes. A triangle whose edges are all under `_MAX_EDGE` is its three corners.
    """
    t = np.asarray(triangles, dtype=np.float64)
    shell = np.zeros((dim, dim, dim), dtype=bool)
    lengths = np.linalg.norm(t[:, [1, 2, 0]] - t, axis=2)  # edge k runs from corner k to corner k + 1
    k = lengths.argmax(axis=1)
    base = lengths[np.arange(len(t)), k]
    small = base <= _MAX_EDGE
    _mark(shell, t[small].reshape(-1, 3))
    t, k, base = t[~small], k[~small], base[~small]
    rows = np.arange(len(t))
    a, b, c = t[rows, k], t[rows, (k + 1) % 3], t[rows, (k + 2) % 3]
    along, up = b - a, c - a
    height = np.linalg.norm(np.cross(along, up), axis=1) / base
    steps = base / _MAX_EDGE  # steps the base row needs; a row shrinks towards c and needs fewer
    n_rows = np.maximum(np.ceil(height / (_MAX_EDGE / np.sqrt(2.0))), 1).astype(np.int64)  # steps towards c
    # one entry per (triangle, row): its triangle, u (0 on the base, 1 at the apex) and steps along it
    tri = np.repeat(np.arange(len(t)), n_rows + 1)
    u = (np.arange(len(tri)) - np.repeat(np.cumsum(n_rows + 1) - n_rows - 1, n_rows + 1)) / n_rows[tri]
    along_steps = np.ceil(steps[tri] * (1.0 - u) - 1e-9).astype(np.int64)  # 0 at the apex: c alone
    counts = along_steps + 1
    # each row as a start point and one step (float32: index-space positions below 2^8 keep ~1e-5 voxel)
    start = (a[tri] + u[:, None] * up[tri]).astype(np.float32)
    step = ((1.0 - u) / np.maximum(along_steps, 1))[:, None] * along[tri]
    step = step.astype(np.float32)
    ends = np.cumsum(counts)
    first = 0
    while first < len(tri):  # batches of about _POINTS_PER_BATCH samples (at least one row)
        last = max(first + 1, int(np.searchsorted(ends, ends[first] - counts[first] + _POINTS_PER_BATCH, "right")))
        n = counts[first:last]
        row = np.repeat(np.arange(first, last), n)
        i = np.arange(int(n.sum()), dtype=np.float32) - np.repeat(np.cumsum(n) - n, n).astype(np.float32)
        _mark(shell, start[row] + i[:, None] * step[row])  # sample i of its row
        first = last
    return shell


def _mark(shell: np.ndarray, points: np.ndarray) -> None:
    """Sets the voxels of `shell` holding `points` (P, 3), index space."""
    dim = shell.shape[0]
    # A point exactly on the cube's face rounds to index dim (or -0.5 to 0 under round-half-even): it lies on the
    # boundary of the outermost voxel, which therefore holds it.
    hits = np.clip(np.rint(points), 0, dim - 1).astype(np.int64)
    shell.reshape(-1)[(hits[:, 0] * dim + hits[:, 1]) * dim + hits[:, 2]] = True


def _vertices(vertices: np.ndarray, name: str) -> np.ndarray:
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] == 0:
        raise VoxelizationError(f"{name}: vertices must be a non-empty (N, 3) array, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise VoxelizationError(f"{name}: vertices hold NaN or infinite values")
    return v
