"""Blender loaded for a 1-thread renderer keeps no idle task-scheduler threads (render/blender_threads.py)."""

import os
import subprocess
import sys

import pytest

from tests.render.helpers import REPO

pytestmark = pytest.mark.blender

_SCRIPT = """
import os, sys
sys.path.insert(0, {repo!r})
from render.blender_threads import load_blender
before = sorted(os.sched_getaffinity(0))
applied = load_blender(1)
assert sorted(os.sched_getaffinity(0)) == before, "affinity not restored"
import bpy
scene = bpy.context.scene
scene.render.engine = "CYCLES"
scene.cycles.samples = 2
scene.render.resolution_x = scene.render.resolution_y = 16
scene.render.threads_mode = "FIXED"
scene.render.threads = 1
scene.render.filepath = {out!r}
bpy.ops.render.render(write_still=True)
print(applied, len(os.listdir("/proc/self/task")))
"""


def _threads_after_render(tmp_path, unlimited: bool) -> tuple[bool, int]:
    env = {**os.environ, "NSD_UNLIMITED_TASK_SCHEDULER": "1" if unlimited else "0"}
    code = _SCRIPT.format(repo=str(REPO), out=str(tmp_path / f"frame-{unlimited}.png"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    applied, threads = proc.stdout.strip().splitlines()[-1].split()
    return applied == "True", int(threads)


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs at least 2 CPUs to have idle scheduler threads")
def test_one_thread_renderer_has_no_spare_scheduler_threads(tmp_path):
    applied, limited = _threads_after_render(tmp_path, unlimited=False)
    not_applied, unlimited = _threads_after_render(tmp_path, unlimited=True)
    assert applied and not not_applied
    # pools sized from the CPU count (TBB's workers among them) shrink when Blender sees one CPU
    assert limited < unlimited, (limited, unlimited)


def test_load_blender_is_a_no_op_once_blender_is_loaded():
    code = (f"import sys; sys.path.insert(0, {str(REPO)!r}); import bpy; "
            "from render.blender_threads import load_blender; print(load_blender(1))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "False"
