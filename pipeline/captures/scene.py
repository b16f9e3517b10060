"""One imported scene as arrays (`SceneArrays`), the checks every importer shares, and the camera formulas that
turn 5-number viewpoints into camera matrices and camera matrices into viewpoints.

Every importer (DeepMind's TFRecords, the fruit still-life folders, a general capture folder) yields
`SceneArrays`; only `pipeline.captures.writer` turns them into files. Conventions are those of docs/formats.md:
world z up, OpenCV camera-to-world (x right, y down, z forward), K in pixels with (0, 0) at the top-left corner
of the top-left pixel, viewpoints in `core.camera.VIEWPOINT_ORDER`. Images stay uint8 sRGB here and in the files:
`train/data.py` is the one place that scales them (to [0, 1]; the seed's [-1, 1] is not reproduced).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core import camera


class CaptureError(ValueError):
    """Bad input to an importer; the message names the file and says how to fix it."""


@dataclass(frozen=True)
class SceneArrays:
    """One scene: V views with their cameras.

    Attributes:
        scene_index: int, the scene's index in its source (rows of a file are sorted by it).
        images: uint8 (V, H, W, 3) sRGB.
        viewpoints: float32 (V, 7) `[x, y, z, sin yaw, cos yaw, sin pitch, cos pitch]`.
        viewpoints_xyzyp: float32 (V, 5) `[x, y, z, yaw, pitch]`, radians.
        K: float32 (V, 3, 3) intrinsics of the stored images, pixels.
        cam_to_world: float32 (V, 4, 4) OpenCV convention.
    """

    scene_index: int
    images: np.ndarray
    viewpoints: np.ndarray
    viewpoints_xyzyp: np.ndarray
    K: np.ndarray
    cam_to_world: np.ndarray

    def __post_init__(self) -> None:
        v = self.images.shape[0] if self.images.ndim == 4 else -1
        expected = {"images": (v, *self.images.shape[1:3], 3), "viewpoints": (v, 7), "viewpoints_xyzyp": (v, 5),
                    "K": (v, 3, 3), "cam_to_world": (v, 4, 4)}
        dtypes = {"images": np.uint8}
        for name, shape in expected.items():
            arr = getattr(self, name)
            if arr.shape != shape or v < 1 or arr.dtype != dtypes.get(name, np.float32):
                raise ValueError(f"scene {self.scene_index}: {name} is {arr.dtype} {arr.shape}, expected "
                                 f"{np.dtype(dtypes.get(name, np.float32))} {shape} (V >= 1)")

    @property
    def views(self) -> int:
        return int(self.images.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(height, width) of the images."""
        return int(self.images.shape[1]), int(self.images.shape[2])


def viewpoints_from_xyzyp(xyzyp: np.ndarray) -> np.ndarray:
    """5-number viewpoints (..., 5) `[x, y, z, yaw, pitch]` -> 7-number (..., 7) in VIEWPOINT_ORDER, float32.

    The vectorised form of `core.camera.gqn_viewpoint` (tests hold the two equal); DeepMind's import runs it on
    millions of views, where a Python call per view would cost more than decoding the JPEGs.
    """
    xyzyp = np.asarray(xyzyp, dtype=np.float64)
    yaw, pitch = xyzyp[..., 3], xyzyp[..., 4]
    out = np.concatenate([xyzyp[..., :3], np.stack([np.sin(yaw), np.cos(yaw), np.sin(pitch), np.cos(pitch)], -1)],
                         axis=-1)
    return out.astype(np.float32)


def cameras_from_xyzyp(xyzyp: np.ndarray) -> np.ndarray:
    """OpenCV camera-to-world matrices of cameras at (x, y, z) looking along (yaw, pitch) with no roll.

    The camera of `core.camera.look_at(p, p + d)` with `d = (cos pitch cos yaw, cos pitch sin yaw, sin pitch)`
    (the direction `core.camera.on_sphere` uses), converted with `blender_to_opencv`, vectorised. Views whose
    direction is within look_at's degenerate cone around world z go through look_at itself, so both agree there.

    Args:
        xyzyp: (N, 5) `[x, y, z, yaw, pitch]`, radians.
    Returns:
        float32 (N, 4, 4).
    """
    xyzyp = np.asarray(xyzyp, dtype=np.float64).reshape(-1, 5)
    yaw, pitch = xyzyp[:, 3], xyzyp[:, 4]
    cp, sp, cy, sy = np.cos(pitch), np.sin(pitch), np.cos(yaw), np.sin(yaw)
    forward = np.stack([cp * cy, cp * sy, sp], -1)
    zero = np.zeros_like(sy)
    right = np.stack([sy, -cy, zero], -1)  # forward x world z, normalised (|forward_xy| = cos pitch)
    up = np.stack([-cy * sp, -sy * sp, cp], -1)  # right x forward, written out (np.cross costs more than the rest)
    c2w = np.zeros((len(xyzyp), 4, 4))
    c2w[:, :3, 0], c2w[:, :3, 1], c2w[:, :3, 2], c2w[:, :3, 3] = right, -up, forward, xyzyp[:, :3]
    c2w[:, 3, 3] = 1.0
    for i in np.flatnonzero(np.abs(sp) > 0.999):  # look_at swaps its up vector there: use it as is
        location = xyzyp[i, :3]
        c2w[i] = camera.blender_to_opencv(camera.look_at(location, camera.on_sphere(location, 1.0, yaw[i], pitch[i])))
    return c2w.astype(np.float32)


def xyzyp_from_cameras(cam_to_world: np.ndarray) -> np.ndarray:
    """`[x, y, z, yaw, pitch]` (N, 5) float64 of OpenCV camera-to-world matrices (N, 4, 4): centre and optical axis.

    Raises:
        CaptureError: a matrix whose rotation part is not a rotation (checked to 1e-3).
    """
    c2w = np.asarray(cam_to_world, dtype=np.float64).reshape(-1, 4, 4)
    out = np.zeros((len(c2w), 5))
    for i, m in enumerate(c2w):
        r = m[:3, :3]
        if not np.allclose(r.T @ r, np.eye(3), atol=1e-3) or np.linalg.det(r) < 0:
            raise CaptureError(f"camera-to-world #{i} {m.round(4).tolist()} has no rotation in its upper 3x3")
        yaw, pitch = camera.yaw_pitch(r[:, 2])
        out[i] = [*m[:3, 3], yaw, pitch]
    return out


def xyzyp_from_viewpoints(viewpoints: np.ndarray) -> np.ndarray:
    """7-number viewpoints (N, 7) -> `[x, y, z, yaw, pitch]` (N, 5) float64.

    Raises:
        CaptureError: a (sin, cos) pair off the unit circle by more than 0.01 (not a viewpoint in our order).
    """
    v = np.asarray(viewpoints, dtype=np.float64).reshape(-1, 7)
    for k, name in ((3, "yaw"), (5, "pitch")):
        norm = np.hypot(v[:, k], v[:, k + 1])
        bad = np.flatnonzero(np.abs(norm - 1.0) > 0.01)
        if len(bad):
            raise CaptureError(f"viewpoint #{int(bad[0])} {v[bad[0]].tolist()}: sin^2 + cos^2 of {name} is "
                               f"{norm[bad[0]] ** 2:.3f}, not 1; a 7-number viewpoint is {camera.VIEWPOINT_ORDER}")
    return np.concatenate([v[:, :3], np.arctan2(v[:, 3], v[:, 4])[:, None], np.arctan2(v[:, 5], v[:, 6])[:, None]], 1)


def scene_from_xyzyp(scene_index: int, images: np.ndarray, xyzyp: np.ndarray, K: np.ndarray) -> SceneArrays:
    """A scene whose cameras are given as 5-number viewpoints (no roll).

    Args:
        scene_index: the scene's index.
        images: uint8 (V, H, W, 3).
        xyzyp: (V, 5) `[x, y, z, yaw, pitch]`, radians.
        K: (3, 3) shared by every view, or (V, 3, 3).
    """
    xyzyp = np.asarray(xyzyp, dtype=np.float64).reshape(-1, 5)
    K = np.broadcast_to(np.asarray(K, dtype=np.float32), (len(xyzyp), 3, 3))
    return SceneArrays(scene_index, images, viewpoints_from_xyzyp(xyzyp), xyzyp.astype(np.float32),
                       np.ascontiguousarray(K), cameras_from_xyzyp(xyzyp))


def scene_from_cameras(scene_index: int, images: np.ndarray, cam_to_world: np.ndarray, K: np.ndarray) -> SceneArrays:
    """A scene whose cameras are given as OpenCV camera-to-world matrices (roll kept; viewpoints derived).

    Args:
        scene_index: the scene's index.
        images: uint8 (V, H, W, 3).
        cam_to_world: (V, 4, 4) OpenCV convention.
        K: (3, 3) shared by every view, or (V, 3, 3).
    """
    xyzyp = xyzyp_from_cameras(cam_to_world)
    K = np.broadcast_to(np.asarray(K, dtype=np.float32), (len(xyzyp), 3, 3))
    return SceneArrays(scene_index, images, viewpoints_from_xyzyp(xyzyp), xyzyp.astype(np.float32),
                       np.ascontiguousarray(K), np.asarray(cam_to_world, dtype=np.float32).reshape(-1, 4, 4))


def assumed_intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """K (3, 3) float32 for a horizontal field of view: the value an importer records when the source has none."""
    return camera.intrinsics(width, height, fov_deg).astype(np.float32)
