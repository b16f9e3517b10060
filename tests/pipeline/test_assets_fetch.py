"""The real fetch: Debian packages from the registry into a cache, checked end to end (marked slow).

Cache: `$NSD_TEST_CACHE` if set, else `$CACHE_DIR` if the session sets it (so CI downloads once and the fetch
is then a no-op), else a fresh temporary folder.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import pytest

from pipeline import assets

logger = logging.getLogger(__name__)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def fetched(tmp_path_factory: pytest.TempPathFactory) -> tuple[assets.AssetIndex, float, int]:
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb (Debian)")
    shared = os.environ.get("NSD_TEST_CACHE") or os.environ.get("CACHE_DIR")
    cache = Path(shared) if shared else tmp_path_factory.mktemp("asset-cache")
    started = time.monotonic()
    assets.fetch(cache_dir=cache)
    seconds = time.monotonic() - started
    size = sum(p.stat().st_size for p in cache.rglob("*") if p.is_file())
    logger.warning("asset fetch into %s took %.1f s; cache holds %.1f MB", cache, seconds, size / 1e6)
    return assets.load_index(cache), seconds, size


def test_real_fetch_counts(fetched: tuple[assets.AssetIndex, float, int]) -> None:
    index, seconds, size = fetched
    sh3d = index.meshes(source="sweethome3d")
    assert len(sh3d) >= 800
    classes = index.classes("sweethome3d")
    assert "chair" in classes and "fruit" in classes
    assert len(index.meshes(source="sweethome3d", classes="chair")) >= 20
    assert {m.licence for m in sh3d} == {"CC0-1.0", "CC-BY-3.0", "CC-BY-3.0-US"}
    assert {m.raw_category for m in sh3d} >= {"Kitchen", "Living room", "Bedroom", "Office"}
    registry_meshes = [m for m in index.meshes() if m.source in ("sweethome3d", "cgal")]
    assert all(m.path.is_file() and m.format == "obj" for m in registry_meshes)
    cgal = {m.name: m for m in index.meshes(source="cgal")}
    assert {"armadillo", "bunny00", "cow", "ChineseDragon-10kv"} <= set(cgal)
    assert cgal["cow"].num_faces and cgal["cow"].num_faces > 1000
    gimp = index.textures("gimp")
    assert len(gimp) >= 150
    assert all(t.path.suffix == ".png" and t.path.is_file() for t in gimp)
    assert len(index.environments()) == 8
    assert len(index.textures("skimage")) == 3
    assert seconds >= 0 and size > 100e6


def test_real_fetch_is_idempotent(fetched: tuple[assets.AssetIndex, float, int]) -> None:
    index, _, _ = fetched
    cache = index.path.parent
    started = time.monotonic()
    assets.fetch(cache_dir=cache)
    assert time.monotonic() - started < 20
    assert [m.id for m in assets.load_index(cache).meshes()] == [m.id for m in index.meshes()]
