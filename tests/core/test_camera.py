"""Camera geometry without Blender: poses, intrinsics, projections and viewpoint encodings agree."""

import math

import numpy as np
import pytest

from core import camera as camera_math


def test_look_at_points_the_optical_axis_at_the_target():
    loc, target = np.array([3.0, -2.0, 1.5]), np.array([0.5, 0.2, 0.3])
    pose = camera_math.look_at(loc, target)
    assert np.allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.isclose(np.linalg.det(pose[:3, :3]), 1.0)
    forward = -pose[:3, 2]  # Blender cameras look down -z
    assert np.allclose(forward, (target - loc) / np.linalg.norm(target - loc))
    assert pose[2, 0] == pytest.approx(0.0, abs=1e-12)  # no roll: camera x stays horizontal


def test_target_projects_to_the_principal_point_and_pixels_scale_with_fov():
    loc, target = np.array([2.0, 2.0, 1.0]), np.zeros(3)
    cv = camera_math.blender_to_opencv(camera_math.look_at(loc, target))
    K = camera_math.intrinsics(64, 48, 60.0)
    uv, z = camera_math.project(np.array([target]), K, cv)
    assert np.allclose(uv[0], [32.0, 24.0]) and z[0] == pytest.approx(np.linalg.norm(loc))
    # a point on the camera's right edge of the field of view lands on the image's right border
    right = cv[:3, 0]
    edge = target + right * math.tan(math.radians(30.0)) * np.linalg.norm(loc)
    uv, _ = camera_math.project(np.array([edge]), K, cv)
    assert uv[0, 0] == pytest.approx(64.0) and uv[0, 1] == pytest.approx(24.0)
    # the world up direction goes up in the image (smaller v)
    uv_up, _ = camera_math.project(np.array([target + [0, 0, 0.1]]), K, cv)
    assert uv_up[0, 1] < 24.0


def test_gqn_viewpoint_matches_yaw_and_pitch_of_the_viewing_direction():
    loc, target = np.array([1.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0])
    x, y, z, sy, cy, sp, cp = camera_math.gqn_viewpoint(loc, target)
    assert (x, y, z) == (1.0, 1.0, 1.0)
    assert math.atan2(sy, cy) == pytest.approx(math.atan2(-1, -1))
    assert math.atan2(sp, cp) == pytest.approx(-math.asin(1 / math.sqrt(3)))
    assert camera_math.xyzyp_viewpoint(loc, target)[3:] == pytest.approx([math.atan2(sy, cy), math.atan2(sp, cp)])


def test_quaternion_and_euler_describe_the_same_rotation():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = camera_math.random_rotation(rng)
        R = camera_math.quaternion_to_matrix(q)
        ex, ey, ez = camera_math.matrix_to_euler_xyz(R)
        rx = np.array([[1, 0, 0], [0, math.cos(ex), -math.sin(ex)], [0, math.sin(ex), math.cos(ex)]])
        ry = np.array([[math.cos(ey), 0, math.sin(ey)], [0, 1, 0], [-math.sin(ey), 0, math.cos(ey)]])
        rz = np.array([[math.cos(ez), -math.sin(ez), 0], [math.sin(ez), math.cos(ez), 0], [0, 0, 1]])
        assert np.allclose(rz @ ry @ rx, R, atol=1e-9)


def test_degenerate_camera_is_refused():
    with pytest.raises(ValueError, match="equals its look-at target"):
        camera_math.look_at(np.ones(3), np.ones(3))


def test_on_sphere_and_sphere_angles_invert_each_other_and_direction_is_yaw_pitch():
    centre = np.array([0.5, -1.0, 2.0])
    for azimuth, elevation in ((0.3, 0.2), (-2.5, -0.7), (3.0, 1.2)):
        p = camera_math.on_sphere(centre, 2.5, azimuth, elevation)
        assert camera_math.sphere_angles(p, centre) == pytest.approx((azimuth, elevation, 2.5))
        d = camera_math.direction(azimuth, elevation)
        assert np.linalg.norm(d) == pytest.approx(1.0)
        assert camera_math.yaw_pitch(d) == pytest.approx((azimuth, elevation))
        # a camera there looking at the centre: yaw = azimuth + pi, pitch = -elevation
        yaw, pitch = camera_math.yaw_pitch(camera_math.viewing_direction(p, centre))
        assert math.remainder(yaw - azimuth - math.pi, 2 * math.pi) == pytest.approx(0.0, abs=1e-12)
        assert pitch == pytest.approx(-elevation)
    # elevation 0 is the horizontal ring at the centre's height, the same floats as r cos a, r sin a
    a = 0.7
    assert tuple(camera_math.on_sphere(np.array([0.0, 0.0, 1.0]), 2.4, a, 0.0)) == (2.4 * math.cos(a), 2.4 * math.sin(a), 1.0)
