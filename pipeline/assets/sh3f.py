"""Read Sweet Home 3D furniture catalogues (`.sh3f`) and unpack their models.

An `.sh3f` file is a zip holding `PluginFurnitureCatalog.properties` (a Java properties file, ISO-8859-1 with
`\\uXXXX` escapes) plus one folder per model (OBJ + MTL + textures + licence notes) and icons. The properties
give catalogue-wide keys (`id`, `name`, `license`, ...) and per-piece keys suffixed `#N`: `id#N`, `name#N`,
`category#N`, `tags#N` (comma separated), `model#N` (zip path of the OBJ, with a leading '/'), `icon#N`,
`width#N`, `depth#N`, `height#N` (centimetres), `creator#N`, `modelRotation#N` (3x3 row-major, optional),
`multiPartModel#N`, and others this module passes through untouched.
"""

from __future__ import annotations

import logging
import posixpath
import re
import shutil
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

logger = logging.getLogger(__name__)

PROPERTIES_NAME = "PluginFurnitureCatalog.properties"
_PIECE_KEY = re.compile(r"^(?P<field>[A-Za-z]+)#(?P<num>\d+)$")
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CatalogueError(ValueError):
    """An `.sh3f` catalogue is malformed: no properties file, a piece without model, a missing zip member."""


@dataclass(frozen=True)
class Piece:
    """One piece of furniture as the catalogue describes it.

    Attributes:
        number: N of the `#N` keys.
        piece_id: the id after the last '#' ("Blend Swap CC-0#armchair" -> "armchair"), made filesystem-safe.
        name: English name.
        category: the catalogue's raw category (a room: "Living room", "Kitchen", ...).
        tags: catalogue tags.
        model: zip member path of the model, without leading '/'.
        size_cm: (width, depth, height) in centimetres, or None when a value is missing.
        creator: the model's author as the catalogue gives it ("" when absent).
        model_rotation: 3x3 row-major rotation Sweet Home 3D applies to the model before sizing it, or None.
    """

    number: int
    piece_id: str
    name: str
    category: str
    tags: tuple[str, ...]
    model: str
    size_cm: tuple[float, float, float] | None
    creator: str
    model_rotation: tuple[float, ...] | None


@dataclass(frozen=True)
class Catalogue:
    """Catalogue-wide properties and its pieces (sorted by `number`)."""

    catalogue_id: str
    name: str
    licence_text: str
    pieces: tuple[Piece, ...]


def _unescape(value: str) -> str:
    out = []
    i = 0
    while i < len(value):
        c = value[i]
        if c != "\\" or i + 1 == len(value):
            out.append(c)
            i += 1
            continue
        n = value[i + 1]
        if n == "u" and re.fullmatch(r"[0-9A-Fa-f]{4}", value[i + 2 : i + 6] or ""):
            out.append(chr(int(value[i + 2 : i + 6], 16)))
            i += 6
            continue
        out.append({"t": "\t", "n": "\n", "r": "\r", "f": "\f"}.get(n, n))
        i += 2
    return "".join(out)


def parse_properties(text: str) -> dict[str, str]:
    """Parse Java `.properties` text: comments (`#`, `!`), `=`/`:`/blank separators, backslash line
    continuations and escapes (`\\uXXXX`, `\\t`, `\\=`, ...). Later keys win."""
    result: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].lstrip()
        i += 1
        if not line or line[0] in "#!":
            continue
        # Join continuation lines: an odd number of trailing backslashes continues the line.
        while (len(line) - len(line.rstrip("\\"))) % 2 == 1 and i < len(lines):
            line = line[:-1] + lines[i].lstrip()
            i += 1
        key_end = 0
        while key_end < len(line):
            c = line[key_end]
            if c == "\\":
                key_end += 2
                continue
            if c in "=: \t\f":
                break
            key_end += 1
        key = line[:key_end]
        rest = line[key_end:].lstrip(" \t\f")
        if rest[:1] in ("=", ":"):
            rest = rest[1:].lstrip(" \t\f")
        result[_unescape(key)] = _unescape(rest)
    return result


def _float_or_none(value: str | None) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except ValueError:
        return None


def safe_name(text: str) -> str:
    """Filesystem-safe version of an id: runs of characters other than `A-Za-z0-9._-` become '_'."""
    name = _SAFE.sub("_", text).strip("._")
    return name or "unnamed"


def parse_catalogue(properties: dict[str, str], source: str = "<catalogue>") -> Catalogue:
    """Build a `Catalogue` from parsed properties.

    Raises:
        CatalogueError: a piece lacks `id`, `name` or `model`, or two pieces share an id.
    """
    numbers = sorted({int(m["num"]) for key in properties if (m := _PIECE_KEY.match(key))})
    pieces = []
    seen: dict[str, int] = {}
    for n in numbers:
        get = properties.get
        raw_id, name, model = get(f"id#{n}"), get(f"name#{n}"), get(f"model#{n}")
        if not raw_id or not name or not model:
            raise CatalogueError(f"{source}: piece #{n} lacks id, name or model (id={raw_id!r}, model={model!r})")
        piece_id = safe_name(raw_id.rsplit("#", 1)[-1])
        if piece_id in seen:
            raise CatalogueError(f"{source}: pieces #{seen[piece_id]} and #{n} share the id {piece_id!r}")
        seen[piece_id] = n
        dims = [_float_or_none(get(f"{k}#{n}")) for k in ("width", "depth", "height")]
        rotation = None
        if get(f"modelRotation#{n}"):
            values = tuple(float(v) for v in get(f"modelRotation#{n}", "").split())
            if len(values) != 9:
                raise CatalogueError(f"{source}: piece #{n} modelRotation has {len(values)} numbers, expected 9")
            rotation = values
        pieces.append(
            Piece(
                number=n,
                piece_id=piece_id,
                name=name.strip(),
                category=get(f"category#{n}", "").strip(),
                tags=tuple(t.strip() for t in get(f"tags#{n}", "").split(",") if t.strip()),
                model=model.lstrip("/"),
                size_cm=None if None in dims else (dims[0], dims[1], dims[2]),  # type: ignore[arg-type]
                creator=get(f"creator#{n}", "").strip(),
                model_rotation=rotation,
            )
        )
    return Catalogue(
        catalogue_id=properties.get("id", ""),
        name=properties.get("name", ""),
        licence_text=properties.get("license", ""),
        pieces=tuple(pieces),
    )


def read_catalogue(archive: zipfile.ZipFile, source: str = "<sh3f>") -> Catalogue:
    """Read the catalogue of an open `.sh3f` zip (its English `PluginFurnitureCatalog.properties`)."""
    try:
        raw = archive.read(PROPERTIES_NAME)
    except KeyError as err:
        raise CatalogueError(f"{source}: no {PROPERTIES_NAME} in the archive; is this a furniture catalogue?") from err
    return parse_catalogue(parse_properties(raw.decode("latin-1")), source=source)


def _mtl_textures(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        fields = line.split()
        if fields and (fields[0].startswith("map_") or fields[0] in ("bump", "disp", "decal", "refl")):
            names.append(fields[-1])
    return names


def extract_piece(archive: zipfile.ZipFile, piece: Piece, dest: Path) -> tuple[Path, tuple[str, ...]]:
    """Unpack one piece's model folder (OBJ, MTL, textures, licence notes) into `dest`.

    A model inside a folder brings the whole folder; a model at the zip root brings itself, the MTL files it
    names and the textures they name.

    Returns:
        The OBJ path under `dest`, and the texture names its MTL files reference that are not in the folder
        (some upstream MTLs name absolute paths of their authors' machines).

    Raises:
        CatalogueError: the model file is not in the archive.
    """
    names = set(archive.namelist())
    if piece.model not in names:
        raise CatalogueError(f"piece {piece.piece_id!r}: model {piece.model!r} is not in the archive")
    folder = posixpath.dirname(piece.model)
    if folder:
        members = sorted(n for n in names if n.startswith(folder + "/") and not n.endswith("/"))
    else:
        members = [piece.model]
        obj_text = archive.read(piece.model).decode("latin-1")
        for line in obj_text.splitlines():
            if line.startswith("mtllib"):
                mtl = line.split(None, 1)[1].strip()
                if mtl in names:
                    members.append(mtl)
                    members.extend(t for t in _mtl_textures(archive.read(mtl).decode("latin-1")) if t in names)
        members = sorted(set(members))
    dest.mkdir(parents=True, exist_ok=True)
    for member in members:
        rel = PurePosixPath(member).relative_to(folder) if folder else PurePosixPath(member)
        if ".." in rel.parts or rel.is_absolute():
            raise CatalogueError(f"piece {piece.piece_id!r}: unsafe member path {member!r}")
        target = dest.joinpath(*rel.parts)
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(member) as src, open(target, "wb") as out:
            shutil.copyfileobj(src, out)
    obj_path = dest / posixpath.basename(piece.model)
    missing = []
    for mtl in sorted(obj_path.parent.rglob("*.mtl")):
        for tex in _mtl_textures(mtl.read_text(encoding="latin-1")):
            if not (mtl.parent / tex).exists():
                missing.append(tex)
    return obj_path, tuple(sorted(set(missing)))
