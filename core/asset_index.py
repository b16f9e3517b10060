"""The asset index as render/ and pipeline/ read it: its data model, `load_index`, and its errors.

`pipeline.assets` fetches assets and writes `CACHE_DIR/index.json` (docs/assets.md); render/ picks meshes,
textures and environment maps from it through this module without importing pipeline/.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from typing import Any

import paths

FORMAT_VERSION = 1
INDEX_NAME = "index.json"
FETCH_COMMAND = "python -m pipeline.assets fetch"


# ---------------------------------------------------------------------------------------- the JSON of an asset

#: JSON keys that differ from the field names.
_JSON_KEYS = {"class_name": "class"}
#: Values of required fields that index files written by older code may lack.
_LOOSE_DEFAULTS = {"licence": "unknown", "name": "", "raw_category": ""}


def _plain(value: Any) -> Any:
    """A field value as JSON: paths as strings, tuples (also nested, e.g. a bbox) as lists."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


def _frozen(value: Any) -> Any:
    """JSON lists back as (nested) tuples, so that the frozen dataclasses stay hashable and ordered."""
    return tuple(_frozen(v) for v in value) if isinstance(value, list) else value


def _asset_to_json(asset: Any) -> dict[str, Any]:
    return {_JSON_KEYS.get(f.name, f.name): _plain(getattr(asset, f.name)) for f in fields(asset)}


def _asset_from_json(cls: type, d: dict[str, Any]) -> Any:
    """One asset of `cls` from its JSON; a missing key takes the field's default (KeyError if it has none)."""
    kwargs: dict[str, Any] = {}
    for f in fields(cls):
        key = _JSON_KEYS.get(f.name, f.name)
        if key in d:
            value = d[key]
        elif f.name in _LOOSE_DEFAULTS:
            value = _LOOSE_DEFAULTS[f.name]
        elif f.default is not MISSING or f.default_factory is not MISSING:
            continue
        else:
            raise KeyError(key)
        kwargs[f.name] = Path(value) if f.name == "path" else _frozen(value)
    return cls(**kwargs)


# ----------------------------------------------------------------------------------------------- errors


class AssetError(RuntimeError):
    """Base class of the errors this module raises."""


class IndexMissingError(AssetError, FileNotFoundError):
    """There is no `index.json` (or it is from another format version)."""


class AssetMissingError(AssetError, FileNotFoundError):
    """The index names files that are gone."""


class UnknownClassError(AssetError, ValueError):
    """A class or source asked for is not in the index."""


# ------------------------------------------------------------------------------------------ data model


@dataclass(frozen=True, order=True)
class MeshAsset:
    """One mesh in the index.

    Attributes:
        id: unique, stable id `<source>/<...>`, e.g. `sweethome3d/BlendSwap-CC-0/armchair`.
        source: `sweethome3d`, `cgal`, `shapenet` or `folder-<name>`.
        class_name: normalised lowercase class ("chair", "fruit", ...); JSON key `class`.
        raw_category: the source's own category (Sweet Home 3D room, ShapeNet synset id, folder name).
        name: human-readable name.
        path: absolute path of a file Blender 5 imports (`obj`, `ply`, `glb`, `gltf`, `stl`).
        format: file format of `path` (lowercase extension without dot).
        licence: SPDX-style id (`CC0-1.0`, `CC-BY-3.0`, `CC-BY-3.0-US`, ...) or a short statement.
        author: author/creator as the source states it ("" when unknown).
        size_cm: Sweet Home 3D catalogue size (width x, depth, height) in centimetres, else None.
        bbox: ((xmin, ymin, zmin), (xmax, ymax, zmax)) in file units when known, else None.
        up_axis: "y" when the file is known to be y-up (Sweet Home 3D, ShapeNet), else None.
        model_rotation: Sweet Home 3D's 3x3 row-major rotation to apply before sizing, else None.
        num_faces: face count when known, else None.
        tags: the source's tags.
        origin: where the file came from (package, version and member path, or the user path).
        missing_textures: textures the MTL names that the source does not ship.
    """

    id: str
    source: str
    class_name: str
    raw_category: str
    name: str
    path: Path
    format: str
    licence: str
    author: str = ""
    size_cm: tuple[float, float, float] | None = None
    bbox: tuple[tuple[float, float, float], tuple[float, float, float]] | None = None
    up_axis: str | None = None
    model_rotation: tuple[float, ...] | None = None
    num_faces: int | None = None
    tags: tuple[str, ...] = ()
    origin: str = ""
    missing_textures: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return _asset_to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MeshAsset:
        return _asset_from_json(cls, d)


@dataclass(frozen=True, order=True)
class TextureAsset:
    """One texture image (PNG) in the index.

    Attributes:
        id: unique id, e.g. `gimp/wood/wood1`, `skimage/brick`.
        source: `gimp` or `skimage`.
        name: display name (the name stored in the GIMP pattern).
        path: absolute path of the PNG.
        licence: SPDX-style id.
        author: author or provenance.
        size: (width, height) in pixels.
        channels: 1 grey, 2 grey + alpha, 3 RGB, 4 RGBA.
        origin: package, version and member path.
    """

    id: str
    source: str
    name: str
    path: Path
    licence: str
    author: str = ""
    size: tuple[int, int] = (0, 0)
    channels: int = 3
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        return _asset_to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TextureAsset:
        return _asset_from_json(cls, d)


@dataclass(frozen=True, order=True)
class EnvironmentAsset:
    """One HDR environment map (equirectangular OpenEXR, linear RGB).

    Attributes:
        id: unique id, e.g. `bpy/forest`.
        source: `env`.
        name: short name ("forest").
        path: absolute path of the `.exr`.
        licence: SPDX-style id (`CC0-1.0`).
        author: author or provenance.
        resolution: (width, height) in pixels, (0, 0) when unknown.
        origin: where the file was copied from.
    """

    id: str
    source: str
    name: str
    path: Path
    licence: str
    author: str = ""
    resolution: tuple[int, int] = (0, 0)
    origin: str = ""

    def to_json(self) -> dict[str, Any]:
        return _asset_to_json(self)

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EnvironmentAsset:
        return _asset_from_json(cls, d)


@dataclass
class Manifest:
    """What one source contributes to the index; `manifests/<source>.json` on disk."""

    source: str
    packages: dict[str, str] = field(default_factory=dict)
    meshes: list[MeshAsset] = field(default_factory=list)
    textures: list[TextureAsset] = field(default_factory=list)
    environments: list[EnvironmentAsset] = field(default_factory=list)
    #: How to recreate this source when its files are gone.
    fix: str = FETCH_COMMAND
    #: Mesh files left out at index time, each {"path": str, "reason": str} (sorted by path).
    rejected: list[dict[str, str]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": FORMAT_VERSION,
            "source": self.source,
            "packages": dict(sorted(self.packages.items())),
            "fix": self.fix,
            "meshes": [m.to_json() for m in sorted(self.meshes)],
            "textures": [t.to_json() for t in sorted(self.textures)],
            "environments": [e.to_json() for e in sorted(self.environments)],
            "rejected": sorted(self.rejected, key=lambda r: r["path"]),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Manifest:
        return cls(
            source=d["source"],
            packages=dict(d.get("packages", {})),
            fix=d.get("fix", FETCH_COMMAND),
            meshes=[MeshAsset.from_json(m) for m in d.get("meshes", [])],
            textures=[TextureAsset.from_json(t) for t in d.get("textures", [])],
            environments=[EnvironmentAsset.from_json(e) for e in d.get("environments", [])],
            rejected=[dict(r) for r in d.get("rejected", [])],
        )

    def paths(self) -> Iterator[Path]:
        for item in (*self.meshes, *self.textures, *self.environments):
            yield item.path


class AssetIndex:
    """The merged index of every source, as `load_index` reads it. All lists are sorted by id."""

    def __init__(self, path: Path, meshes: list[MeshAsset], textures: list[TextureAsset],
                 environments: list[EnvironmentAsset]) -> None:
        self.path = path
        self._meshes = sorted(meshes)
        self._textures = sorted(textures)
        self._environments = sorted(environments)
        self._by_id = {m.id: m for m in self._meshes}

    def __repr__(self) -> str:
        return (f"AssetIndex({self.path}, {len(self._meshes)} meshes, {len(self._textures)} textures, "
                f"{len(self._environments)} environments)")

    def sources(self) -> list[str]:
        """Sources that contribute at least one asset."""
        return sorted({a.source for a in (*self._meshes, *self._textures, *self._environments)})

    def meshes(self, source: str | None = None, classes: str | Iterable[str] | None = None) -> list[MeshAsset]:
        """Meshes, optionally of one source and/or some classes, sorted by id.

        Raises:
            UnknownClassError: `source` has no mesh, or a class is in no source of the index.
        """
        items = self._meshes
        if source is not None:
            items = [m for m in items if m.source == source]
            if not items:
                known = sorted({m.source for m in self._meshes})
                raise UnknownClassError(f"no meshes from source {source!r} in {self.path}; known: {known}")
        if classes is not None:
            wanted = {classes} if isinstance(classes, str) else set(classes)
            unknown = wanted - set(self.classes())
            if unknown:
                raise UnknownClassError(
                    f"classes {sorted(unknown)} are in no source of {self.path}; known classes: {self.classes()}"
                )
            items = [m for m in items if m.class_name in wanted]
        return list(items)

    def mesh(self, mesh_id: str) -> MeshAsset:
        """The mesh with this id (KeyError naming the id when absent)."""
        try:
            return self._by_id[mesh_id]
        except KeyError:
            raise KeyError(f"no mesh {mesh_id!r} in {self.path}") from None

    def classes(self, source: str | None = None) -> list[str]:
        """Sorted class names of the meshes (of one source when given)."""
        return sorted({m.class_name for m in self._meshes if source is None or m.source == source})

    def textures(self, source: str | None = None) -> list[TextureAsset]:
        """Textures (of one source when given), sorted by id."""
        return [t for t in self._textures if source is None or t.source == source]

    def environments(self) -> list[EnvironmentAsset]:
        """Environment maps, sorted by id."""
        return list(self._environments)


# ------------------------------------------------------------------------------------------- reading


def cache_root(cache_dir: str | Path | None) -> Path:
    return Path(cache_dir).expanduser().resolve() if cache_dir is not None else Path(paths.CACHE_DIR)



def load_index(cache_dir: str | Path | None = None, check_files: bool = True) -> AssetIndex:
    """Read `CACHE_DIR/index.json`.

    Args:
        cache_dir: cache root; default `paths.CACHE_DIR` (env `CACHE_DIR`).
        check_files: verify that every indexed file exists (one `stat` per asset).

    Raises:
        IndexMissingError: no index (or an index of another format version); the message names the fix.
        AssetMissingError: indexed files are gone; the message names them and the fix.
    """
    cache = cache_root(cache_dir)
    path = cache / INDEX_NAME
    if not path.is_file():
        raise IndexMissingError(f"no asset index at {path}. Fix: run `{FETCH_COMMAND}` "
                                f"(with CACHE_DIR={cache}) to download and index the assets")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise IndexMissingError(f"asset index {path} is not valid JSON ({err}). Fix: run "
                                "`python -m pipeline.assets index` to rebuild it") from err
    if data.get("format_version") != FORMAT_VERSION:
        raise IndexMissingError(f"asset index {path} has format {data.get('format_version')}, expected "
                                f"{FORMAT_VERSION}. Fix: run `{FETCH_COMMAND}`")
    index = AssetIndex(
        path,
        [MeshAsset.from_json(d) for d in data.get("meshes", [])],
        [TextureAsset.from_json(d) for d in data.get("textures", [])],
        [EnvironmentAsset.from_json(d) for d in data.get("environments", [])],
    )
    if check_files:
        missing: dict[str, list[Path]] = {}
        for item in (*index.meshes(), *index.textures(), *index.environments()):
            if not item.path.exists():
                missing.setdefault(item.source, []).append(item.path)
        if missing:
            fixes = {s: data.get("sources", {}).get(s, {}).get("fix", FETCH_COMMAND) for s in missing}
            lines = [f"{s}: {len(p)} missing, e.g. {p[0]} (fix: `{fixes[s]}`)" for s, p in sorted(missing.items())]
            raise AssetMissingError(f"asset index {path} names files that are gone:\n  " + "\n  ".join(lines))
    return index


