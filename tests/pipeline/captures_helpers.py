"""Helpers of the captures tests: DeepMind-schema TFRecords written with a real writer, and the real
photographs of Debian's opencv-doc (the chessboard stereo set), fetched and cached outside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
from tfrecord import TFRecordWriter

import paths
from pipeline.assets.sources import DebianPackages

OPENCV_DOC = "opencv-doc"
BOARD = (9, 6)  # inner corners of the chessboard
SQUARE_M = 0.025


def smooth_image(rng: np.random.Generator, size: int) -> np.ndarray:
    """uint8 (size, size, 3): a colour gradient with a disc, like a room's flat walls and an object."""
    y, x = np.mgrid[0:size, 0:size] / size
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-60, 60, (2, 3))
    image = base + x[..., None] * slope[0] + y[..., None] * slope[1]
    cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.1, 0.25)
    image[(x - cx) ** 2 + (y - cy) ** 2 < r * r] = rng.uniform(0, 255, 3)
    return np.clip(image, 0, 255).astype(np.uint8)


def random_scene(rng: np.random.Generator, views: int, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 (V, size, size, 3), cameras float32 (V, 5) [x, y, z, yaw, pitch])."""
    images = np.stack([smooth_image(rng, size) for _ in range(views)])
    cameras = np.concatenate([rng.uniform(-3, 3, (views, 3)), rng.uniform(-np.pi, np.pi, (views, 1)),
                              rng.uniform(-0.7, 0.7, (views, 1))], 1).astype(np.float32)
    return images, cameras


def encode_jpeg(image: np.ndarray) -> bytes:
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    return data.tobytes()


def write_gqn_file(path: Path, scenes: list[tuple[np.ndarray, np.ndarray]]) -> list[list[bytes]]:
    """Writes scenes as DeepMind's records (`frames`: one JPEG per view, `cameras`: 5 floats per view).

    Returns:
        The JPEG bytes written, per scene.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = TFRecordWriter(str(path))
    written = []
    for images, cameras in scenes:
        frames = [encode_jpeg(im) for im in images]
        writer.write({"frames": (frames, "byte"), "cameras": (np.asarray(cameras, np.float32).reshape(-1), "float")})
        written.append(frames)
    writer.close()
    return written


def opencv_doc_data() -> Path:
    """`examples/data` of Debian's opencv-doc, downloaded once (apt-get download) into the cache.

    Cache: `$NSD_TEST_CACHE`, else `paths.CACHE_DIR` (outside the repo; env CACHE_DIR).
    """
    cache = Path(os.environ.get("NSD_TEST_CACHE") or paths.CACHE_DIR)
    tree, _ = DebianPackages(cache).unpack(OPENCV_DOC)
    data = tree / "usr/share/doc/opencv-doc/examples/data"
    assert (data / "left01.jpg").is_file(), f"{OPENCV_DOC} has no chessboard photos under {data}"
    return data


def read_left_intrinsics(data: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K, dist) of the left camera from opencv-doc's own calibration (left_intrinsics.yml)."""
    fs = cv2.FileStorage(str(data / "left_intrinsics.yml"), cv2.FILE_STORAGE_READ)
    try:
        return fs.getNode("camera_matrix").mat(), fs.getNode("distortion_coefficients").mat().reshape(-1)
    finally:
        fs.release()


def calibrate(corners: list[np.ndarray], size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, float]:
    """(K, dist, RMS error) of one camera from its photos' chessboard corners (cv2.calibrateCamera)."""
    objects = [board_points().astype(np.float32)] * len(corners)
    rms, K, dist, _, _ = cv2.calibrateCamera(objects, [c.astype(np.float32) for c in corners], size, None, None)
    return K, dist.reshape(-1), float(rms)


def board_points() -> np.ndarray:
    """(54, 3) chessboard corners in the board frame (metres, z = 0), in findChessboardCorners' order."""
    grid = np.mgrid[0:BOARD[0], 0:BOARD[1]].T.reshape(-1, 2) * SQUARE_M
    return np.concatenate([grid, np.zeros((len(grid), 1))], 1)


def find_corners(photo: Path) -> np.ndarray | None:
    """(54, 2) sub-pixel chessboard corners of a photo (OpenCV pixel coordinates: centres at integers)."""
    gray = cv2.imread(str(photo), cv2.IMREAD_GRAYSCALE)
    found, corners = cv2.findChessboardCorners(gray, BOARD)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 30, 1e-3)
    return cv2.cornerSubPix(gray, corners, (11, 11), (-1, -1), criteria).reshape(-1, 2)


def board_pose(corners: np.ndarray, K: np.ndarray, dist: np.ndarray) -> tuple[np.ndarray, float]:
    """(OpenCV camera-to-world 4x4 in the board frame, RMS reprojection error in pixels) by solvePnP."""
    ok, rvec, tvec = cv2.solvePnP(board_points(), corners, K, dist)
    assert ok
    projected, _ = cv2.projectPoints(board_points(), rvec, tvec, K, dist)
    rms = float(np.sqrt(np.mean(np.sum((projected.reshape(-1, 2) - corners) ** 2, 1))))
    w2c = np.eye(4)
    w2c[:3, :3], w2c[:3, 3] = cv2.Rodrigues(rvec)[0], tvec.reshape(3)
    return np.linalg.inv(w2c), rms
