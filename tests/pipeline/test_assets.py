"""Unit tests of pipeline.assets and its helpers on small synthetic inputs (no downloads)."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from core.off_mesh import OffFormatError, parse_off
from pipeline import assets
from pipeline.assets.classes import SHAPENET_SYNSETS, shapenet_class, sweethome3d_class
from pipeline.assets.gimp_pattern import GimpPatternError, decode_pattern, encode_pattern, read_pattern
from pipeline.assets.sh3f import CatalogueError, parse_properties

# ----------------------------------------------------------------------------------------- GIMP .pat


def _pat_bytes(pixels: np.ndarray, name: str, magic: bytes = b"GPAT", version: int = 1) -> bytes:
    """A .pat file written by hand from the documented layout (independent of encode_pattern)."""
    h, w, bpp = pixels.shape
    name_bytes = name.encode() + b"\0"
    header = struct.pack(">IIIII", 24 + len(name_bytes), version, w, h, bpp) + magic
    return header + name_bytes + pixels.tobytes()


@pytest.mark.parametrize("bpp", [1, 2, 3, 4])
def test_pattern_decodes_to_the_written_pixels(tmp_path: Path, bpp: int) -> None:
    rng = np.random.default_rng(1000 + bpp)
    pixels = rng.integers(0, 256, size=(5, 7, bpp), dtype=np.uint8)
    path = tmp_path / "p.pat"
    path.write_bytes(_pat_bytes(pixels, "Test Wood"))
    pattern = read_pattern(path)
    assert pattern.name == "Test Wood"
    assert (pattern.height, pattern.width, pattern.channels) == (5, 7, bpp)
    np.testing.assert_array_equal(pattern.pixels, pixels)
    # Row-major, top row first: pixel (row 1, col 2) sits at byte header + (1 * 7 + 2) * bpp.
    raw = path.read_bytes()
    offset = struct.unpack(">I", raw[:4])[0] + (1 * 7 + 2) * bpp
    assert tuple(pattern.pixels[1, 2]) == tuple(raw[offset : offset + bpp])
    assert encode_pattern(pixels, "Test Wood") == raw


def test_pattern_bad_magic_fails_clearly() -> None:
    data = _pat_bytes(np.zeros((2, 2, 3), np.uint8), "x", magic=b"GBRH")
    with pytest.raises(GimpPatternError, match=r"magic is b'GBRH', expected b'GPAT'"):
        decode_pattern(data, source="bad.pat")


def test_pattern_truncated_and_bad_version_fail_clearly() -> None:
    data = _pat_bytes(np.zeros((4, 4, 3), np.uint8), "x")
    with pytest.raises(GimpPatternError, match="truncated"):
        decode_pattern(data[:-5])
    with pytest.raises(GimpPatternError, match="shorter than"):
        decode_pattern(data[:10])
    with pytest.raises(GimpPatternError, match="version 2"):
        decode_pattern(_pat_bytes(np.zeros((2, 2, 3), np.uint8), "x", version=2))


# ----------------------------------------------------------------------------------------------- OFF


def test_off_parser_handles_comments_colours_and_polygons() -> None:
    text = "# made by hand\nCOFF\n4 2 0\n0 0 0 255 0 0 255\n1 0 0 0 255 0 255\n1 2 0 0 0 255 255\n0 1 3\n" \
           "3 0 1 2 10 20 30\n4 0 1 2 3\n"
    mesh = parse_off(text)
    assert mesh.vertices.shape == (4, 3)
    assert [f.tolist() for f in mesh.faces] == [[0, 1, 2], [0, 1, 2, 3]]
    assert mesh.bbox == ((0.0, 0.0, 0.0), (1.0, 2.0, 3.0))
    inline = parse_off("OFF 3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 2\n")
    assert len(inline.faces) == 1


def test_off_parser_rejects_bad_files() -> None:
    with pytest.raises(OffFormatError, match="vertex 5"):
        parse_off("OFF\n3 1 0\n0 0 0\n1 0 0\n0 1 0\n3 0 1 5\n")
    with pytest.raises(OffFormatError, match="binary"):
        parse_off("OFF BINARY\n")
    with pytest.raises(OffFormatError, match="truncated"):
        parse_off("OFF\n3 1 0\n0 0 0\n")
    with pytest.raises(OffFormatError, match="PLY"):
        parse_off("PLY\n")


# ----------------------------------------------------------------------------------------- classes


@pytest.mark.parametrize(
    ("name", "tags", "expected"),
    [
        ("Oak chair", ("Blend Swap", "Seat"), "chair"),
        ("Table lamp", (), "lamp"),
        ("Coffee table", (), "table"),
        ("Chair with cushion", (), "chair"),
        ("Bowl with fruits", ("Food",), "fruit"),
        ("Apples", ("Food", "Decoration"), "fruit"),
        ("Apple iMac 1998", ("Electronics",), "electronics"),
        ("Seat Leon", ("Car",), "vehicle"),
        ("Corner sofa", ("Couch",), "sofa"),
        ("Siamese cat", ("Animal",), "animal"),
        ("Wine bottle", ("Food", "Drink"), "bottle"),
        ("Teapot", (), "kitchenware"),
        ("Bill 10\u20ac", ("Money",), "other"),
        ("Female", ("Human", "Woman", "People"), "person"),
    ],
)
def test_sweethome3d_class_rules(name: str, tags: tuple[str, ...], expected: str) -> None:
    assert sweethome3d_class(name, tags) == expected


def test_shapenet_synsets() -> None:
    assert len(SHAPENET_SYNSETS) == 55
    assert shapenet_class("03001627") == "chair"
    assert shapenet_class("04379243") == "table"
    assert shapenet_class("02691156") == "airplane"
    assert shapenet_class("01234567") == "synset_01234567"


# ----------------------------------------------------------------------------------------- sh3f


def test_properties_parser_follows_java_rules() -> None:
    text = "# comment\n! other comment\nname#1=Bill 10\\u20ac\nkey : value\nlong=first \\\n    second\n" \
           "path\\=with\\:colon=x\nempty=\n"
    props = parse_properties(text)
    assert props["name#1"] == "Bill 10\u20ac"
    assert props["key"] == "value"
    assert props["long"] == "first second"
    assert props["path=with:colon"] == "x"
    assert props["empty"] == ""


_PROPERTIES = """# PluginFurnitureCatalog.properties
id=SweetHome3D#Test-Models
name=Test catalogue
license=Public domain

id#1=Test#bowlWithFruits
name#1=Bowl with fruits
tags#1=Food, Decoration
category#1=Kitchen
icon#1=/test/bowlWithFruits.png
model#1=/test/bowlWithFruits/bowl.obj
multiPartModel#1=true
width#1=30.5
depth#1=30
height#1=12.25
creator#1=Jane Doe

id#2=Test#oakChair
name#2=Oak chair
tags#2=Blend Swap, Seat
category#2=Living room
model#2=/test/oakChair/oakChair.obj
width#2=45
depth#2=50
height#2=90
creator#2=John Roe
modelRotation#2=1 0 0 0 0 1 0 -1 0
"""

_COPYRIGHT = """Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/

Files: Test/*
Copyright: 2014, someone
License: CC0

Files: Other/*
Copyright: 2010, someone else
License: CC-BY-3.0-USA
"""


def _make_sh3f(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("PluginFurnitureCatalog.properties", _PROPERTIES.encode("latin-1"))
        z.writestr("test/bowlWithFruits/bowl.obj", "mtllib bowl.mtl\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
        z.writestr("test/bowlWithFruits/bowl.mtl", "newmtl m\nmap_Kd fruit.jpg\nmap_Bump /home/someone/gone.jpg\n")
        z.writestr("test/bowlWithFruits/fruit.jpg", b"\xff\xd8not really a jpeg")
        z.writestr("test/bowlWithFruits/LICENSE.txt", "by Jane Doe")
        z.writestr("test/bowlWithFruits.png", b"icon")
        z.writestr("test/oakChair/oakChair.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    return path


def test_fake_sh3f_is_indexed_with_category_class_and_licence(tmp_path: Path) -> None:
    sh3f = _make_sh3f(tmp_path / "Test.sh3f")
    licences = assets.debian_copyright_licences(_COPYRIGHT)
    assert assets.catalogue_licence("Test", licences) == "CC0-1.0"
    assert assets.catalogue_licence("Other", licences) == "CC-BY-3.0-US"
    dest = tmp_path / "meshes"
    meshes = assets.index_catalogue(sh3f, dest, assets.catalogue_licence("Test", licences), origin="pkg 1.0: ")
    by_id = {m.id: m for m in meshes}
    assert sorted(by_id) == ["sweethome3d/Test/bowlWithFruits", "sweethome3d/Test/oakChair"]
    bowl, chair = by_id["sweethome3d/Test/bowlWithFruits"], by_id["sweethome3d/Test/oakChair"]
    assert (bowl.class_name, bowl.raw_category, bowl.name) == ("fruit", "Kitchen", "Bowl with fruits")
    assert (chair.class_name, chair.raw_category) == ("chair", "Living room")
    assert bowl.licence == chair.licence == "CC0-1.0"
    assert (bowl.author, chair.author) == ("Jane Doe", "John Roe")
    assert bowl.size_cm == (30.5, 30.0, 12.25)
    assert chair.model_rotation == (1, 0, 0, 0, 0, 1, 0, -1, 0) and bowl.model_rotation is None
    assert bowl.path == dest / "Test" / "bowlWithFruits" / "bowl.obj" and bowl.path.is_file()
    assert (bowl.path.parent / "fruit.jpg").is_file() and (bowl.path.parent / "bowl.mtl").is_file()
    assert not (dest / "Test" / "bowlWithFruits.png").exists()  # icons are not models
    assert bowl.missing_textures == ("/home/someone/gone.jpg",)
    assert bowl.origin == "pkg 1.0: Test.sh3f:/test/bowlWithFruits/bowl.obj"
    # Idempotent: a complete catalogue is read back, not unpacked again.
    marker = dest / "Test" / "catalogue.json"
    before = marker.stat().st_mtime_ns
    (bowl.path.parent / "fruit.jpg").write_bytes(b"user edit survives")
    assert assets.index_catalogue(sh3f, dest, "CC0-1.0") == meshes
    assert marker.stat().st_mtime_ns == before
    assert (bowl.path.parent / "fruit.jpg").read_bytes() == b"user edit survives"
    assert not [p for p in dest.iterdir() if p.name.startswith(".tmp-")]


def test_sh3f_without_properties_or_with_missing_model_fails(tmp_path: Path) -> None:
    empty = tmp_path / "Empty.sh3f"
    with zipfile.ZipFile(empty, "w") as z:
        z.writestr("readme.txt", "nothing")
    with pytest.raises(assets.FetchError, match="PluginFurnitureCatalog.properties"):
        assets.index_catalogue(empty, tmp_path / "out", "CC0-1.0")
    broken = tmp_path / "Broken.sh3f"
    with zipfile.ZipFile(broken, "w") as z:
        z.writestr("PluginFurnitureCatalog.properties", "id#1=a#b\nname#1=B\nmodel#1=/b/b.obj\n")
    with pytest.raises(assets.FetchError, match="b/b.obj"):
        assets.index_catalogue(broken, tmp_path / "out", "CC0-1.0")
    assert not (tmp_path / "out" / "Broken").exists()
    with pytest.raises(CatalogueError, match="lacks id, name or model"):
        from pipeline.assets.sh3f import parse_catalogue

        parse_catalogue({"id#3": "x#y", "name#3": "Y"})


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")
def test_fetch_sweethome3d_from_a_local_deb(tmp_path: Path) -> None:
    """The whole fetch path (deb -> unpack -> catalogues -> manifest -> index) on a tiny handmade .deb."""
    root = tmp_path / "pkg"
    furniture = root / "usr/share/sweethome3d/furniture"
    furniture.mkdir(parents=True)
    _make_sh3f(furniture / "Test.sh3f")
    doc = root / "usr/share/doc/sweethome3d-furniture"
    doc.mkdir(parents=True)
    (doc / "copyright").write_text(_COPYRIGHT)
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        "Package: sweethome3d-furniture\nVersion: 9.9-1\nArchitecture: all\nMaintainer: t <t@example.org>\n"
        "Description: test\n"
    )
    debs = tmp_path / "debs"
    debs.mkdir()
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root),
                    str(debs / "sweethome3d-furniture_9.9-1_all.deb")], check=True, capture_output=True)
    cache = tmp_path / "cache"
    index_path = assets.fetch("sweethome3d", cache_dir=cache, deb_dir=debs)
    index = assets.load_index(cache)
    assert index_path == cache / "index.json"
    assert [m.class_name for m in index.meshes()] == ["fruit", "chair"]
    assert index.classes() == ["chair", "fruit"]
    assert index.meshes(classes="chair")[0].origin.startswith("sweethome3d-furniture 9.9-1: Test.sh3f:")
    data = json.loads(index_path.read_text())
    assert data["sources"]["sweethome3d"]["packages"] == {"sweethome3d-furniture": "9.9-1"}
    assert not (cache / "downloads" / "sweethome3d-furniture").exists()  # unpacked tree cleaned up
    # A second fetch is a no-op; removing a file makes it fetch again.
    manifest = cache / "manifests" / "sweethome3d.json"
    mtime = manifest.stat().st_mtime_ns
    assets.fetch("sweethome3d", cache_dir=cache, deb_dir=debs)
    assert manifest.stat().st_mtime_ns == mtime
    shutil.rmtree(cache / "meshes/sweethome3d/Test/oakChair")
    with pytest.raises(assets.AssetMissingError, match="oakChair.obj.*python -m pipeline.assets fetch"):
        assets.load_index(cache)
    assets.fetch("sweethome3d", cache_dir=cache, deb_dir=debs)
    assert len(assets.load_index(cache).meshes()) == 2


# -------------------------------------------------------------------------------------- apt errors


def _fake_apt(bin_dir: Path, script: str) -> None:
    bin_dir.mkdir(parents=True, exist_ok=True)
    apt = bin_dir / "apt-get"
    apt.write_text("#!/bin/sh\n" + script)
    apt.chmod(apt.stat().st_mode | stat.S_IEXEC)


def test_failed_download_names_package_and_apt_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_apt(tmp_path / "bin", 'echo "E: Failed to fetch http://deb.example/pool/x.deb  404 Not Found" >&2\nexit 100\n')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    debs = assets.DebianPackages(tmp_path / "cache")
    with pytest.raises(assets.FetchError, match=r"apt-get download gimp-data failed with exit 100: .*404 Not Found"):
        debs.deb("gimp-data")
    assert not [p for p in (tmp_path / "cache/downloads").iterdir()]  # no debris


def test_missing_lists_trigger_one_apt_update(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "apt.log"
    _fake_apt(tmp_path / "bin", f"""echo "$@" >> {log}
if [ "$1" = update ]; then touch {tmp_path}/updated; exit 0; fi
if [ ! -e {tmp_path}/updated ]; then echo "E: Unable to locate package $2" >&2; exit 100; fi
echo fake > "$2_1.0-1_all.deb"
""")
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}")
    deb = assets.DebianPackages(tmp_path / "cache").deb("libcgal-demo")
    assert deb == tmp_path / "cache/downloads/libcgal-demo_1.0-1_all.deb" and deb.is_file()
    assert log.read_text().splitlines() == ["download libcgal-demo", "update", "download libcgal-demo"]


# -------------------------------------------------------------------------------------- user folders


_OFF_TETRA = "OFF\n# a tetrahedron\n4 4 6\n0 0 0\n2 0 0\n0 3 0\n0 0 4\n3 0 2 1\n3 0 1 3\n3 0 3 2\n3 1 2 3\n"
_OBJ_TRI = "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n"


def test_folder_of_obj_and_off_files_is_indexed(tmp_path: Path) -> None:
    root = tmp_path / "my meshes"
    (root / "Chairs").mkdir(parents=True)
    (root / "animals").mkdir()
    (root / ".hidden").mkdir()
    (root / "Chairs/a.obj").write_text(_OBJ_TRI)
    (root / "Chairs/b.off").write_text(_OFF_TETRA)
    (root / "Chairs/b.obj").write_text(_OBJ_TRI)  # same stem as b.off: ids keep extensions
    (root / "animals/bunny.off").write_text(_OFF_TETRA)
    (root / "loose.stl").write_bytes(b"solid x\nfacet normal 0 0 1\nouter loop\nvertex 0 0 0\nvertex 1 0 0\n"
                                     b"vertex 0 1 0\nendloop\nendfacet\nendsolid x\n")
    (root / "Chairs/empty.obj").write_text("")
    (root / "Chairs/broken.obj").write_bytes(bytes(range(256)) * 8)
    (root / "Chairs/nofaces.stl").write_bytes(b"solid x\nendsolid x\n")
    (root / "readme.txt").write_text("not a mesh")
    (root / ".hidden/c.obj").write_text(_OBJ_TRI)
    cache = tmp_path / "cache"
    assets.index_folder(root, name="mine", cache_dir=cache, licence="CC-BY-4.0", author="me")
    index = assets.load_index(cache)
    meshes = index.meshes(source="folder-mine")
    rejected = json.loads((cache / "manifests" / "folder-mine.json").read_text())["rejected"]
    assert [(Path(r["path"]).name, r["reason"].split(" (")[0]) for r in rejected] == [
        ("broken.obj", "not a text OBJ file"), ("empty.obj", "empty file"),
        ("nofaces.stl", "not an STL file")]
    assert [m.id for m in meshes] == [
        "folder-mine/Chairs/a", "folder-mine/Chairs/b.obj", "folder-mine/Chairs/b.off", "folder-mine/animals/bunny",
        "folder-mine/loose",
    ]
    by_id = {m.id: m for m in meshes}
    assert index.classes() == ["animals", "chairs", "my_meshes"]
    assert by_id["folder-mine/loose"].format == "stl" and by_id["folder-mine/loose"].path == root / "loose.stl"
    bunny = by_id["folder-mine/animals/bunny"]
    assert bunny.format == "obj" and bunny.path == cache / "meshes/folder-mine/animals/bunny.obj"
    assert bunny.bbox == ((0.0, 0.0, 0.0), (2.0, 3.0, 4.0)) and bunny.num_faces == 4
    obj_lines = bunny.path.read_text().splitlines()
    assert sum(line.startswith("v ") for line in obj_lines) == 4
    assert "f 1 3 2" in obj_lines  # 0-based OFF indices become 1-based OBJ indices
    assert bunny.licence == "CC-BY-4.0" and bunny.author == "me" and bunny.origin == str(root / "animals/bunny.off")
    assert [m.id for m in index.meshes(classes=["animals"])] == ["folder-mine/animals/bunny"]
    with pytest.raises(assets.UnknownClassError, match="'sofa'"):
        index.meshes(classes="sofa")
    with pytest.raises(assets.UnknownClassError, match="no meshes from source 'nope'"):
        index.meshes(source="nope")


def test_shapenet_folder_is_indexed(tmp_path: Path) -> None:
    root = tmp_path / "ShapeNetCore.v2"
    for synset, model in (("03001627", "c1"), ("03001627", "c0"), ("04379243", "t0"), ("09999999", "x")):
        models = root / synset / model / "models"
        models.mkdir(parents=True)
        (models / "model_normalized.obj").write_text(_OBJ_TRI)
    (root / "03001627/c0/models/model_normalized.json").write_text(
        json.dumps({"min": [-0.5, -0.4, -0.3], "max": [0.5, 0.4, 0.3], "centroid": [0, 0, 0]}))
    (root / "03001627/broken/models").mkdir(parents=True)  # no OBJ: skipped
    (root / "taxonomy.json").write_text("[]")
    cache = tmp_path / "cache"
    assets.index_shapenet(root, cache_dir=cache)
    index = assets.load_index(cache)
    assert [m.id for m in index.meshes(source="shapenet")] == [
        "shapenet/03001627/c0", "shapenet/03001627/c1", "shapenet/04379243/t0", "shapenet/09999999/x"]
    assert index.classes("shapenet") == ["chair", "synset_09999999", "table"]
    c0 = index.mesh("shapenet/03001627/c0")
    assert c0.bbox == ((-0.5, -0.4, -0.3), (0.5, 0.4, 0.3)) and c0.up_axis == "y"
    assert c0.raw_category == "03001627" and c0.path == root / "03001627/c0/models/model_normalized.obj"
    with pytest.raises(FileNotFoundError, match="no ShapeNetCore.v2 model"):
        assets.index_shapenet(tmp_path / "cache", cache_dir=tmp_path / "other")


def test_user_folder_gone_names_the_index_command(tmp_path: Path) -> None:
    root = tmp_path / "objs"
    (root / "vase").mkdir(parents=True)
    (root / "vase/v.obj").write_text(_OBJ_TRI)
    cache = tmp_path / "cache"
    assets.index_folder(root, cache_dir=cache)
    shutil.rmtree(root)
    with pytest.raises(assets.AssetMissingError, match=r"folder-objs: 1 missing.*index --folder .*objs --name objs"):
        assets.load_index(cache)
    assert len(assets.load_index(cache, check_files=False).meshes()) == 1
    assets.remove_source("folder-objs", cache_dir=cache)
    assert assets.load_index(cache).meshes() == []


# ------------------------------------------------------------------------------- index & errors


def test_missing_index_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(assets.IndexMissingError) as err:
        assets.load_index(tmp_path / "nothing")
    message = str(err.value)
    assert str(tmp_path / "nothing" / "index.json") in message
    assert "python -m pipeline.assets fetch" in message
    assert isinstance(err.value, FileNotFoundError)


def test_default_cache_dir_comes_from_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import paths

    monkeypatch.setattr(paths, "CACHE_DIR", tmp_path / "c")
    with pytest.raises(assets.IndexMissingError, match=str(tmp_path / "c" / "index.json")):
        assets.load_index()


def test_index_is_sorted_and_rejects_duplicate_ids(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (tmp_path / "b/z").mkdir(parents=True)
    (tmp_path / "b/a").mkdir(parents=True)
    (tmp_path / "b/z/m.obj").write_text(_OBJ_TRI)
    (tmp_path / "b/a/m2.obj").write_text(_OBJ_TRI)
    assets.index_folder(tmp_path / "b", name="b", cache_dir=cache)
    data = json.loads((cache / "index.json").read_text())
    ids = [m["id"] for m in data["meshes"]]
    assert ids == sorted(ids) == ["folder-b/a/m2", "folder-b/z/m"]
    first = (cache / "index.json").read_bytes()
    assets.build_index(cache)
    assert (cache / "index.json").read_bytes() == first  # deterministic
    clone = json.loads((cache / "manifests/folder-b.json").read_text())
    clone["source"] = "folder-c"
    (cache / "manifests/folder-c.json").write_text(json.dumps(clone))
    with pytest.raises(assets.AssetError, match="claimed twice"):
        assets.build_index(cache)


def test_env_and_skimage_sources_fetch_for_real(tmp_path: Path) -> None:
    pytest.importorskip("OpenEXR")
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("needs the bpy wheel's data files")
    cache = tmp_path / "cache"
    assets.fetch("env,skimage", cache_dir=cache)
    index = assets.load_index(cache)
    envs = index.environments()
    assert [e.name for e in envs] == ["city", "courtyard", "forest", "interior", "night", "studio", "sunrise",
                                      "sunset"]
    assert all(e.path.is_file() and e.path.parent == cache / "environments/bpy" for e in envs)
    assert all(e.licence == "CC0-1.0" and e.resolution == (1024, 512) for e in envs)
    textures = index.textures("skimage")
    assert [t.id for t in textures] == ["skimage/brick", "skimage/grass", "skimage/gravel"]
    import skimage.data
    from skimage import io as skio

    np.testing.assert_array_equal(skio.imread(textures[0].path), skimage.data.brick())


def test_pipeline_assets_does_not_import_bpy_or_ray() -> None:
    code = "import sys, pipeline.assets; print('bpy' in sys.modules, 'ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.split() == ["False", "False"]


def test_parse_sources() -> None:
    assert assets.parse_sources(None) == list(assets.FETCH_SOURCES)
    assert assets.parse_sources("gimp, sweethome3d") == ["sweethome3d", "gimp"]
    with pytest.raises(ValueError, match="unknown sources \\['meshes'\\]"):
        assets.parse_sources("meshes")


# ------------------------------------------------------------------------------------------- CLI


def test_cli_help_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        assets.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "fetch" in out and "index" in out and "list" in out
    with pytest.raises(SystemExit):
        assets.main(["fetch", "--help"])
    assert "--only" in capsys.readouterr().out
    assert assets.main(["--cache-dir", str(tmp_path / "none"), "list"]) == 1
    assert assets.main(["--cache-dir", str(tmp_path), "fetch", "--only", "bogus"]) == 1


def test_cli_index_and_list(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "m/cups").mkdir(parents=True)
    (tmp_path / "m/cups/c.obj").write_text(_OBJ_TRI)
    cache = str(tmp_path / "cache")
    assert assets.main(["--cache-dir", cache, "index", "--folder", str(tmp_path / "m"), "--name", "m"]) == 0
    assert "folder-m: 1 meshes" in capsys.readouterr().out
    assert assets.main(["--cache-dir", cache, "list", "--meshes", "--class", "cups", "--json"]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [(r["id"], r["class"]) for r in records] == [("folder-m/cups/c", "cups")]
