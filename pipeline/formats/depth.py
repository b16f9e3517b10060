"""Depth code of docs/formats.md §2: planar depth in metres <-> uint16 millimetres.

The millimetre code is what `png_depth` (§2) and the `depth` datasets of the scene files (§3) hold:

- ``0``: nothing was hit (the EXR holds ``inf``);
- ``1 .. 65534``: ``round(depth_m * 1000)``, i.e. millimetres, 1 mm .. 65.534 m (a depth below 0.5 mm is
  stored as 1 so that it can never read as "nothing hit");
- ``65535``: a surface farther than 65.534 m (saturated: the exact depth is lost).

Rounding to the nearest millimetre bounds the error of a round trip by 0.5 mm.

The seed's 8-bit code (`png_targets` channel 2, kept so that the original's readers get what they expect) is
:func:`encode_depth_cm8`: centimetres, saturating at 2.55 m.
"""

from __future__ import annotations

import logging

import numpy as np

logger = logging.getLogger(__name__)

#: Code of a pixel where no surface was hit.
NO_HIT = 0
#: Code of a surface beyond the representable range.
BEYOND_RANGE = 65535
#: Largest depth (metres) stored exactly (to the millimetre).
MAX_DEPTH_M = 65.534
#: Metres per code step.
STEP_M = 0.001


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """Encodes planar depth to the uint16 millimetre code.

    Args:
        depth_m: float array of any shape, metres; ``inf`` (or NaN) where nothing was hit.

    Returns:
        uint16 array of the same shape: 0 = no hit, 1..65534 mm, 65535 = beyond 65.534 m.

    Raises:
        ValueError: if a finite depth is negative (planar depth in front of a camera is never negative).
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    finite = np.isfinite(depth)
    if np.any(depth[finite] < 0):
        raise ValueError(f"negative depth {depth[finite].min():.6g} m; planar depth must be >= 0")
    mm = np.rint(np.where(finite, depth, 0.0) / STEP_M)
    code = np.clip(mm, 1, BEYOND_RANGE).astype(np.uint16)
    code[~finite] = NO_HIT
    return code


def decode_depth(code: np.ndarray, beyond: float = np.nan) -> np.ndarray:
    """Decodes the uint16 code to metres.

    Args:
        code: uint16 array from :func:`encode_depth`.
        beyond: value for saturated pixels (code 65535); NaN by default, ``np.inf`` to keep "far".

    Returns:
        float32 array of the same shape, metres; NaN where nothing was hit.
    """
    code = np.asarray(code)
    depth = code.astype(np.float32) * np.float32(STEP_M)
    depth[code == NO_HIT] = np.nan
    depth[code == BEYOND_RANGE] = beyond
    return depth


#: Seed code: centimetres per step, and the code of "2.55 m or farther, or nothing hit".
SEED_STEP_M = 0.01
SEED_FAR = 255


def encode_depth_cm8(depth_m: np.ndarray) -> np.ndarray:
    """The seed's 8-bit depth: ``min(round(depth_m * 100), 255)``, nothing hit = 255.

    The original clipped Blender's depth (which is ~1e10 where nothing was hit) to 2.55 m in 1 cm steps, so both
    "nothing hit" and "2.55 m or farther" read 255; the lossless depth is the millimetre code of `png_depth`.

    Args:
        depth_m: float array of any shape, metres; ``inf`` (or NaN) where nothing was hit.

    Returns:
        uint8 array of the same shape.
    """
    depth = np.asarray(depth_m, dtype=np.float64)
    cm = np.rint(np.where(np.isfinite(depth), depth, np.inf) / SEED_STEP_M)
    return np.clip(np.nan_to_num(cm, posinf=SEED_FAR), 0, SEED_FAR).astype(np.uint8)
