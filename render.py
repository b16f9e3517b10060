"""Render samples of a dataset: `python render.py -- -d NAME [-g GIN] [-p BINDING] [--start I --count N]`.

Also runs inside a stock Blender: `blender --background --python render.py -- -d NAME ...`; there the
project's virtual environment (.venv, or $NSD_SITE_PACKAGES) is added to Blender's Python path for gin,
numpy and OpenEXR. See `render/README.md`.
"""

import os
import site
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent


def _add_project_environment() -> None:
    """Inside a stock Blender, make the project and its environment importable."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    if "bpy" in sys.modules and not sys.modules["bpy"].app.binary_path == "":
        site_packages = os.environ.get("NSD_SITE_PACKAGES") or str(
            REPO / ".venv" / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages")
        if not Path(site_packages).is_dir():
            sys.exit(f"render.py: error: Blender's Python {sys.version.split()[0]} has no project environment at "
                     f"{site_packages}; run `make venv` (Python 3.11) or set NSD_SITE_PACKAGES")
        site.addsitedir(site_packages)


_add_project_environment()

from render.cli import main  # noqa: E402  (needs the path set above)

if __name__ == "__main__":
    sys.exit(main())
