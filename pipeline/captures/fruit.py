"""The fruit still-life captures of seed 000: `Scene{k}/` photo folders posed by two fixed tables.

    fruit_stills/
      Scene1/ ... Scene129/      # 12 photos each, posed by TABLE_12
      Scene130/ ... Scene235/    # 8 photos each, posed by TABLE_8

Photos are paired with the table's poses in sorted-name order (never directory order). A scene-major file
holds one view count, so one import takes one table: `table=12` imports the Scene folders numbered 1-129,
`table=8` those numbered 130-235 (import them into two datasets). Scene k gets scene index k, so the split
rule (k % 12) and the folder number agree.

The tables are the seed's labels: positions on a square (x, y in table units, not metres; z = 0), pitch 0,
yaw as the seed wrote it in sin/cos form (its 0.707 is sin 45 degrees; we store the exact angle). The corner
cameras face the centre; in the 12-view table the cameras between the corners face straight across the
square (perpendicular to its edge), not the centre. The photos carry no intrinsics: K is assumed from a
horizontal field of view of the framed image (46 degrees by default, the value the synthetic twin
`fruit_still_life` renders with), and the files say so (`K_assumed = True`).
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from core.samples import SPLITS, split_of
from pipeline.captures.capture import CapturePlan, PlannedScene, check_plan
from pipeline.captures.photos import SEED_FRAMING, Framing, list_photos, photo_size
from pipeline.captures.scene import CaptureError, assumed_intrinsics, cameras_from_xyzyp

logger = logging.getLogger(__name__)

#: (x, y, yaw in degrees) of the 12 views of scenes 1-129, in the order of the sorted photo names.
TABLE_12 = ((-1.0, -1.0, 45.0), (-0.5, -1.0, 90.0), (0.5, -1.0, 90.0), (1.0, -1.0, 135.0), (1.0, -0.5, 180.0),
            (1.0, 0.5, 180.0), (1.0, 1.0, -135.0), (0.5, 1.0, -90.0), (-0.5, 1.0, -90.0), (-1.0, 1.0, -45.0),
            (-1.0, 0.5, 0.0), (-1.0, -0.5, 0.0))
#: (x, y, yaw in degrees) of the 8 views of scenes 130-235.
TABLE_8 = ((-1.0, -1.0, 45.0), (0.0, -1.0, 90.0), (1.0, -1.0, 135.0), (1.0, 0.0, 180.0), (1.0, 1.0, -135.0),
           (0.0, 1.0, -90.0), (-1.0, 1.0, -45.0), (-1.0, 0.0, 0.0))
TABLES = {12: TABLE_12, 8: TABLE_8}
#: Scene numbers each table poses.
TABLE_SCENES = {12: range(1, 130), 8: range(130, 236)}
#: Horizontal field of view assumed for the framed image, degrees: the synthetic twin's (render/generators/fruit.py).
DEFAULT_FOV_DEG = 46.0
_SCENE_RE = re.compile(r"^Scene(\d+)$")


def table_xyzyp(views: int) -> np.ndarray:
    """float64 (V, 5) `[x, y, z, yaw, pitch]` of the 12- or 8-view table."""
    if views not in TABLES:
        raise CaptureError(f"fruit table {views!r} does not exist; use 12 (scenes 1-129) or 8 (scenes 130-235)")
    return np.array([[x, y, 0.0, math.radians(yaw), 0.0] for x, y, yaw in TABLES[views]])


def table_of_scene(k: int) -> int:
    """The table (12 or 8) that poses scene number `k`."""
    for views, scenes in TABLE_SCENES.items():
        if k in scenes:
            return views
    raise CaptureError(f"Scene{k}: the fruit captures number their scenes 1-235; rename the folder")


def plan_fruit(src: str | Path, table: int = 12, framing: Framing = SEED_FRAMING,
               fov_deg: float = DEFAULT_FOV_DEG, split: str | None = None, position_scale: float = 1.0) -> CapturePlan:
    """Checks a fruit still-life folder and plans the import of the scenes `table` poses.

    Args:
        src: the folder holding `Scene{k}/` (the unzipped fruit_stills_dataset).
        table: 12 (scenes 1-129) or 8 (scenes 130-235).
        framing: resize-then-crop of every photo (default the seed's: 96x72, box (16, 4, 80, 68)).
        fov_deg: horizontal field of view assumed for the framed image.
        split: put every scene in this split; None: k % 12 (0-9 train, 10 val, 11 test).
        position_scale: multiplies the table's x and y: 1 keeps the seed's table units; 0.6 gives the metres of
            the synthetic twin (`fruit_still_life.square_half_size`), so a model pretrained on the twin sees
            cameras at the same distances.

    Raises:
        CaptureError: a Scene folder with a photo missing or extra, an unreadable photo header, no scene of
            the table, or framed photos of different sizes; the message names the folder and the fix.
    """
    src = Path(src)
    xyzyp = table_xyzyp(table)
    if not position_scale > 0:
        raise CaptureError(f"position scale {position_scale} must be positive")
    xyzyp[:, :2] *= position_scale
    if not src.is_dir():
        raise CaptureError(f"{src}: no such folder; give the folder holding Scene1/ ... Scene235/")
    if split is not None and split not in SPLITS:
        raise CaptureError(f"split {split!r} is not one of {SPLITS}")
    numbered = []
    for entry in sorted(src.iterdir(), key=lambda p: p.name):
        m = _SCENE_RE.match(entry.name)
        if entry.is_dir() and m:
            numbered.append((int(m.group(1)), entry))
        elif not entry.name.startswith("."):
            logger.warning("%s: not a Scene{k} folder; left out", entry)
    scenes = []
    c2w = cameras_from_xyzyp(xyzyp).astype(np.float64)
    for k, folder in sorted(numbered):
        if table_of_scene(k) != table:
            continue
        photos = list_photos(folder)
        if len(photos) != table:
            fix = "add the missing photo" if len(photos) < table else "move the extra photos out"
            raise CaptureError(f"{folder}: {len(photos)} photos, but scenes {TABLE_SCENES[table].start}-"
                               f"{TABLE_SCENES[table].stop - 1} have {table} (one per pose of the table, paired in "
                               f"sorted-name order: {[p.name for p in photos][:14]}); {fix}, or remove the folder")
        scenes.append(PlannedScene(index=k, name=folder.name, photos=photos, sizes=[photo_size(p) for p in photos],
                                   xyzyp=xyzyp, cam_to_world=c2w, K=None, split=split or split_of(k)))
    if not scenes:
        others = sorted({table_of_scene(k) for k, _ in numbered} - {table})
        hint = f"; it holds scenes of the {others[0]}-view table: pass --table {others[0]}" if others else ""
        raise CaptureError(f"{src}: no Scene{{k}} folder with k in {TABLE_SCENES[table].start}-"
                           f"{TABLE_SCENES[table].stop - 1} (the {table}-view table){hint}")
    size = framing.output_size(*scenes[0].sizes[0])
    plan = CapturePlan(source=src, scenes=scenes, framing=framing, K_out=assumed_intrinsics(*size, fov_deg),
                       attrs={"importer": "fruit", "generator": "fruit_still_life_capture",
                              "source": str(src.resolve()), "fruit_table": table, "K_assumed": True,
                              "K_source": f"assumed: horizontal field of view {fov_deg} degrees of the framed image "
                                          "(the photos carry no intrinsics)",
                              "framing": framing.describe(),
                              "position_units": "fruit table units (not metres)" if position_scale == 1.0 else
                              f"fruit table units x {position_scale}"})
    check_plan(plan)
    return plan
