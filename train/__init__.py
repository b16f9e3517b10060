"""PyTorch trainer for neural scene rendering models (GQN first; RenderNet and ENR later).

Reads the scene-major HDF5 files of docs/formats.md section 3 and never imports Blender, Ray, `render` or
`pipeline`. Entry point: `python -m train {fit,evaluate,render}` (see docs/training.md).
"""
