"""Orchestration without Blender: assets, distributed rendering, consolidation, validation, the demo."""
