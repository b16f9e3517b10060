"""Orchestration without Blender, one sub-package per job: assets, distribution, formats, layouts, quality."""
