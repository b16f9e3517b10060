"""The layer boundaries are held by ruff (per-folder banned-api rules): an import across them fails the lint."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUFF = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")


def _lint(path: str, source: str) -> subprocess.CompletedProcess[str]:
    # --stdin-filename makes ruff pick the config of that folder without writing into the source tree
    return subprocess.run([RUFF, "check", "--no-cache", "--select", "TID251", "--stdin-filename", path, "-"],
                          input=source, capture_output=True, text=True, cwd=REPO, check=False)


@pytest.mark.parametrize("path, source", [
    ("render/probe.py", "import pipeline\n"),
    ("render/probe.py", "from pipeline.assets import load_index\n"),
    ("render/probe.py", "import ray\n"),
    ("render/probe.py", "from train import cli\n"),
    ("train/probe.py", "import bpy\n"),
    ("train/probe.py", "from render import spec\n"),
    ("train/probe.py", "import pipeline.layouts\n"),
    ("train/probe.py", "import ray\n"),
    ("pipeline/probe.py", "import bpy\n"),
    ("core/probe.py", "import render\n"),
    ("core/probe.py", "from pipeline.formats import hdf5\n"),
    ("core/probe.py", "import torch\n"),
    ("core/probe.py", "import h5py\n"),
])
def test_import_across_a_boundary_fails_ruff(path, source):
    result = _lint(path, source)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "TID251" in result.stdout and "is banned" in result.stdout


@pytest.mark.parametrize("path, source", [
    ("render/probe.py", "from core import asset_index\nfrom core.camera import on_sphere\n"),
    ("pipeline/probe.py", "from core import publish\nfrom render import spec\n"),
    ("train/probe.py", "from core.camera import on_sphere\nimport torch\n"),
])
def test_allowed_imports_pass_ruff(path, source):
    result = _lint(path, source)
    assert result.returncode == 0, result.stdout + result.stderr
