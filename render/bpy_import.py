"""The one place that imports Blender's Python modules, with a message that says how to get them."""

import sys

_HELP = (
    "Blender's Python module is not importable from {exe}.\n"
    "Either run inside the project's environment (`make venv`, then `.venv/bin/python render.py ...`),\n"
    "which installs the bpy==5.0.1 wheel (CPython 3.11 only), or run a stock Blender:\n"
    "`blender --background --python render.py -- ...`."
)

try:
    import bpy  # noqa: I001  (bpy first: the wheel makes bmesh and mathutils importable)
    import bmesh
    import mathutils
except ImportError as _err:  # pragma: no cover - depends on the interpreter
    raise ImportError(_HELP.format(exe=sys.executable)) from _err

__all__ = ["bpy", "bmesh", "mathutils"]
