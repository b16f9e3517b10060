"""render/voxels.py: solid voxelisation in the unit cube and binvox files, read back by an independent reader."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.ndimage import binary_fill_holes
from trimesh.voxel import creation

from render.voxels import (
    UNIT_CUBE_SCALE,
    UNIT_CUBE_TRANSLATE,
    BinvoxError,
    OpenMeshError,
    VoxelizationError,
    load_mesh_file,
    normalise_to_unit_cube,
    read_binvox,
    voxelize,
    voxelize_file,
    voxelize_mesh,
    write_binvox,
)


def reference_read_binvox(path: Path) -> tuple[np.ndarray, list[float], float]:
    """binvox read from the format's description only: five text lines, then (value, count) byte pairs.

    Lines: `#binvox 1`, `dim D D D`, `translate tx ty tz`, `scale s`, `data` (strictly in that order, as
    binvox_rw reads them). Voxels are stored x slowest, then z, then y fastest; returned indexed [x, y, z].
    """
    raw = path.read_bytes()
    lines, pos = [], 0
    for _ in range(5):
        end = raw.index(b"\n", pos)
        lines.append(raw[pos:end].decode("ascii"))
        pos = end + 1
    assert lines[0] == "#binvox 1"
    assert re.fullmatch(r"dim \d+ \d+ \d+", lines[1]), lines[1]
    assert lines[2].startswith("translate ") and lines[3].startswith("scale ") and lines[4] == "data"
    dims = [int(x) for x in lines[1].split(" ")[1:]]
    translate = [float(x) for x in lines[2].split(" ")[1:]]
    scale = float(lines[3].split(" ")[1])
    pairs = raw[pos:]
    assert len(pairs) % 2 == 0
    flat = []
    for value, count in zip(pairs[0::2], pairs[1::2], strict=True):
        assert value in (0, 1) and 1 <= count <= 255
        flat.extend([value] * count)
    d = dims[0]
    assert len(flat) == d * d * d
    grid = np.zeros((d, d, d), dtype=np.uint8)
    n = 0
    for x in range(d):
        for z in range(d):
            for y in range(d):
                grid[x, y, z] = flat[n]
                n += 1
    return grid, translate, scale


def centres(dim: int) -> np.ndarray:
    """World coordinate of voxel centres along one axis, as the module docstring states."""
    return -0.5 + (np.arange(dim) + 0.5) / dim


def box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> trimesh.Trimesh:
    lo_, hi_ = np.asarray(lo), np.asarray(hi)
    b = trimesh.creation.box(extents=hi_ - lo_)
    b.apply_translation((lo_ + hi_) / 2)
    return b


# ----------------------------------------------------------------------------------------------- binvox
@pytest.mark.parametrize("dim", [32, 64])
def test_binvox_round_trip_matches_independent_reader(tmp_path: Path, dim: int) -> None:
    rng = np.random.default_rng(dim)
    grid = (rng.random((dim, dim, dim)) < 0.3).astype(np.uint8)
    grid[:5] = 1  # a run far longer than 255 voxels: the encoder must split it
    translate, scale = (-0.123456789, 0.1 + 0.2, 7.0), 1.0 / 3.0
    path = tmp_path / "g.binvox"
    write_binvox(path, grid, translate, scale)
    ref_grid, ref_t, ref_s = reference_read_binvox(path)
    np.testing.assert_array_equal(ref_grid, grid)
    assert ref_t == list(translate) and ref_s == scale  # bit-exact floats in the header
    ours, t, s = read_binvox(path)
    assert ours.dtype == np.uint8
    np.testing.assert_array_equal(ours, grid)
    assert t.tolist() == list(translate) and s == scale
    assert [p.name for p in tmp_path.iterdir()] == ["g.binvox"]  # atomic write left no temporary file


def test_binvox_stores_y_fastest(tmp_path: Path) -> None:
    grid = np.zeros((4, 4, 4), dtype=np.uint8)
    grid[0, 1, 0] = 1  # x=0, z=0, y=1: the second voxel in xzy order
    write_binvox(tmp_path / "one.binvox", grid)
    body = (tmp_path / "one.binvox").read_bytes().split(b"data\n", 1)[1]
    assert list(body[:6]) == [0, 1, 1, 1, 0, 62]
    grid = np.zeros((4, 4, 4), dtype=np.uint8)
    grid[0, 0, 1] = 1  # z=1 comes after all four y of z=0
    write_binvox(tmp_path / "z.binvox", grid)
    body = (tmp_path / "z.binvox").read_bytes().split(b"data\n", 1)[1]
    assert list(body[:6]) == [0, 4, 1, 1, 0, 59]


def test_binvox_refuses_bad_grids_and_files(tmp_path: Path) -> None:
    with pytest.raises(BinvoxError, match="cubic"):
        write_binvox(tmp_path / "a.binvox", np.zeros((4, 4, 5), np.uint8))
    with pytest.raises(BinvoxError, match="0/1"):
        write_binvox(tmp_path / "a.binvox", np.full((4, 4, 4), 2, np.uint8))
    with pytest.raises(BinvoxError, match="scale"):
        write_binvox(tmp_path / "a.binvox", np.zeros((4, 4, 4), np.uint8), scale=0.0)
    assert not list(tmp_path.iterdir())
    write_binvox(tmp_path / "ok.binvox", np.ones((4, 4, 4), np.uint8))
    truncated = tmp_path / "cut.binvox"
    truncated.write_bytes((tmp_path / "ok.binvox").read_bytes()[:-1])
    with pytest.raises(BinvoxError, match="cut.binvox"):
        read_binvox(truncated)


# ------------------------------------------------------------------------------------------- voxelising
@pytest.mark.parametrize("dim", [32, 64])
def test_closed_box_is_solid(dim: int) -> None:
    lo, hi = (-0.3, -0.2, -0.45), (0.2, 0.35, 0.1)
    b = box(lo, hi)
    grid = voxelize(b.vertices, b.faces, dim=dim, name="box")
    assert grid.shape == (dim, dim, dim) and grid.dtype == np.uint8
    c = centres(dim)
    cx, cy, cz = np.meshgrid(c, c, c, indexing="ij")
    inside = (cx > lo[0]) & (cx < hi[0]) & (cy > lo[1]) & (cy < hi[1]) & (cz > lo[2]) & (cz < hi[2])
    half = 0.5 / dim  # a voxel whose cell does not touch the box is never set
    touches = ((cx + half >= lo[0]) & (cx - half <= hi[0]) & (cy + half >= lo[1]) & (cy - half <= hi[1])
               & (cz + half >= lo[2]) & (cz - half <= hi[2]))
    assert grid[inside].all(), "interior voxels must be filled, not only the shell"
    assert not grid[~touches].any()
    side = np.subtract(hi, lo)
    # surface voxels are conservative: the volume exceeds the box's by less than one voxel layer per face
    assert np.prod(side) < grid.mean() < np.prod(side + 2.0 / dim)


def test_sphere_volume_fraction_close_to_analytic() -> None:
    s = trimesh.creation.icosphere(subdivisions=4, radius=0.4)
    grid = voxelize(s.vertices, s.faces, dim=64, name="sphere")
    analytic = 4 / 3 * np.pi * 0.4**3
    assert analytic < grid.mean() < analytic * 1.12  # conservative surface voxels add under a layer
    assert grid[32, 32, 32] == 1 and grid[0, 0, 0] == 0


def test_axis_order_is_xyz_in_world_axes() -> None:
    # An L: a long bar along +x at the bottom and a post going up +z at the -x end; nothing along y beyond 0.1.
    bar = box((-0.5, -0.05, -0.5), (0.5, 0.05, -0.3))
    post = box((-0.5, -0.05, -0.4), (-0.3, 0.05, 0.5))  # overlaps the bar: two closed parts
    ell = trimesh.util.concatenate([bar, post])
    grid = voxelize(ell.vertices, ell.faces, dim=32, name="L")
    extent = [int(np.any(grid, axis=tuple(a for a in range(3) if a != k)).sum()) for k in range(3)]
    assert extent[0] == 32 and extent[2] == 32 and extent[1] <= 5
    c = centres(32)
    ix_far_x, iz_top = int(np.argmin(abs(c - 0.45))), int(np.argmin(abs(c - 0.45)))
    assert grid[ix_far_x, 16, 2] == 1  # the far end of the bar, at the bottom
    assert grid[ix_far_x, 16, iz_top] == 0  # nothing above the bar's far end
    assert grid[1, 16, iz_top] == 1  # the top of the post, at -x


def test_normalise_matches_renderer_formula() -> None:
    rng = np.random.default_rng(3)
    v = rng.normal(size=(50, 3)) * [3.0, 1.0, 0.5] + [10.0, -2.0, 7.0]
    out = normalise_to_unit_cube(v)
    lo, hi = v.min(0), v.max(0)
    np.testing.assert_allclose(out, (v - (lo + hi) / 2) / (hi - lo).max())
    np.testing.assert_allclose(out.max(0) + out.min(0), 0.0, atol=1e-12)
    assert (out.max(0) - out.min(0)).max() == pytest.approx(1.0)
    assert UNIT_CUBE_TRANSLATE == (-0.5, -0.5, -0.5) and UNIT_CUBE_SCALE == 1.0


def test_normalised_mesh_voxelises_and_round_trips(tmp_path: Path) -> None:
    torus = trimesh.creation.torus(major_radius=3.0, minor_radius=1.0)
    torus.apply_translation([5.0, 1.0, -2.0])
    v = normalise_to_unit_cube(torus.vertices, "torus")
    grid = voxelize(v, torus.faces, dim=32, name="torus")
    assert grid[16, 16, 16] == 0 and grid.sum() > 0  # the hole stays empty
    write_binvox(tmp_path / "torus.binvox", grid)
    np.testing.assert_array_equal(reference_read_binvox(tmp_path / "torus.binvox")[0], grid)


def test_bad_meshes_raise_naming_the_mesh() -> None:
    b = box((-0.2, -0.2, -0.2), (0.2, 0.2, 0.2))
    with pytest.raises(VoxelizationError, match="open.obj.*not watertight"):
        voxelize(b.vertices, b.faces[:-1], name="open.obj")
    with pytest.raises(VoxelizationError, match="empty.obj"):
        voxelize(np.zeros((0, 3)), np.zeros((0, 3), int), name="empty.obj")
    with pytest.raises(VoxelizationError, match="flat.obj.*degenerate"):
        voxelize(np.array([[0, 0, 0], [0.1, 0, 0], [0.2, 0, 0]]), np.array([[0, 1, 2]]), name="flat.obj")
    with pytest.raises(VoxelizationError, match="big.obj.*normalise_to_unit_cube"):
        voxelize(b.vertices * 4, b.faces, name="big.obj")
    with pytest.raises(VoxelizationError, match="idx.obj.*indices"):
        voxelize(b.vertices, b.faces + 100, name="idx.obj")
    with pytest.raises(VoxelizationError, match="point.obj"):
        normalise_to_unit_cube(np.ones((4, 3)), name="point.obj")


def test_agrees_with_trimesh_subdividing_voxeliser() -> None:
    # trimesh's voxeliser (half-voxel subdivision, the density rule ours follows) on the same grid and fill

    torus = trimesh.creation.torus(major_radius=0.3, minor_radius=0.12)
    ours = voxelize(torus.vertices, torus.faces, dim=64, name="torus")
    index_space = torus.copy()
    index_space.apply_transform(trimesh.transformations.scale_and_translate(scale=64, translate=31.5))
    surface = creation.voxelize(index_space, pitch=1.0, method="subdivide", max_iter=20)
    hits = np.clip(np.rint(surface.points).astype(int), 0, 63)
    shell = np.zeros((64, 64, 64), bool)
    shell[hits[:, 0], hits[:, 1], hits[:, 2]] = True
    theirs = binary_fill_holes(shell)
    assert type(ours) is np.ndarray
    # the samplers differ only in cells the surface barely touches: a few percent of the surface voxels
    assert np.sum(ours.astype(bool) != theirs) < 0.05 * shell.sum()
    assert abs(int(ours.sum()) - int(theirs.sum())) < 0.005 * theirs.sum()


def test_a_leaking_shell_is_refused_not_returned_half_filled(monkeypatch: pytest.MonkeyPatch) -> None:
    import render.voxels as module

    s = trimesh.creation.icosphere(subdivisions=1, radius=0.45)  # 80 large faces
    monkeypatch.setattr(module, "_MAX_EDGE", 8.0)  # samples 8 voxels apart: the shell has holes
    with pytest.raises(VoxelizationError, match="ball.obj.*leaks"):
        voxelize(s.vertices, s.faces, dim=64, name="ball.obj")


# ------------------------------------------------------------------------------------------- mesh files
def test_load_mesh_file_axes_and_formats(tmp_path: Path) -> None:
    (tmp_path / "t.obj").write_text("v 1 2 3\nv 0 0 0\nv 0 1 0\nv 0 0 1\nf 1 2 3 4\n")
    v, f = load_mesh_file(tmp_path / "t.obj")
    assert sorted(map(tuple, v.tolist())) == [(0, -1, 0), (0, 0, 0), (0, 0, 1), (1, -3, 2)]  # (x, -z, y)
    assert f.shape == (2, 3)  # the quad as two triangles
    (tmp_path / "t.off").write_text("OFF\n4 1 0\n1 2 3\n0 0 0\n0 1 0\n0 0 1\n4 0 1 2 3\n")
    v, f = load_mesh_file(tmp_path / "t.off")
    assert v.tolist()[0] == [1, 2, 3] and f.tolist() == [[0, 1, 2], [0, 2, 3]]
    with pytest.raises(VoxelizationError, match="t.fbx.*no loader"):
        load_mesh_file(tmp_path / "t.fbx")
    with pytest.raises(VoxelizationError, match="missing.obj"):
        load_mesh_file(tmp_path / "missing.obj")


@pytest.mark.blender
def test_real_assets_land_where_the_renderer_puts_them() -> None:
    """Blender's own import (what render/blender_scene.py does) and ours give the same normalised bounding box, and
    every vertex Blender imports lies in an occupied voxel (a chair and a CGAL mesh from the asset index)."""
    pytest.importorskip("bpy")
    from core.asset_index import load_index
    from render import compat
    from render.bpy_import import bpy

    index = load_index()
    chosen = [index.mesh("sweethome3d/BlendSwap-CC-0/chair"), index.mesh("cgal/3torus")]
    for asset in chosen:
        before = set(bpy.data.objects)
        objects = compat.import_mesh_file(asset.path)
        blender_vertices = []
        for obj in objects:
            mesh = obj.data.copy()
            mesh.transform(obj.matrix_world)  # as blender_scene bakes the importer's axis conversion
            co = np.zeros(len(mesh.vertices) * 3)
            mesh.vertices.foreach_get("co", co)
            blender_vertices.append(co.reshape(-1, 3))
        for obj in set(bpy.data.objects) - before:
            bpy.data.objects.remove(obj, do_unlink=True)
        theirs = np.concatenate(blender_vertices)
        lo, hi = theirs.min(0), theirs.max(0)
        theirs = (theirs - (lo + hi) / 2) / (hi - lo).max()  # the renderer's normalisation (blender_scene)
        v, f = load_mesh_file(asset.path)
        ours = normalise_to_unit_cube(v, asset.id)
        np.testing.assert_allclose(ours.min(0), theirs.min(0), atol=1e-5)
        np.testing.assert_allclose(ours.max(0), theirs.max(0), atol=1e-5)
        grid = voxelize(ours, f, dim=32, name=asset.id)
        ijk = np.clip(np.floor((theirs + 0.5) * 32).astype(int), 0, 31)
        assert grid[ijk[:, 0], ijk[:, 1], ijk[:, 2]].all(), asset.id


# ------------------------------------------------------------------------------------ open meshes: carving
def open_box(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> trimesh.Trimesh:
    """A box whose top face (+z) is missing: 10 triangles, 4 edges bound one face only."""
    b = box(lo, hi)
    top = b.face_normals[:, 2] > 0.5
    return trimesh.Trimesh(b.vertices, b.faces[~top], process=False)


def shell_of(mesh: trimesh.Trimesh, dim: int) -> np.ndarray:
    from render.voxels import _surface_voxels

    return _surface_voxels((mesh.triangles + 0.5) * dim - 0.5, dim)


def test_open_box_is_refused_by_closed_fill_and_carved_by_auto() -> None:
    lo, hi = (-0.3, -0.3, -0.3), (0.3, 0.3, 0.3)
    cup = open_box(lo, hi)
    with pytest.raises(OpenMeshError, match="cup.obj.*not watertight"):
        voxelize_mesh(cup.vertices, cup.faces, dim=32, name="cup.obj", fill="closed")
    carved = voxelize_mesh(cup.vertices, cup.faces, dim=32, name="cup.obj", fill="auto")
    assert carved.fill == "carve"
    # the inside of a box without a top is seen from above (+z): carving keeps exactly its 5 walls, as binvox does
    np.testing.assert_array_equal(carved.grid, shell_of(cup, 32).astype(np.uint8))
    assert carved.grid[16, 16, 16] == 0 and carved.grid[16, 16, 2] == 0
    closed = box(lo, hi)
    solid = voxelize_mesh(closed.vertices, closed.faces, dim=32, name="box.obj", fill="auto")
    assert solid.fill == "closed" and solid.grid[16, 16, 16] == 1


def test_open_box_under_a_lid_is_filled_by_carving() -> None:
    # a box without its top, with a larger plate floating above it: the inside is hidden from all 6 directions
    # (walls on 4 sides, bottom below, the plate above), the gap between walls and plate is seen from the sides
    lo, hi = (-0.3, -0.3, -0.4), (0.3, 0.3, 0.2)
    cup = open_box(lo, hi)
    lid = trimesh.creation.box(extents=(0.8, 0.8, 0.0))
    lid = trimesh.Trimesh(lid.vertices + [0.0, 0.0, 0.35], lid.faces)
    both = trimesh.util.concatenate([cup, lid])
    out = voxelize_mesh(both.vertices, both.faces, dim=32, name="cup+lid", fill="auto")
    assert out.fill == "carve"
    c = centres(32)
    cx, cy, cz = np.meshgrid(c, c, c, indexing="ij")
    inside = (abs(cx) < 0.3) & (abs(cy) < 0.3) & (cz > -0.4) & (cz < 0.2)
    gap = (abs(cx) < 0.25) & (abs(cy) < 0.25) & (cz > 0.25) & (cz < 0.3)
    assert out.grid[inside].all(), "the hidden inside of the open box must be filled"
    assert not out.grid[gap].any(), "the gap under the lid is seen from the sides: empty"


def test_carve_equals_closed_fill_on_a_convex_closed_mesh() -> None:
    s = trimesh.creation.icosphere(subdivisions=3, radius=0.4)
    closed = voxelize_mesh(s.vertices, s.faces, dim=32, fill="closed")
    carved = voxelize_mesh(s.vertices, s.faces, dim=32, fill="carve")
    assert carved.fill == "carve" and closed.fill == "closed"
    np.testing.assert_array_equal(carved.grid, closed.grid)
    assert not carved.grid.flags.writeable  # shared from a cache: nobody may change it


def test_real_open_chair_is_carved_into_a_solid() -> None:
    from core.asset_index import load_index

    chairs = load_index().meshes(source="sweethome3d", classes="chair")
    for asset in chairs:
        v, f = load_mesh_file(asset.path)
        v = normalise_to_unit_cube(v, asset.id)
        if not trimesh.Trimesh(v, f, process=True).is_watertight:
            break
    else:
        raise AssertionError("every chair of the index is closed; the asset index changed")
    with pytest.raises(OpenMeshError):
        voxelize_mesh(v, f, dim=64, name=asset.id, fill="closed")
    out = voxelize_file(str(asset.path), 64, "auto")
    assert out.fill == "carve"
    shell = shell_of(trimesh.Trimesh(v, f, process=True), 64)
    assert (out.grid.astype(bool) >= shell).all()  # every surface voxel kept
    assert out.grid.sum() > shell.sum()  # and something the surface hides filled
    ijk = np.clip(np.rint((v + 0.5) * 64 - 0.5).astype(int), 0, 63)
    assert out.grid[ijk[:, 0], ijk[:, 1], ijk[:, 2]].all()
    # the same file gives the same grid (the renderer and the generator share it)
    assert voxelize_file(str(asset.path), 64, "auto") is out


def test_bad_fill_and_unreadable_file_name_the_mesh(tmp_path: Path) -> None:
    b = box((-0.2, -0.2, -0.2), (0.2, 0.2, 0.2))
    with pytest.raises(VoxelizationError, match="b.obj.*fill"):
        voxelize_mesh(b.vertices, b.faces, name="b.obj", fill="parity")
    (tmp_path / "broken.obj").write_text("this is no mesh\n")
    with pytest.raises(VoxelizationError, match="broken.obj"):
        voxelize_file(str(tmp_path / "broken.obj"), 32)
