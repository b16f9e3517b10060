"""Root folders of the project; nothing else.

Each root can be overridden by an environment variable of the same name. Nothing here touches the disk:
folders are created by the code that writes into them.
"""

import os
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parent


def _root(name: str, default: Path) -> Path:
    value = os.environ.get(name)
    return Path(value).expanduser().resolve() if value else default


#: Rendered and consolidated datasets; `-d NAME` means `DATA_DIR / NAME`.
DATA_DIR = _root("DATA_DIR", REPO_DIR / "data")
#: User-provided external datasets (ShapeNetCore.v2, DTD, mesh folders).
ASSET_DIR = _root("ASSET_DIR", REPO_DIR / "assets")
#: Gin files.
CONFIG_DIR = _root("CONFIG_DIR", REPO_DIR / "config")
#: Fetched registry assets (meshes, textures) and their index; outside the repo by default.
CACHE_DIR = _root("CACHE_DIR", Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "neural-scene-data")
#: Training runs (checkpoints, TensorBoard logs, pictures).
RUNS_DIR = _root("RUNS_DIR", REPO_DIR / "runs")
