"""The layout a dataset declares in `dataset.json` (docs/formats.md §1): how its samples consolidate.

The renderer writes the declaration from the generator's first sample before anything is rendered, and
checks every later sample against it; consolidation reads it instead of guessing from what it finds on disk.

    "layout": {
      "kind": "scene-major",              # or "sample-major" (one view per sample, §2 buckets)
      "views": 10,                         # views per sample (1 for sample-major)
      "image_format": "exr",               # view files: "exr" (canonical EXR) or "png" (sRGB colour only)
      "channels": ["rgb", "depth", ...],   # what each view file carries, from CHANNELS
      "view_records": {"azimuth": []},     # per-view numbers in the sidecar's views[i]["records"], with shapes
      "sample_records": {"light": [3]},    # per-sample numbers in the sidecar's "records", with shapes
      "split": "index % 12",               # or "declared": each sidecar names its "split"
      "sample_arrays": {"voxels": [64, 64, 64]}  # optional: per-sample arrays, each a file in the sample folder
    }

A per-sample array `NAME` of shape (D, D, D) is a uint8 0/1 occupancy grid stored as `NAME.binvox` in the sample
folder (render/voxels.py) and named in the sidecar's "arrays" (docs/formats.md §1). The key is written only when
a dataset has such arrays, so the declarations of datasets without them are unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.samples import SPLIT_RULE

DATASET_JSON = "dataset.json"
KINDS = ("sample-major", "scene-major")
IMAGE_FORMATS = ("exr", "png")
#: Per-view image channels a view file may carry: colour, planar depth, ids, world normals, albedo.
CHANNELS = ("rgb", "depth", "instance", "semantic", "normal", "albedo")
SPLIT_RULES = (SPLIT_RULE, "declared")


class LayoutError(ValueError):
    """A missing, unreadable or invalid layout declaration; the message names the file and the fix."""


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(n, int) and n > 0 for n in value):
        raise LayoutError(f"{where}: a record shape is a list of positive ints ([] for a number), got {value!r}")
    return tuple(value)


@dataclass(frozen=True)
class Layout:
    """A dataset's declared layout.

    Attributes:
        kind: "sample-major" (one view per sample) or "scene-major" (a row of `views` views per sample).
        views: views per sample.
        image_format: "exr" or "png".
        channels: per-view image channels the view files carry (a subset of CHANNELS, "rgb" first).
        view_records: per-view record name -> shape (() for a scalar), e.g. {"azimuth": (), "offset": (3,)}.
        sample_records: per-sample record name -> shape.
        split: "index % 12" or "declared" (each sidecar names its split).
        sample_arrays: per-sample array name -> shape, each a uint8 occupancy grid `NAME.binvox` in the sample
            folder, e.g. {"voxels": (64, 64, 64)}; consolidation stores it as a per-scene dataset.
    """

    kind: str
    views: int
    image_format: str
    channels: tuple[str, ...]
    view_records: dict[str, tuple[int, ...]] = field(default_factory=dict)
    sample_records: dict[str, tuple[int, ...]] = field(default_factory=dict)
    split: str = SPLIT_RULE
    sample_arrays: dict[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise LayoutError(f"layout kind {self.kind!r} is not one of {KINDS}")
        if not isinstance(self.views, int) or self.views < 1:
            raise LayoutError(f"layout views must be a positive int, got {self.views!r}")
        if self.kind == "sample-major" and self.views != 1:
            raise LayoutError(f"a sample-major layout has 1 view per sample, got {self.views}")
        if self.image_format not in IMAGE_FORMATS:
            raise LayoutError(f"layout image_format {self.image_format!r} is not one of {IMAGE_FORMATS}")
        unknown = [c for c in self.channels if c not in CHANNELS]
        if unknown or not self.channels or self.channels[0] != "rgb":
            raise LayoutError(f"layout channels {list(self.channels)} must start with 'rgb' and come from {CHANNELS}")
        if self.image_format == "png" and tuple(self.channels) != ("rgb",):
            raise LayoutError("PNG views carry colour only: channels must be ['rgb']")
        if self.split not in SPLIT_RULES:
            raise LayoutError(f"layout split {self.split!r} is not one of {SPLIT_RULES}")
        for name, shape in self.sample_arrays.items():
            if not name.isidentifier() or len(shape) != 3 or len(set(shape)) != 1:
                raise LayoutError(f"layout sample_arrays: {name!r} must be a name with a cubic (D, D, D) shape "
                                  f"(a voxel grid), got {list(shape)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "views": self.views,
            "image_format": self.image_format,
            "channels": list(self.channels),
            "view_records": {k: list(v) for k, v in sorted(self.view_records.items())},
            "sample_records": {k: list(v) for k, v in sorted(self.sample_records.items())},
            "split": self.split,
            # only when present: datasets without per-sample arrays keep their dataset.json bytes
            **({"sample_arrays": {k: list(v) for k, v in sorted(self.sample_arrays.items())}}
               if self.sample_arrays else {}),
        }

    @classmethod
    def from_json(cls, data: Any, where: str = "layout") -> Layout:
        """Parses a declaration; raises LayoutError naming `where` and the bad field."""
        if not isinstance(data, dict):
            raise LayoutError(f"{where}: the layout declaration must be a JSON object, got {type(data).__name__}")
        known = {"kind", "views", "image_format", "channels", "view_records", "sample_records", "split",
                 "sample_arrays"}
        extra = sorted(set(data) - known)
        if extra:
            raise LayoutError(f"{where}: unknown layout keys {extra}; known: {sorted(known)}")
        try:
            return cls(
                kind=data["kind"],
                views=data["views"],
                image_format=data["image_format"],
                channels=tuple(data["channels"]),
                view_records={k: _shape(v, where) for k, v in sorted(data.get("view_records", {}).items())},
                sample_records={k: _shape(v, where) for k, v in sorted(data.get("sample_records", {}).items())},
                split=data.get("split", SPLIT_RULE),
                sample_arrays={k: _shape(v, where) for k, v in sorted(data.get("sample_arrays", {}).items())},
            )
        except KeyError as err:
            raise LayoutError(f"{where}: the layout declaration lacks {err}") from None
        except LayoutError as err:
            raise LayoutError(f"{where}: {err}") from None


def read_dataset_json(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """`DATA_DIR/NAME/dataset.json`, parsed.

    Raises:
        LayoutError: the file is missing, not UTF-8 JSON, or not an object; the message names it and the fix.
    """
    path = Path(dataset_dir) / DATASET_JSON
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise LayoutError(f"{path} is missing: the folder holds no dataset rendered by this project "
                          "(render it with render.py or distributed_render.py)") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise LayoutError(f"{path} is not valid JSON ({err}); it is corrupt: restore it or re-render "
                          "the dataset into a new folder") from None
    if not isinstance(data, dict):
        raise LayoutError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def read_layout(dataset_dir: str | os.PathLike) -> Layout | None:
    """The declared layout of a dataset, or None for a dataset rendered before layouts were declared.

    Raises:
        LayoutError: dataset.json is missing or corrupt, or its declaration is invalid.
    """
    data = read_dataset_json(dataset_dir)
    if "layout" not in data:
        return None
    return Layout.from_json(data["layout"], where=str(Path(dataset_dir) / DATASET_JSON))
