"""Loads Blender with its task scheduler sized to the threads a renderer was given.

Blender sizes its TBB scheduler from the CPUs the process may use when `bpy` is first imported. A renderer that
asks Cycles for 1 thread still gets a pool of idle TBB workers that spin in `sched_yield` around every render
call: measured on 2 cores, one such process burns 8 s of system time per 10 s of rendering, and two of them slow
each other's render calls down by half (docs/benchmarks.md, "Distributed rendering"). A stock Blender binary
takes the same limit on its command line (`blender -t N`).

Importing this module does not import Blender; `load_blender` does. Setting the environment variable
`NSD_UNLIMITED_TASK_SCHEDULER=1` turns the limit off (bench/bench_distributed.py measures both ways).
"""

import os
import sys

UNLIMITED_ENV = "NSD_UNLIMITED_TASK_SCHEDULER"


def load_blender(threads: int) -> bool:
    """Imports Blender (render.bpy_import) with its task scheduler limited to `threads` CPUs.

    The process's CPU affinity is narrowed to `threads` of its CPUs for the import only and restored right after,
    so the operating system still places the render threads on any free core.

    Args:
        threads: Cycles threads of this renderer; 0 (all CPUs) or at least the CPU count leaves the scheduler alone.

    Returns:
        True if the limit was applied; False if Blender was already loaded (a stock Blender binary: use its `-t`)
        or no limit was needed.
    """
    if "bpy" in sys.modules:
        return False
    allowed = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    limit = 0 < threads < len(allowed) and os.environ.get(UNLIMITED_ENV) != "1"
    if limit:
        os.sched_setaffinity(0, allowed[:threads])
    try:
        import render.bpy_import  # noqa: F401
    finally:
        if limit:
            os.sched_setaffinity(0, allowed)
    return limit
