"""core/sphere_paths.py: SRN's Archimedean spiral (ENR's 251 test views) and random views on a sphere zone."""

from __future__ import annotations

import math

import numpy as np
import pytest

from core.camera import on_sphere, sphere_angles
from core.sphere_paths import ENR_SOURCE_VIEW, ENR_TEST_VIEWS, archimedean_spiral, random_sphere_angles


def srn_style_loop(a: float = 40.0, steps: int = 250) -> np.ndarray:
    """The spiral as SRN's loop describes it, in SRN's y-up frame: i from a/2 while i < a, step a/(2 steps)."""
    points, i = [], a / 2
    while i < a:
        theta = i / a * math.pi
        points.append((math.sin(theta) * math.cos(-i), -math.cos(theta), math.sin(theta) * math.sin(-i)))
        i += a / (2 * steps)
    return np.array(points)


def directions(az: np.ndarray, el: np.ndarray) -> np.ndarray:
    return np.array([on_sphere(np.zeros(3), 1.0, a, e) for a, e in zip(az, el, strict=True)])


def test_count_and_enr_assertion() -> None:
    az, el = archimedean_spiral()
    assert len(az) == len(el) == ENR_TEST_VIEWS == 251
    assert (ENR_TEST_VIEWS - 1) % 125 == 0
    assert az.dtype == el.dtype == np.float64


def test_upper_hemisphere_from_horizon_to_pole() -> None:
    az, el = archimedean_spiral()
    assert el[0] == 0.0 and el[-1] == pytest.approx(math.pi / 2)
    assert np.all(np.diff(el) > 0) and np.all(el >= 0) and np.all(el <= math.pi / 2)
    assert np.all((az >= 0) & (az < 2 * math.pi))
    assert np.all(directions(az, el)[:, 2] >= -1e-12)


def test_same_points_as_srn_loop_after_the_frame_rotation() -> None:
    srn = srn_style_loop()
    assert len(srn) == 251
    ours_in_srn_frame = directions(*archimedean_spiral())
    # ours (x, y, z) = (x, -z, y) of SRN's, so SRN's = (x, z, -y) of ours
    back = np.stack([ours_in_srn_frame[:, 0], ours_in_srn_frame[:, 2], -ours_in_srn_frame[:, 1]], axis=1)
    np.testing.assert_allclose(back, srn, atol=1e-9)


def test_spacing_is_even_and_views_distinct() -> None:
    az, el = archimedean_spiral()
    step = np.diff(np.unwrap(az))
    np.testing.assert_allclose(step, 20.0 / 250)  # 0.08 rad of azimuth a view
    np.testing.assert_allclose(np.diff(el), math.pi / 500)
    d = directions(az, el)
    gaps = np.degrees(np.arccos(np.clip(np.sum(d[1:] * d[:-1], axis=1), -1, 1)))
    assert gaps.min() > 0.3 and gaps.max() < 4.7  # neighbours are 0.36 deg (near the pole) to 4.6 deg apart
    cos = np.clip(d @ d.T, -1, 1) - 2 * np.eye(len(d))
    assert cos.max() < math.cos(math.radians(0.3))  # no two views coincide


def test_view_64_is_the_documented_source() -> None:
    az, el = archimedean_spiral()
    assert ENR_SOURCE_VIEW == 64
    assert el[64] == pytest.approx(math.pi * 64 / 500) and math.degrees(el[64]) == pytest.approx(23.04)
    assert az[64] == pytest.approx(6.27045, abs=1e-5) and math.degrees(az[64]) == pytest.approx(359.27, abs=0.01)
    cam = on_sphere(np.zeros(3), 2.0, az[64], el[64])
    back = sphere_angles(cam, np.zeros(3))
    assert back[0] % (2 * math.pi) == pytest.approx(az[64]) and back[1] == pytest.approx(el[64])


def test_spiral_is_deterministic_and_refuses_bad_counts() -> None:
    a1, e1 = archimedean_spiral(51)
    a2, e2 = archimedean_spiral(51)
    assert np.array_equal(a1, a2) and np.array_equal(e1, e2) and len(a1) == 51
    with pytest.raises(ValueError, match="at least 2"):
        archimedean_spiral(1)


def test_random_angles_deterministic_in_range_and_uniform_by_area() -> None:
    lo, hi = math.radians(10), math.radians(60)
    a1, e1 = random_sphere_angles(np.random.default_rng(7), 20000, (lo, hi))
    a2, e2 = random_sphere_angles(np.random.default_rng(7), 20000, (lo, hi))
    assert np.array_equal(a1, a2) and np.array_equal(e1, e2)
    assert np.all((e1 >= lo) & (e1 <= hi)) and np.all((a1 >= 0) & (a1 < 2 * math.pi))
    # uniform by area: the height sin(el) is uniform, so half the views lie below the mid-height
    mid = math.asin((math.sin(lo) + math.sin(hi)) / 2)
    assert abs(np.mean(e1 < mid) - 0.5) < 0.015
    assert abs(np.mean(a1 < math.pi) - 0.5) < 0.015
    assert not np.array_equal(random_sphere_angles(np.random.default_rng(8), 5)[0], a1[:5])
    with pytest.raises(ValueError, match="elevation_range"):
        random_sphere_angles(np.random.default_rng(0), 3, (1.0, 0.5))
