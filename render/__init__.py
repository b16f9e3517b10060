"""Blender-side scene generation.

The package is split in two halves:

* *what to build*, as plain data with no Blender import: `spec` (scene description, with per-view and
  per-sample records, per-view lights and a declared split), `seeding`, `settings` (gin-configurable settings),
  `declared_layout` (the dataset.json layout derived from a spec, and the check of later samples against it)
  and `generators/` (functions that draw a `SceneSpec` from a seeded generator; camera geometry is
  `core.camera`). These import anywhere and are tested without Blender.
* *how Blender builds it*: `bpy_import` (the one place that imports bpy), `compat` (every Blender version
  difference), `blender_scene` (SceneSpec -> bpy objects), `view_output` (Blender EXR -> canonical EXR) and
  `dataset` (renders samples into a dataset folder, atomically).

Importing `render` itself imports no Blender module.
"""
