"""Helpers for tests that run render.py for real (as a subprocess, so every run gets a fresh Blender)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
#: Small, fast settings every render test starts from.
TINY = ["-p", "rendering.resolution = 32", "-p", "rendering.render_samples = 2", "-p", "rendering.render_exr = True"]


def run_render(data_dir: Path, name: str, *args: str, blender: str | None = None, env: dict | None = None,
               check: bool = True) -> subprocess.CompletedProcess:
    """Runs render.py with the venv's bpy wheel, or inside `blender` (a stock Blender binary) when given."""
    script = [str(REPO / "render.py"), "--", "-d", name, "--data_dir", str(data_dir), *args]
    cmd = [blender, "--background", "--factory-startup", "--python", *script] if blender else [sys.executable, *script]
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"render.py failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def sample_dirs(dataset_dir: Path) -> list[Path]:
    return sorted(p for p in (dataset_dir / "samples").iterdir() if p.name.isdigit())


def load_sample(sample_dir: Path) -> tuple[dict, list[dict[str, np.ndarray]]]:
    """The sidecar and, per view, the canonical channels."""
    from render.exr import read_exr

    sidecar = json.loads((sample_dir / "sample.json").read_text())
    return sidecar, [read_exr(sample_dir / v["file"]) for v in sidecar["views"]]


def probe_gin(folder: Path) -> str:
    """A gin file rendering tests/render/spec_generators.py's probe scene (records, view lights, split)."""
    path = folder / "probe.gin"
    path.write_text("import tests.render.spec_generators\n"
                    "dataset.generator = @probe_scene\ndataset.name = 'probe'\ndataset.seed = 5\n"
                    "rendering.denoise = 'none'\n")
    return str(path)
