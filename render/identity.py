"""What makes two samples belong to the same dataset (plain data, no Blender): the config hash, the seed, the
generator, the Blender version and thread count, and the digest of the asset catalogue the samples draw from.

`dataset.json`, every manifest line and every sidecar carry these, so a resumed render can check what is already
on disk against what it is about to add: another config, seed or re-indexed mesh folder is refused, with or
without `dataset.json` (docs/reliability.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from core import asset_index

from render.spec import SceneSpec

#: The identity keys, in the order messages name them.
KEYS = ("generator", "seed", "config_hash", "assets_digest", "blender_version", "threads")


def config_hash(config_str: str) -> str:
    """Hash of the gin bindings that decide what the samples look like (the `batch.*` range bindings excluded)."""
    lines = [line for line in config_str.splitlines() if line.strip() and not line.startswith("batch.")]
    return hashlib.sha256("\n".join(sorted(lines)).encode("utf-8")).hexdigest()


def _asset_files(spec: SceneSpec) -> set[str]:
    files = {o.mesh.source for o in spec.objects if ":" not in o.mesh.source}  # not "primitive:..." / "box:..."
    files |= {o.material.texture for o in spec.objects if o.material.texture}
    if spec.world.environment:
        files.add(spec.world.environment)
    return files


def assets_digest(spec: SceneSpec) -> str | None:
    """Digest of the asset-index sources a sample draws from (sample 0 of a dataset), or None for a scene of
    primitives and procedural materials only.

    Every asset of each source that holds one of the sample's files goes in, so re-indexing a mesh folder
    (a mesh added, removed or moved) changes the digest even when sample 0's own meshes stay.
    """
    files = _asset_files(spec)
    if not files:
        return None
    try:
        index = asset_index.load_index(check_files=False)
    except asset_index.AssetError:
        return hashlib.sha256(json.dumps(sorted(files)).encode()).hexdigest()  # files outside any index
    items = [*index.meshes(), *index.textures(), *index.environments()]
    source_of = {str(item.path): item.source for item in items}
    sources = sorted({source_of.get(f, "(not indexed)") for f in files})
    entries = sorted([item.source, item.id, str(item.path)] for item in items if item.source in sources)
    unindexed = sorted(f for f in files if f not in source_of)
    return hashlib.sha256(json.dumps([sources, entries, unindexed]).encode()).hexdigest()


def mismatches(expected: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """`key: found != expected` for every identity key both name and that differs (missing keys are skipped)."""
    out = []
    for key in KEYS:
        if key in expected and key in found and expected[key] != found[key]:
            def short(value: Any) -> str:
                return value[:12] if isinstance(value, str) and len(value) == 64 else repr(value)
            out.append(f"{key} {short(found[key])} != {short(expected[key])}")
    return out
