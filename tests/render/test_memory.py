"""One Blender process renders many samples without its memory growing."""

import json
import subprocess
import sys

import pytest

from tests.render.helpers import REPO

pytest.importorskip("bpy")
pytestmark = [pytest.mark.blender, pytest.mark.slow]

#: Allowed growth of resident memory between sample 20 and sample 200 (leaking data blocks costs ~2.6 MB a
#: scene, so a leak would show ~470 MB here).
BOUND_MB = 40.0

_SCRIPT = """
import json, sys
sys.path.insert(0, {repo!r})
from pathlib import Path
from render import generators
from render.gin_setup import parse_gin
from core.process import rss_mb
from render.dataset import DatasetRenderer
parse_gin(["render_multi"], ["rendering.resolution = 16", "rendering.render_samples = 1", "object.random_warp = 0.05"],
          Path({repo!r}) / "config")
r = DatasetRenderer(Path({out!r}), threads=1)
r.prepare()
rss = []
for i in range(200):
    r.render_sample(i)
    rss.append(rss_mb())
r.close()
import bpy
print(json.dumps({{"rss": rss, "objects": len(bpy.data.objects), "meshes": len(bpy.data.meshes),
                  "materials": len(bpy.data.materials)}}))
"""


def test_memory_stays_bounded_over_200_samples(tmp_path):
    code = _SCRIPT.format(repo=str(REPO), out=str(tmp_path / "mem"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    growth = result["rss"][-1] - result["rss"][19]
    assert growth < BOUND_MB, f"memory grew {growth:.1f} MB over 180 samples"
    assert result["objects"] == 1  # only the camera survives a sample
    assert result["materials"] == 0
    assert len(list((tmp_path / "mem" / "samples").iterdir())) == 200
