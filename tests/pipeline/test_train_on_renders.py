"""ENR and RenderNet learn from Blender's renders, not only from the trainer's toy painter: a tiny set of real
Sweet Home 3D chairs is rendered (render.py), consolidated (preprocess_data.py -f) and fitted with
`python -m train fit`, whose loss must fall by a stated factor."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.train.conftest import TINY_ENR_GIN, TINY_RENDERNET_GIN

pytest.importorskip("bpy")
pytestmark = pytest.mark.blender

REPO = Path(__file__).resolve().parents[2]
RENDER = ["-p", "rendering.resolution = 32", "-p", "rendering.render_samples = 2", "-p", "rendering.denoise = 'none'"]
STEPS = 150


def _run(*args: str, env: dict) -> None:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, env={**os.environ, **env}, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, f"{args[:3]} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"


def _fit_on_renders(tmp_path: Path, config: str, bindings: list[str], gin_text: str) -> list[dict]:
    env = {"DATA_DIR": str(tmp_path / "data"), "RUNS_DIR": str(tmp_path / "runs")}
    _run("render.py", "--", "-d", "chairs", "-g", config, "--count", "3", *RENDER, *bindings, env=env)
    _run("preprocess_data.py", "-d", "chairs", "-f", "-q", env=env)
    (tmp_path / "tiny.gin").write_text(gin_text)
    _run("-m", "train", "fit", "--data", "chairs", "--run", str(tmp_path / "run"), "-g", str(tmp_path / "tiny.gin"),
         "--threads", "1", "-p", f"fit.max_steps = {STEPS}", env=env)
    return [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]


def test_enr_fits_rendered_chairs(tmp_path: Path):
    """Measured: loss (L1 + 0.05 (1 - SSIM)) ~0.75 over the first 10 steps -> ~0.08 over the last 20 (asserted
    >= 2.5x lower)."""
    hist = _fit_on_renders(tmp_path, "enr_rotation", ["-p", "enr_object.num_views = 8"], TINY_ENR_GIN)
    first, last = np.mean([h["loss"] for h in hist[:10]]), np.mean([h["loss"] for h in hist[-20:]])
    print(f"ENR on rendered chairs: loss {first:.3f} -> {last:.3f}")
    assert last < first / 2.5, (first, last)


def test_rendernet_fits_rendered_chairs(tmp_path: Path):
    """Measured: image MSE ~0.016 over the first 10 steps -> ~0.005 over the last 20 (asserted >= 2x lower).
    Before the model's camera and background matched the generator's (30 degrees, grey 0.349) it rose instead."""
    hist = _fit_on_renders(tmp_path, "rendernet", ["-p", "rendernet_object.num_views = 8",
                                                   "-p", "rendernet_object.voxel_dim = 32"],
                           TINY_RENDERNET_GIN + "RenderNet.fov_deg = 30.0\nRenderNet.background = 0.349\n")
    first, last = np.mean([h["image"] for h in hist[:10]]), np.mean([h["image"] for h in hist[-20:]])
    print(f"RenderNet on rendered chairs: image loss {first:.3f} -> {last:.3f}")
    assert last < first / 2, (first, last)
