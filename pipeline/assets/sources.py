"""Fetch real meshes, textures and environment maps from the package registries, and index them.

Sources (see docs/assets.md for licences and the index format):

| source | package | what |
| --- | --- | --- |
| `sweethome3d` | Debian `sweethome3d-furniture` | 820 furniture models (OBJ + MTL + textures) in 5 `.sh3f` catalogues |
| `cgal` | Debian `libcgal-demo` | CGAL's sample OFF meshes (bunny, armadillo, ...), converted to OBJ |
| `gimp` | Debian `gimp-data`, `gimp-data-extras` | GIMP `.pat` patterns decoded to PNG |
| `skimage` | scikit-image | brick, grass, gravel textures as PNG |
| `env` | the bpy wheel | Blender's 8 CC0 HDR world maps (`.exr`) |
| `shapenet`, `folder-NAME` | user folders | ShapeNetCore.v2, any folder of OBJ/PLY/GLB/GLTF/STL/OFF files |

Everything lands under `paths.CACHE_DIR` (env `CACHE_DIR`): one manifest per source in `manifests/`, written
last so that an existing manifest means the source is complete, and the merged `index.json` that
`load_index()` reads. This module imports neither bpy nor ray: render/ imports it to pick assets.

    python -m pipeline.assets fetch [--only sweethome3d,cgal,gimp,skimage,env]
    python -m pipeline.assets index [--shapenet DIR] [--folder DIR [--name NAME]]
    python -m pipeline.assets list [--meshes|--textures|--environments] [--source S] [--class C]
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import re
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from core import publish
from core.asset_index import (
    FORMAT_VERSION,
    INDEX_NAME,
    AssetError,
    AssetIndex,
    EnvironmentAsset,
    Manifest,
    MeshAsset,
    TextureAsset,
    cache_root,
    load_index,
)
from core.off_mesh import OffFormatError, read_off, write_obj
from pipeline.assets.classes import folder_class, shapenet_class, sweethome3d_class
from pipeline.assets.gimp_pattern import read_pattern
from pipeline.assets.mesh_check import mesh_problem
from pipeline.assets.sh3f import Catalogue, extract_piece, read_catalogue, safe_name

logger = logging.getLogger(__name__)

#: Registry sources `fetch` knows, in fetch order.
FETCH_SOURCES = ("sweethome3d", "cgal", "gimp", "skimage", "env")
MESH_FORMATS = {".obj": "obj", ".ply": "ply", ".glb": "glb", ".gltf": "gltf", ".stl": "stl", ".off": "off"}

SH3D_PACKAGE = "sweethome3d-furniture"
CGAL_PACKAGE = "libcgal-demo"
GIMP_PACKAGES = ("gimp-data", "gimp-data-extras")
#: Licence of each Sweet Home 3D catalogue, as Debian's copyright file states it (checked at fetch time).
SH3D_LICENCES = {
    "BlendSwap-CC-0": "CC0-1.0",
    "BlendSwap-CC-BY": "CC-BY-3.0",
    "KatorLegaz": "CC-BY-3.0-US",
    "Reallusion": "CC-BY-3.0-US",
    "Scopia": "CC-BY-3.0",
}
_DEBIAN_LICENCE_NAMES = {"CC0": "CC0-1.0", "CC-BY-3.0": "CC-BY-3.0", "CC-BY-3.0-USA": "CC-BY-3.0-US"}
GIMP_LICENCES = {"gimp-data": "GPL-3.0-or-later", "gimp-data-extras": "GPL-2.0-or-later"}
CGAL_LICENCE = "GPL-3.0-or-later"
SKIMAGE_TEXTURES = {
    "brick": "CC0Textures (Bricks25), via scikit-image",
    "grass": "linolafett (DeviantArt Grass-01), via scikit-image",
    "gravel": "CC0Textures (Gravel04), via scikit-image",
}
ENV_AUTHOR = "Greg Zaal (Poly Haven), via Blender"



class FetchError(AssetError):
    """A download, unpacking or conversion step failed; the message names the package and the error."""

# ------------------------------------------------------------------------------------------- helpers


def _write_png_atomic(path: Path, pixels: np.ndarray) -> None:
    from skimage import io as skio  # heavy import, only when writing

    image = pixels[:, :, 0] if pixels.ndim == 3 and pixels.shape[2] == 1 else pixels
    with publish.Staged(path) as staged:
        skio.imsave(staged.path, image, check_contrast=False)


def _manifest_path(cache: Path, source: str) -> Path:
    return cache / "manifests" / f"{source}.json"


def _read_manifest(path: Path) -> Manifest | None:
    """The manifest at `path`, or None when absent, unreadable or from another format version."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, json.JSONDecodeError) as err:
        logger.warning("ignoring unreadable manifest %s: %s", path, err)
        return None
    if data.get("format_version") != FORMAT_VERSION:
        logger.warning("ignoring manifest %s of format %s (expected %d)", path, data.get("format_version"),
                       FORMAT_VERSION)
        return None
    return Manifest.from_json(data)


def _missing_paths(manifest: Manifest) -> list[Path]:
    return [p for p in manifest.paths() if not p.exists()]


def _write_manifest(cache: Path, manifest: Manifest) -> Path:
    path = _manifest_path(cache, manifest.source)
    publish.write_json(path, manifest.to_json(), sort_keys=False)
    return path


@contextlib.contextmanager
def _cache_lock(cache: Path) -> Iterator[None]:
    """Hold an exclusive lock on the cache so two fetches never write the same files."""
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            logger.info("waiting for another process that holds %s", cache / ".lock")
            fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


# ------------------------------------------------------------------------------------- Debian packages


_LISTS_MISSING = ("Unable to locate package", "has no installation candidate", "No packages found",
                  "Can't select candidate")


class DebianPackages:
    """Downloads (`apt-get download`) and unpacks (`dpkg-deb -x`) Debian packages under `cache/downloads`.

    Args:
        cache: the cache root.
        deb_dir: a folder of already downloaded `.deb` files to use instead of apt (offline machines).
        keep: keep `.deb` files and unpacked trees after the sources that need them are complete.
    """

    def __init__(self, cache: Path, deb_dir: Path | None = None, keep: bool = False) -> None:
        self.root = cache / "downloads"
        self.deb_dir = deb_dir
        self.keep = keep
        self._updated = False

    def _find(self, folder: Path, package: str) -> Path | None:
        found = sorted(folder.glob(f"{package}_*.deb")) if folder.is_dir() else []
        return found[-1] if found else None

    def _apt(self, args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(["apt-get", *args], cwd=cwd, capture_output=True, text=True, timeout=3600,
                                  check=False)
        except FileNotFoundError as err:
            raise FetchError(
                f"apt-get is not available, so {args[-1]!r} cannot be downloaded. Fix: run on Debian/Ubuntu, or "
                f"download the .deb elsewhere and pass --deb-dir DIR"
            ) from err

    def deb(self, package: str) -> Path:
        """Path of the package's `.deb`, downloading it when needed.

        Raises:
            FetchError: naming the package and apt's error output.
        """
        if self.deb_dir is not None:
            found = self._find(self.deb_dir, package)
            if found is None:
                raise FetchError(f"no {package}_*.deb in --deb-dir {self.deb_dir}")
            return found
        found = self._find(self.root, package)
        if found is not None:
            return found
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = publish.temp_path(self.root / f"apt-{package}")
        tmp.mkdir()
        try:
            logger.info("apt-get download %s", package)
            result = self._apt(["download", package], tmp)
            if result.returncode != 0 and any(s in result.stderr for s in _LISTS_MISSING) and not self._updated:
                logger.info("apt has no list for %s; running apt-get update once", package)
                update = self._apt(["update"], tmp)
                self._updated = True
                if update.returncode != 0:
                    raise FetchError(f"apt-get update (needed for {package}) failed with exit "
                                     f"{update.returncode}: {update.stderr.strip()[-2000:]}")
                result = self._apt(["download", package], tmp)
            if result.returncode != 0:
                raise FetchError(f"apt-get download {package} failed with exit {result.returncode}: "
                                 f"{result.stderr.strip()[-2000:]}")
            debs = sorted(tmp.glob(f"{package}_*.deb"))
            if not debs:
                raise FetchError(f"apt-get download {package} succeeded but left no {package}_*.deb in {tmp}")
            target = self.root / debs[-1].name
            os.replace(debs[-1], target)
            return target
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def version(deb: Path) -> str:
        """The `Version` field of a `.deb`."""
        try:
            result = subprocess.run(["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True,
                                    check=False)
        except FileNotFoundError as err:
            raise FetchError("dpkg-deb is not available; install dpkg to unpack Debian packages") from err
        if result.returncode != 0:
            raise FetchError(f"{deb} is not a valid Debian package: {result.stderr.strip()}")
        return result.stdout.strip()

    def unpack(self, package: str) -> tuple[Path, str]:
        """Unpack the package (downloading it if needed) and return (tree, version)."""
        deb = self.deb(package)
        version = self.version(deb)
        tree = self.root / package
        marker = tree / ".unpacked"
        if marker.exists() and marker.read_text().strip() == deb.name:
            return tree, version
        if tree.exists():
            shutil.rmtree(tree)
        tmp = publish.temp_path(tree)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], capture_output=True, text=True, check=False)
        if result.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise FetchError(f"dpkg-deb -x {deb.name} ({package}) failed: {result.stderr.strip()}")
        (tmp / ".unpacked").write_text(deb.name + "\n")
        os.replace(tmp, tree)
        return tree, version

    def clean(self, package: str) -> None:
        """Delete the package's download and unpacked tree (unless keeping, or using --deb-dir)."""
        if self.keep:
            return
        shutil.rmtree(self.root / package, ignore_errors=True)
        if self.deb_dir is None:
            for deb in sorted(self.root.glob(f"{package}_*.deb")):
                deb.unlink()


# ---------------------------------------------------------------------------------------- sweethome3d


def debian_copyright_licences(text: str) -> dict[str, str]:
    """Map `Files:` patterns to `License:` names in a machine-readable Debian copyright file."""
    result: dict[str, str] = {}
    for block in re.split(r"\n\s*\n", text):
        files = re.search(r"^Files:\s*(.+)$", block, re.M)
        licence = re.search(r"^License:\s*(\S+)", block, re.M)
        if files and licence:
            for pattern in files.group(1).split():
                result[pattern] = licence.group(1)
    return result


def catalogue_licence(catalogue: str, copyright_licences: dict[str, str]) -> str:
    """SPDX-style licence of a Sweet Home 3D catalogue: Debian's copyright file first, then the built-in table."""
    debian = copyright_licences.get(f"{catalogue}/*")
    if debian is not None:
        licence = _DEBIAN_LICENCE_NAMES.get(debian, debian)
        if catalogue in SH3D_LICENCES and SH3D_LICENCES[catalogue] != licence:
            logger.warning("catalogue %s: Debian says %s, built-in table says %s; using Debian's",
                           catalogue, licence, SH3D_LICENCES[catalogue])
        return licence
    if catalogue in SH3D_LICENCES:
        return SH3D_LICENCES[catalogue]
    logger.warning("catalogue %s: licence unknown (not in the Debian copyright file)", catalogue)
    return "unknown"


def index_catalogue(sh3f: Path, dest_root: Path, licence: str, origin: str = "") -> list[MeshAsset]:
    """Unpack every model of one `.sh3f` catalogue into `dest_root/<catalogue>/<piece_id>/` and index it.

    Idempotent: a catalogue folder holding `catalogue.json` is complete and is read back instead. The folder
    is built under a `.tmp-` name and renamed into place after `catalogue.json` is written.

    Args:
        sh3f: the catalogue zip.
        dest_root: where catalogue folders go (`CACHE_DIR/meshes/sweethome3d`).
        licence: licence of every model in the catalogue.
        origin: text prefixed to each mesh's `origin` (package and version).
    """
    name = sh3f.stem
    dest = dest_root / name
    done = dest / "catalogue.json"
    if done.exists():
        meshes = [MeshAsset.from_json(d) for d in json.loads(done.read_text(encoding="utf-8"))["meshes"]]
        if all(m.path.exists() for m in meshes):
            logger.info("catalogue %s already unpacked (%d models)", name, len(meshes))
            return meshes
        logger.warning("catalogue %s is incomplete on disk; unpacking it again", name)
    tmp = publish.temp_path(dest)
    shutil.rmtree(tmp, ignore_errors=True)
    started = time.monotonic()
    meshes = []
    try:
        with zipfile.ZipFile(sh3f) as archive:
            catalogue: Catalogue = read_catalogue(archive, source=str(sh3f))
            for k, piece in enumerate(catalogue.pieces):
                obj, missing = extract_piece(archive, piece, tmp / piece.piece_id)
                final = dest / obj.relative_to(tmp)
                meshes.append(MeshAsset(
                    id=f"sweethome3d/{name}/{piece.piece_id}",
                    source="sweethome3d",
                    class_name=sweethome3d_class(piece.name, piece.tags, piece.piece_id),
                    raw_category=piece.category,
                    name=piece.name,
                    path=final,
                    format=obj.suffix.lower().lstrip("."),
                    licence=licence,
                    author=piece.creator,
                    size_cm=piece.size_cm,
                    up_axis="y",
                    model_rotation=piece.model_rotation,
                    tags=piece.tags,
                    origin=f"{origin}{sh3f.name}:/{piece.model}",
                    missing_textures=missing,
                ))
                if (k + 1) % 100 == 0:
                    logger.info("  %s: %d/%d models unpacked (%.1f s)", name, k + 1, len(catalogue.pieces),
                                time.monotonic() - started)
        meshes.sort()
        publish.write_json(tmp / "catalogue.json", sort_keys=False, obj={
            "format_version": FORMAT_VERSION, "catalogue": name, "catalogue_id": catalogue.catalogue_id,
            "licence": licence, "licence_text": catalogue.licence_text, "meshes": [m.to_json() for m in meshes],
        })
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (zipfile.BadZipFile, OSError, ValueError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise FetchError(f"unpacking catalogue {sh3f} failed: {err}") from err
    logger.info("catalogue %s: %d models in %.1f s", name, len(meshes), time.monotonic() - started)
    return meshes


def _fetch_sweethome3d(cache: Path, debs: DebianPackages) -> Manifest:
    tree, version = debs.unpack(SH3D_PACKAGE)
    copyright_file = tree / "usr/share/doc" / SH3D_PACKAGE / "copyright"
    licences = debian_copyright_licences(copyright_file.read_text(encoding="utf-8")) if copyright_file.exists() else {}
    catalogues = sorted(tree.rglob("*.sh3f"))
    if not catalogues:
        raise FetchError(f"{SH3D_PACKAGE} {version} holds no *.sh3f catalogue under {tree}")
    dest_root = cache / "meshes" / "sweethome3d"
    dest_root.mkdir(parents=True, exist_ok=True)
    publish.remove_dead_debris(dest_root)
    manifest = Manifest(source="sweethome3d", packages={SH3D_PACKAGE: version})
    for sh3f in catalogues:
        licence = catalogue_licence(sh3f.stem, licences)
        manifest.meshes += index_catalogue(sh3f, dest_root, licence, origin=f"{SH3D_PACKAGE} {version}: ")
    return manifest


# --------------------------------------------------------------------------------------------- cgal


def convert_off(src: Path, dst: Path, comment: str = "") -> tuple[tuple[tuple[float, float, float], ...], int]:
    """Convert an OFF mesh to OBJ at `dst`; return its bbox and face count.

    Raises:
        OffFormatError: the OFF is malformed or has no faces.
    """
    mesh = read_off(src)
    if not mesh.faces:
        raise OffFormatError(f"{src}: no faces (a point set, not a mesh)")
    write_obj(mesh, dst, comment=comment)
    return mesh.bbox, len(mesh.faces)


def _fetch_cgal(cache: Path, debs: DebianPackages) -> Manifest:
    tree, version = debs.unpack(CGAL_PACKAGE)
    tarballs = sorted(tree.rglob("data.tar.gz"))
    if not tarballs:
        raise FetchError(f"{CGAL_PACKAGE} {version}: no data.tar.gz under {tree}")
    dest = cache / "meshes" / "cgal"
    publish.remove_dead_debris(dest.parent)
    tmp = publish.temp_path(dest)
    tmp.mkdir(parents=True)
    manifest = Manifest(source="cgal", packages={CGAL_PACKAGE: version})
    started = time.monotonic()
    try:
        with tarfile.open(tarballs[0]) as tar:
            members = sorted((m for m in tar.getmembers()
                              if m.isfile() and re.fullmatch(r"data/meshes/[^/]+\.off", m.name)), key=lambda m: m.name)
            for k, member in enumerate(members):
                stem = safe_name(Path(member.name).stem)
                raw = tmp / f"{stem}.off"
                with tar.extractfile(member) as src, open(raw, "wb") as out:  # type: ignore[union-attr]
                    shutil.copyfileobj(src, out)
                try:
                    bbox, faces = convert_off(raw, tmp / f"{stem}.obj",
                                              comment=f"{Path(member.name).name} from {CGAL_PACKAGE} {version}")
                except OffFormatError as err:
                    logger.warning("skipping %s: %s", member.name, err)
                    continue
                finally:
                    raw.unlink()
                manifest.meshes.append(MeshAsset(
                    id=f"cgal/{stem}", source="cgal", class_name=folder_class(stem), raw_category="cgal data/meshes",
                    name=Path(member.name).stem, path=dest / f"{stem}.obj", format="obj", licence=CGAL_LICENCE,
                    author="CGAL project", bbox=bbox, num_faces=faces,  # type: ignore[arg-type]
                    origin=f"{CGAL_PACKAGE} {version}: {tarballs[0].name}:{member.name}",
                ))
                if (k + 1) % 40 == 0:
                    logger.info("  cgal: %d/%d meshes converted (%.1f s)", k + 1, len(members),
                                time.monotonic() - started)
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except (tarfile.TarError, OSError) as err:
        raise FetchError(f"reading CGAL meshes from {tarballs[0]} failed: {err}") from err
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return manifest


# ------------------------------------------------------------------------------------------ textures


def pattern_texture(pat: Path, rel_id: str, dest: Path, licence: str, author: str, origin: str) -> TextureAsset:
    """Decode one `.pat` to a PNG at `dest` and describe it."""
    pattern = read_pattern(pat)
    _write_png_atomic(dest, pattern.pixels)
    return TextureAsset(id=f"gimp/{rel_id}", source="gimp", name=pattern.name or pat.stem, path=dest,
                        licence=licence, author=author, size=(pattern.width, pattern.height),
                        channels=pattern.channels, origin=origin)


def _fetch_gimp(cache: Path, debs: DebianPackages) -> Manifest:
    manifest = Manifest(source="gimp")
    dest_root = cache / "textures" / "gimp"
    started = time.monotonic()
    for package in GIMP_PACKAGES:
        tree, version = debs.unpack(package)
        manifest.packages[package] = version
        pattern_dirs = sorted(p for p in tree.rglob("patterns") if p.is_dir())
        pats = sorted(p for d in pattern_dirs for p in d.rglob("*.pat"))
        if not pats:
            raise FetchError(f"{package} {version}: no .pat patterns under {tree}")
        for pat in pats:
            base = next(d for d in pattern_dirs if d in pat.parents)
            rel = pat.relative_to(base).with_suffix("")
            rel_id = "/".join(safe_name(part).lower() for part in rel.parts)
            try:
                texture = pattern_texture(pat, rel_id, dest_root / f"{rel_id}.png", GIMP_LICENCES[package],
                                          f"GIMP contributors ({package})",
                                          f"{package} {version}: /{pat.relative_to(tree)}")
            except ValueError as err:
                raise FetchError(f"decoding {pat.name} from {package} failed: {err}") from err
            manifest.textures.append(texture)
    ids = Counter(t.id for t in manifest.textures)
    dupes = sorted(i for i, c in ids.items() if c > 1)
    if dupes:
        raise FetchError(f"GIMP patterns with the same id in {GIMP_PACKAGES}: {dupes}")
    logger.info("gimp: %d patterns decoded in %.1f s", len(manifest.textures), time.monotonic() - started)
    return manifest


def _fetch_skimage(cache: Path, debs: DebianPackages) -> Manifest:
    import skimage
    import skimage.data

    manifest = Manifest(source="skimage", packages={"scikit-image": skimage.__version__})
    for name, author in SKIMAGE_TEXTURES.items():
        pixels = np.asarray(getattr(skimage.data, name)())
        dest = cache / "textures" / "skimage" / f"{name}.png"
        _write_png_atomic(dest, pixels)
        manifest.textures.append(TextureAsset(
            id=f"skimage/{name}", source="skimage", name=name, path=dest, licence="CC0-1.0", author=author,
            size=(pixels.shape[1], pixels.shape[0]), channels=1 if pixels.ndim == 2 else pixels.shape[2],
            origin=f"scikit-image {skimage.__version__}: skimage.data.{name}()",
        ))
    return manifest


# ----------------------------------------------------------------------------------------- env maps


def bpy_world_maps() -> tuple[list[Path], str]:
    """The bpy wheel's studio-light world `.exr` files (found without importing bpy) and the wheel's version.

    Raises:
        FetchError: bpy is not installed or ships no world maps.
    """
    spec = importlib.util.find_spec("bpy")
    if spec is None or spec.origin is None:
        raise FetchError("the bpy wheel is not installed, so its world maps cannot be copied. "
                         "Fix: install the project's dependencies, or fetch without env (--only ...)")
    root = Path(spec.origin).parent
    maps = sorted(root.glob("*/datafiles/studiolights/world/*.exr"))
    if not maps:
        raise FetchError(f"no datafiles/studiolights/world/*.exr under {root}")
    try:
        version = importlib.metadata.version("bpy")
    except importlib.metadata.PackageNotFoundError:
        version = maps[0].parents[3].name  # the wheel's "<major>.<minor>" data folder
    return maps, version


def _exr_resolution(path: Path) -> tuple[int, int]:
    try:
        import OpenEXR
    except ImportError:
        return (0, 0)
    window = OpenEXR.File(str(path), header_only=True).parts[0].header["dataWindow"]
    return (int(window[1][0] - window[0][0] + 1), int(window[1][1] - window[0][1] + 1))


def _fetch_env(cache: Path, debs: DebianPackages) -> Manifest:
    maps, version = bpy_world_maps()
    manifest = Manifest(source="env", packages={"bpy": version})
    dest_root = cache / "environments" / "bpy"
    licence_file = maps[0].parent / "license.txt"
    if licence_file.exists():
        publish.copy_file(licence_file, dest_root / "license.txt")
    for src in maps:
        dest = dest_root / src.name
        publish.copy_file(src, dest)
        manifest.environments.append(EnvironmentAsset(
            id=f"bpy/{src.stem}", source="env", name=src.stem, path=dest, licence="CC0-1.0", author=ENV_AUTHOR,
            resolution=_exr_resolution(dest), origin=f"bpy {version}: datafiles/studiolights/world/{src.name}",
        ))
    return manifest


_FETCHERS: dict[str, Callable[[Path, DebianPackages], Manifest]] = {
    "sweethome3d": _fetch_sweethome3d,
    "cgal": _fetch_cgal,
    "gimp": _fetch_gimp,
    "skimage": _fetch_skimage,
    "env": _fetch_env,
}
_SOURCE_PACKAGES = {"sweethome3d": (SH3D_PACKAGE,), "cgal": (CGAL_PACKAGE,), "gimp": GIMP_PACKAGES}


def parse_sources(text: str | Iterable[str] | None) -> list[str]:
    """Validate a source list ("sweethome3d,gimp" or an iterable); None means every source."""
    if text is None:
        return list(FETCH_SOURCES)
    items = [s.strip() for s in (text.split(",") if isinstance(text, str) else text) if s.strip()]
    unknown = [s for s in items if s not in _FETCHERS]
    if unknown or not items:
        raise ValueError(f"unknown sources {unknown or items}; choose from {', '.join(FETCH_SOURCES)}")
    return [s for s in FETCH_SOURCES if s in items]


def fetch(sources: str | Iterable[str] | None = None, cache_dir: str | Path | None = None,
          deb_dir: str | Path | None = None, force: bool = False, keep_downloads: bool = False) -> Path:
    """Fetch registry sources into the cache, then rebuild `index.json`.

    Idempotent: a source whose manifest exists and whose files all exist is skipped (unless `force`).

    Args:
        sources: subset of `FETCH_SOURCES` (comma-separated string or iterable); None = all.
        cache_dir: cache root; default `paths.CACHE_DIR`.
        deb_dir: use `.deb` files from this folder instead of `apt-get download`.
        force: fetch again even when complete.
        keep_downloads: keep `.deb` files and unpacked trees afterwards.

    Returns:
        Path of the rebuilt `index.json`.
    """
    cache = cache_root(cache_dir)
    chosen = parse_sources(sources)
    debs = DebianPackages(cache, Path(deb_dir).resolve() if deb_dir else None, keep=keep_downloads)
    with _cache_lock(cache):
        publish.remove_dead_debris(cache / "downloads")
        for source in chosen:
            existing = _read_manifest(_manifest_path(cache, source))
            if existing is not None and not force:
                missing = _missing_paths(existing)
                if not missing:
                    logger.info("%s: already complete (%s)", source, _manifest_path(cache, source))
                    continue
                logger.warning("%s: %d indexed files are missing (first: %s); fetching again", source,
                               len(missing), missing[0])
            started = time.monotonic()
            logger.info("%s: fetching", source)
            manifest = _FETCHERS[source](cache, debs)
            _write_manifest(cache, manifest)  # the completion marker: written last
            for package in _SOURCE_PACKAGES.get(source, ()):
                debs.clean(package)
            logger.info("%s: %d meshes, %d textures, %d environments in %.1f s", source, len(manifest.meshes),
                        len(manifest.textures), len(manifest.environments), time.monotonic() - started)
        return build_index(cache)


# -------------------------------------------------------------------------------------- user folders


def index_shapenet(root: str | Path, cache_dir: str | Path | None = None) -> Path:
    """Index a ShapeNetCore.v2 folder (`<synset>/<model_id>/models/model_normalized.obj`) in place.

    The bounding box comes from `model_normalized.json` (`min`, `max`) when present. Files are not copied.

    Returns:
        Path of the rebuilt `index.json`.

    Raises:
        FileNotFoundError: `root` is not a folder or holds no ShapeNetCore.v2 model.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"ShapeNet folder {root} does not exist")
    cache = cache_root(cache_dir)
    manifest = Manifest(source="shapenet", packages={"ShapeNetCore.v2": str(root)},
                        fix=f"python -m pipeline.assets index --shapenet {root}")
    for synset in sorted(p for p in root.iterdir() if p.is_dir() and re.fullmatch(r"\d{8}", p.name)):
        cls = shapenet_class(synset.name)
        for model in sorted(p for p in synset.iterdir() if p.is_dir()):
            obj = model / "models" / "model_normalized.obj"
            if not obj.is_file():
                continue
            bbox = None
            meta = obj.with_suffix(".json")
            if meta.is_file():
                try:
                    data = json.loads(meta.read_text(encoding="utf-8"))
                    bbox = (tuple(float(v) for v in data["min"]), tuple(float(v) for v in data["max"]))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
                    logger.warning("ignoring unreadable %s: %s", meta, err)
            manifest.meshes.append(MeshAsset(
                id=f"shapenet/{synset.name}/{model.name}", source="shapenet", class_name=cls,
                raw_category=synset.name, name=model.name, path=obj, format="obj",
                licence="ShapeNet terms of use", author="ShapeNet", bbox=bbox,  # type: ignore[arg-type]
                up_axis="y", origin=str(obj),
            ))
            if len(manifest.meshes) % 5000 == 0:
                logger.info("  shapenet: %d models indexed", len(manifest.meshes))
    if not manifest.meshes:
        raise FileNotFoundError(f"no ShapeNetCore.v2 model under {root} "
                                "(expected <synset>/<model_id>/models/model_normalized.obj)")
    logger.info("shapenet: %d models in %d classes", len(manifest.meshes),
                len({m.class_name for m in manifest.meshes}))
    with _cache_lock(cache):
        _write_manifest(cache, manifest)
        return build_index(cache)


def index_folder(root: str | Path, name: str | None = None, cache_dir: str | Path | None = None,
                 licence: str = "unknown", author: str = "") -> Path:
    """Index a folder of OBJ/PLY/GLB/GLTF/STL/OFF meshes; class = the file's parent folder name.

    Files stay where they are, except OFF meshes, which Blender cannot import: they are converted to OBJ
    under `CACHE_DIR/meshes/folder-<name>/`. The source is called `folder-<name>`.

    Args:
        root: the folder, searched recursively (hidden entries skipped).
        name: source name; default the folder's name.
        cache_dir: cache root; default `paths.CACHE_DIR`.
        licence: licence recorded for every mesh.
        author: author recorded for every mesh.

    Returns:
        Path of the rebuilt `index.json`.
    """
    root = Path(root).expanduser().resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"mesh folder {root} does not exist")
    cache = cache_root(cache_dir)
    source = f"folder-{safe_name(name or root.name)}"
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for filename in sorted(filenames):
            path = Path(dirpath) / filename
            if not filename.startswith(".") and path.suffix.lower() in MESH_FORMATS:
                files.append(path)
    if not files:
        raise FileNotFoundError(f"no mesh file ({', '.join(sorted(MESH_FORMATS))}) under {root}")
    stems = Counter(f.relative_to(root).with_suffix("").as_posix() for f in files)
    converted_root = cache / "meshes" / source
    manifest = Manifest(source=source, packages={"folder": str(root)},
                        fix=f"python -m pipeline.assets index --folder {root} --name {source[len('folder-'):]}")
    with _cache_lock(cache):
        for path in sorted(files):
            rel = path.relative_to(root)
            key = rel.with_suffix("").as_posix()
            mesh_id = f"{source}/{key if stems[key] == 1 else rel.as_posix()}"
            fmt = MESH_FORMATS[path.suffix.lower()]
            target, bbox, faces = path, None, None
            if fmt == "off":
                target = converted_root / rel.with_suffix(".obj")
                try:
                    bbox, faces = convert_off(path, target, comment=f"converted from {path}")
                except OffFormatError as err:
                    logger.warning("rejecting %s: %s", path, err)
                    manifest.rejected.append({"path": str(path), "reason": str(err)})
                    continue
                fmt = "obj"
            else:
                problem = mesh_problem(path)
                if problem is not None:
                    logger.warning("rejecting %s: %s", path, problem)
                    manifest.rejected.append({"path": str(path), "reason": problem})
                    continue
            cls_folder = path.parent.name if path.parent != root else root.name
            manifest.meshes.append(MeshAsset(
                id=mesh_id, source=source, class_name=folder_class(cls_folder), raw_category=cls_folder,
                name=path.stem, path=target, format=fmt, licence=licence, author=author,
                bbox=bbox, num_faces=faces, origin=str(path),  # type: ignore[arg-type]
            ))
        logger.info("%s: %d meshes in %d classes, %d rejected", source, len(manifest.meshes),
                    len({m.class_name for m in manifest.meshes}), len(manifest.rejected))
        _write_manifest(cache, manifest)
        return build_index(cache)


def remove_source(source: str, cache_dir: str | Path | None = None) -> Path:
    """Drop a source's manifest (its files stay) and rebuild the index."""
    cache = cache_root(cache_dir)
    path = _manifest_path(cache, source)
    if not path.exists():
        raise FileNotFoundError(f"no source {source!r} in {cache / 'manifests'}")
    with _cache_lock(cache):
        path.unlink()
        return build_index(cache)


# ------------------------------------------------------------------------------------------- index


def build_index(cache_dir: str | Path | None = None) -> Path:
    """Merge every manifest under `CACHE_DIR/manifests/` into `CACHE_DIR/index.json` (atomic write).

    Raises:
        AssetError: two sources claim the same id.
    """
    cache = cache_root(cache_dir)
    manifests = [m for p in sorted((cache / "manifests").glob("*.json")) if (m := _read_manifest(p))]
    meshes = sorted(m for man in manifests for m in man.meshes)
    textures = sorted(t for man in manifests for t in man.textures)
    environments = sorted(e for man in manifests for e in man.environments)
    for kind, items in (("mesh", meshes), ("texture", textures), ("environment", environments)):
        dupes = sorted(i for i, c in Counter(a.id for a in items).items() if c > 1)
        if dupes:
            raise AssetError(f"{kind} ids claimed twice in {cache / 'manifests'}: {dupes[:5]}")
    index = {
        "format_version": FORMAT_VERSION,
        "cache_dir": str(cache),
        "sources": {
            man.source: {
                "packages": dict(sorted(man.packages.items())), "fix": man.fix, "meshes": len(man.meshes),
                "textures": len(man.textures), "environments": len(man.environments),
            }
            for man in sorted(manifests, key=lambda m: m.source)
        },
        "meshes": [m.to_json() for m in meshes],
        "textures": [t.to_json() for t in textures],
        "environments": [e.to_json() for e in environments],
    }
    path = cache / INDEX_NAME
    publish.write_json(path, index, sort_keys=False)
    logger.info("index %s: %d meshes, %d textures, %d environments from %d sources", path, len(meshes),
                len(textures), len(environments), len(manifests))
    return path


# --------------------------------------------------------------------------------------------- CLI


def _summary(index: AssetIndex) -> str:
    lines = [repr(index)]
    for source in index.sources():
        meshes = [m for m in index._meshes if m.source == source]
        lines.append(f"  {source}: {len(meshes)} meshes, {len(index.textures(source))} textures, "
                     f"{sum(e.source == source for e in index.environments())} environments")
        if meshes:
            counts = Counter(m.class_name for m in meshes)
            lines.append("    classes: " + ", ".join(f"{c} {n}" for c, n in sorted(counts.items())))
    return "\n".join(lines)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline.assets",
        description="Fetch real meshes, textures and environment maps from the package registries into "
                    "CACHE_DIR and index them (see docs/assets.md).",
    )
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="cache root (default: paths.CACHE_DIR, env CACHE_DIR)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fetch", help="download and unpack registry assets, then rebuild the index",
                       description="Download (apt-get download), unpack and index the registry sources. "
                                   "Sources already complete are skipped.")
    p.add_argument("--only", default=None,
                   help=f"comma-separated subset of: {', '.join(FETCH_SOURCES)} (default: all)")
    p.add_argument("--deb-dir", type=Path, default=None,
                   help="folder of already downloaded .deb files to use instead of apt-get download")
    p.add_argument("--force", action="store_true", help="fetch again even when a source is complete")
    p.add_argument("--keep-downloads", action="store_true",
                   help="keep .deb files and unpacked packages under CACHE_DIR/downloads")

    p = sub.add_parser("index", help="rebuild index.json; optionally add a ShapeNet or mesh folder",
                       description="Rebuild CACHE_DIR/index.json from the per-source manifests, after adding "
                                   "a user folder when one is given.")
    p.add_argument("--shapenet", type=Path, default=None,
                   help="ShapeNetCore.v2 root (<synset>/<model_id>/models/model_normalized.obj)")
    p.add_argument("--folder", type=Path, default=None,
                   help="folder of OBJ/PLY/GLB/GLTF/STL/OFF files; class = each file's parent folder name")
    p.add_argument("--name", default=None, help="source name for --folder (default: the folder's name)")
    p.add_argument("--licence", default="unknown", help="licence recorded for --folder meshes")
    p.add_argument("--author", default="", help="author recorded for --folder meshes")
    p.add_argument("--remove", default=None, metavar="SOURCE", help="drop a source (e.g. folder-mine) from the index")

    p = sub.add_parser("list", help="summarise the index or list its assets",
                       description="Print counts per source and class, or list assets one per line.")
    kind = p.add_mutually_exclusive_group()
    kind.add_argument("--meshes", action="store_true", help="list meshes: id, class, path")
    kind.add_argument("--textures", action="store_true", help="list textures: id, size, path")
    kind.add_argument("--environments", action="store_true", help="list environment maps: id, path")
    p.add_argument("--source", default=None, help="only this source")
    p.add_argument("--class", dest="classes", action="append", default=None, help="only this class (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON records instead of text")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "fetch":
            started = time.monotonic()
            path = fetch(args.only, args.cache_dir, args.deb_dir, args.force, args.keep_downloads)
            cache = path.parent
            logger.info("done in %.1f s; cache %s holds %.1f MB", time.monotonic() - started, cache,
                        _du(cache) / 1e6)
            print(_summary(load_index(cache)))
        elif args.command == "index":
            if args.name and not args.folder:
                raise ValueError("--name goes with --folder")
            path = None
            if args.remove:
                path = remove_source(args.remove, args.cache_dir)
            if args.shapenet:
                path = index_shapenet(args.shapenet, args.cache_dir)
            if args.folder:
                path = index_folder(args.folder, args.name, args.cache_dir, args.licence, args.author)
            if path is None:
                cache = cache_root(args.cache_dir)
                with _cache_lock(cache):
                    path = build_index(cache)
            print(_summary(load_index(path.parent)))
        elif args.command == "list":
            index = load_index(args.cache_dir)
            if args.meshes:
                items: list[Any] = index.meshes(args.source, args.classes)
                rows = [f"{m.id}\t{m.class_name}\t{m.path}" for m in items]
            elif args.textures:
                items = index.textures(args.source)
                rows = [f"{t.id}\t{t.size[0]}x{t.size[1]}\t{t.path}" for t in items]
            elif args.environments:
                items = index.environments()
                rows = [f"{e.id}\t{e.path}" for e in items]
            else:
                print(_summary(index))
                return 0
            if args.json:
                print(json.dumps([i.to_json() for i in items], indent=1, ensure_ascii=False))
            else:
                print("\n".join(rows))
        else:
            raise ValueError(f"unknown command {args.command!r}")
    except (AssetError, FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 1
    return 0
