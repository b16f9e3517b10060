"""Camera geometry shared by every generator, consolidation and the trainer: poses, cameras on a sphere,
intrinsics and viewpoint encodings (numpy only).

Conventions are those of docs/formats.md: world z up; Blender cameras look down local -z with y up;
OpenCV cameras look down +z with y down.
"""

import math

import numpy as np

BLENDER_TO_OPENCV = np.diag([1.0, -1.0, -1.0, 1.0])
#: The order of the 7-number viewpoint every file stores (HDF5 attribute `viewpoint_order`).
VIEWPOINT_ORDER = "[x, y, z, sin(yaw), cos(yaw), sin(pitch), cos(pitch)]"


def direction(azimuth: float, elevation: float) -> np.ndarray:
    """Unit vector at (azimuth, elevation): `(cos el cos az, cos el sin az, sin el)` (radians; world z up).

    Azimuth is measured in the xy plane from +x towards +y, elevation up from that plane. Read as a viewing
    direction, azimuth is its yaw and elevation its pitch: `yaw_pitch(direction(yaw, pitch)) == (yaw, pitch)`.
    The one place this formula lives: generators, lights and cameras all call it (or `on_sphere`).

    Arrays of angles broadcast: the result then has shape (..., 3).

    Returns:
        (3,) float64 unit vector (or (..., 3) for arrays).
    """
    azimuth, elevation = np.asarray(azimuth, dtype=np.float64), np.asarray(elevation, dtype=np.float64)
    c = np.cos(elevation)
    return np.stack(np.broadcast_arrays(c * np.cos(azimuth), c * np.sin(azimuth), np.sin(elevation)), axis=-1)


def on_sphere(centre: np.ndarray, radius: float, azimuth: float, elevation: float) -> np.ndarray:
    """A point on the sphere of `radius` around `centre`, seen from the centre at (azimuth, elevation).

    `centre + radius * direction(azimuth, elevation)` (radians; world z up; see `direction`). A camera placed there
    and looking at `centre` has yaw = azimuth + pi and pitch = -elevation. For a polar angle t from the up axis,
    elevation = pi/2 - t. With elevation 0 it is a point on the horizontal ring of `radius` at the centre's height.

    Returns:
        (3,) float64 position.
    """
    return np.asarray(centre, dtype=np.float64) + float(radius) * direction(azimuth, elevation)


def sphere_angles(position: np.ndarray, centre: np.ndarray) -> tuple[float, float, float]:
    """(azimuth, elevation, radius) of `position` around `centre`: the inverse of `on_sphere` (radians)."""
    d = np.asarray(position, dtype=np.float64) - np.asarray(centre, dtype=np.float64)
    radius = float(np.linalg.norm(d))
    if radius < 1e-12:
        raise ValueError(f"position {np.asarray(position).tolist()} is the centre itself")
    return math.atan2(d[1], d[0]), math.asin(float(np.clip(d[2] / radius, -1.0, 1.0))), radius


def look_at(location: np.ndarray, target: np.ndarray, up: np.ndarray | None = None) -> np.ndarray:
    """Blender camera-to-world (4x4) of a camera at `location` looking at `target`.

    Args:
        location: (3,) camera centre, metres.
        target: (3,) point the optical axis passes through.
        up: (3,) world up; when the view is (anti)parallel to it, world y is used instead.
    Returns:
        (4, 4) float64 matrix whose columns are camera x (right), y (up), z (backwards) and centre.
    """
    location = np.asarray(location, dtype=np.float64)
    forward = np.asarray(target, dtype=np.float64) - location
    norm = np.linalg.norm(forward)
    if norm < 1e-9:
        raise ValueError(f"camera location {location.tolist()} equals its look-at target")
    forward /= norm
    up = np.array([0.0, 0.0, 1.0]) if up is None else np.asarray(up, dtype=np.float64)
    if abs(float(np.dot(forward, up))) > 0.999:
        up = np.array([0.0, 1.0, 0.0])
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, cam_up, -forward, location
    return pose


def blender_to_opencv(cam_to_world_blender: np.ndarray) -> np.ndarray:
    """Converts a Blender camera-to-world matrix to OpenCV's axes (x right, y down, z forward)."""
    return np.asarray(cam_to_world_blender, dtype=np.float64) @ BLENDER_TO_OPENCV


def intrinsics(width: int, height: int, fov_deg: float) -> np.ndarray:
    """Pinhole K (3x3, pixels) for a horizontal field of view `fov_deg` and square pixels."""
    if not 0.0 < fov_deg < 180.0:
        raise ValueError(f"field of view must lie in (0, 180) degrees, got {fov_deg}")
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2.0)
    return np.array([[focal, 0.0, width / 2.0], [0.0, focal, height / 2.0], [0.0, 0.0, 1.0]])


def project(points_world: np.ndarray, K: np.ndarray, cam_to_world_opencv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Projects world points into the image.

    Args:
        points_world: (N, 3) points.
        K: (3, 3) intrinsics.
        cam_to_world_opencv: (4, 4) OpenCV camera-to-world.
    Returns:
        uv: (N, 2) pixel coordinates (x to the right, y down, origin at the top-left image corner).
        z: (N,) depth along the optical axis; points behind the camera have z <= 0.
    """
    world_to_cam = np.linalg.inv(cam_to_world_opencv)
    pts = np.asarray(points_world, dtype=np.float64).reshape(-1, 3)
    cam = pts @ world_to_cam[:3, :3].T + world_to_cam[:3, 3]
    z = cam[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = (cam @ np.asarray(K, dtype=np.float64).T)[:, :2] / z[:, None]
    return uv, z


def viewing_direction(location: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Unit vector from the camera centre to its look-at point."""
    d = np.asarray(target, dtype=np.float64) - np.asarray(location, dtype=np.float64)
    return d / np.linalg.norm(d)


def yaw_pitch(direction: np.ndarray) -> tuple[float, float]:
    """Yaw = atan2(d_y, d_x) and pitch = elevation of a viewing direction, radians."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    return math.atan2(d[1], d[0]), math.asin(float(np.clip(d[2], -1.0, 1.0)))


def gqn_viewpoint(location: np.ndarray, target: np.ndarray) -> list[float]:
    """The 7-number GQN viewpoint [x, y, z, sin yaw, cos yaw, sin pitch, cos pitch]."""
    yaw, pitch = yaw_pitch(viewing_direction(location, target))
    x, y, z = (float(v) for v in location)
    return [x, y, z, math.sin(yaw), math.cos(yaw), math.sin(pitch), math.cos(pitch)]


def xyzyp_viewpoint(location: np.ndarray, target: np.ndarray) -> list[float]:
    """The 5-number viewpoint [x, y, z, yaw, pitch] (radians) of DeepMind's files."""
    yaw, pitch = yaw_pitch(viewing_direction(location, target))
    x, y, z = (float(v) for v in location)
    return [x, y, z, yaw, pitch]


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniformly distributed unit quaternion (w, x, y, z)."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    return q if q[0] >= 0 else -q


def quaternion_to_matrix(q: np.ndarray) -> np.ndarray:
    """(w, x, y, z) unit quaternion to a 3x3 rotation matrix."""
    w, x, y, z = (float(v) for v in q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_euler_xyz(R: np.ndarray) -> list[float]:
    """Euler angles (radians) in Blender's 'XYZ' order: R = Rz @ Ry @ Rx."""
    R = np.asarray(R, dtype=np.float64)
    sy = -float(np.clip(R[2, 0], -1.0, 1.0))
    y = math.asin(sy)
    if abs(sy) < 0.999999:
        x = math.atan2(R[2, 1], R[2, 2])
        z = math.atan2(R[1, 0], R[0, 0])
    else:  # gimbal lock: fold the whole remaining rotation into x
        x = math.atan2(-R[1, 2], R[1, 1])
        z = 0.0
    return [x, y, z]
