"""PyTorch trainer for neural scene rendering models: GQN, Equivariant Neural Rendering and RenderNet.

Reads the scene-major HDF5 files of docs/formats.md section 3 and never imports Blender, Ray, `render` or
`pipeline`. Entry point: `python -m train {fit,evaluate,render}` (see docs/training.md).

Importing this package sets `OMP_WAIT_POLICY=PASSIVE` unless the environment sets it: torch here runs on GNU
OpenMP, whose idle threads spin for a while before they sleep; on cores that other processes also use, 2
spinning torch threads trained GQN 2-3x slower than 1 thread (bench/bench_train.py, "Trainer under load"), while
passive threads sleep at once and keep the speed of the cores they get. libgomp reads the variable when torch
loads it, so this must run before the first `import torch`; `python -m train` does that.
"""

import logging as _logging
import os as _os
import sys as _sys

if "OMP_WAIT_POLICY" not in _os.environ:
    if "torch" in _sys.modules:
        _logging.getLogger(__name__).info(
            "torch was imported before train: its OpenMP threads keep their spinning wait policy; set "
            "OMP_WAIT_POLICY=PASSIVE in the environment (or import train first) on a shared machine")
    else:
        _os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
