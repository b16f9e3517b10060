"""View directions on a sphere around an object: the Archimedean spiral of ENR's test protocol and random
training views (numpy only).

Angles are radians in `core.camera.on_sphere`'s convention (world z up; azimuth in the xy plane from +x towards
+y, elevation up from that plane), so a camera is `on_sphere(centre, radius, azimuth[k], elevation[k])`.

The spiral. SRN's shapenet_renderer (`get_archimedean_spiral`, which ENR's 251-view test sets come from) walks
a parameter i from a/2 to a (a = 40) in steps of a / (2 * 250) and places view i at polar angle
theta = pi * i / a from its up axis (y) and at angle -i (radians) about it in its x-z plane, on
the upper hemisphere. Mapped into our frame by the proper rotation (x, y, z)_srn -> (x, -z, y)_ours (its up axis
becomes z; handedness and the spiral's turning sense are kept), view k of n is

    i_k = a / 2 + k * (a / 2) / (n - 1),   elevation_k = pi * i_k / a - pi / 2 = (pi / 2) * k / (n - 1),
    azimuth_k = i_k mod 2 pi.

Elevation rises linearly from the horizon (view 0) to the pole (view n - 1) while the azimuth turns
(a / 2) / (n - 1) radians a view: with n = 251, 0.08 rad (4.58 deg) a view, 20 rad (3.18 turns) in all.
SRN accumulates the step in floating point and stops before i reaches a; its loop yields the same 251 views
(the last within 1e-12 of the pole); this closed form has no drift.

ENR's PSNR protocol uses view 64 as the source: elevation pi * 64 / 500 = 0.40212 rad (23.04 deg) and azimuth
25.12 mod 2 pi = 6.27045 rad (359.27 deg): a quarter of the way up, 0.73 deg short of +x.
"""

from __future__ import annotations

import math

import numpy as np

#: SRN's spiral constant a: the parameter runs from a/2 to a (radians of azimuth).
SRN_SPIRAL_A = 40.0
#: Views of ENR's test scenes; its evaluation asserts (views - 1) % 125 == 0.
ENR_TEST_VIEWS = 251
#: The view ENR's PSNR protocol renders every other view from.
ENR_SOURCE_VIEW = 64


def archimedean_spiral(n: int = ENR_TEST_VIEWS, a: float = SRN_SPIRAL_A) -> tuple[np.ndarray, np.ndarray]:
    """View directions on SRN's Archimedean spiral over the upper hemisphere.

    Args:
        n: number of views (>= 2); 251 for ENR's test protocol.
        a: the spiral constant (SRN uses 40): the azimuth turns a / 2 radians from the first view to the last.
    Returns:
        azimuth: (n,) float64 radians in [0, 2 pi).
        elevation: (n,) float64 radians, 0 (horizon) at view 0 rising linearly to pi / 2 (pole) at view n - 1.
    Raises:
        ValueError: n < 2 or a not a positive finite number.
    """
    if not isinstance(n, int | np.integer) or n < 2:
        raise ValueError(f"a spiral needs at least 2 views, got n={n!r}")
    if not (math.isfinite(a) and a > 0):
        raise ValueError(f"spiral constant a must be a positive number, got {a!r}")
    k = np.arange(int(n), dtype=np.float64)
    i = a / 2.0 + k * (a / 2.0) / (n - 1)
    elevation = (math.pi / 2.0) * k / (n - 1)
    azimuth = np.mod(i, 2.0 * math.pi)
    return azimuth, elevation


def random_sphere_angles(rng: np.random.Generator, n: int,
                         elevation_range: tuple[float, float] = (0.0, math.pi / 2.0)) -> tuple[np.ndarray, np.ndarray]:
    """Directions drawn uniformly over the zone of the sphere between two elevations (training views).

    Uniform by area: azimuth ~ U[0, 2 pi) and sin(elevation) ~ U[sin lo, sin hi] (Archimedes' hat-box theorem),
    so views do not crowd at the pole as a uniform elevation would.

    Args:
        rng: the sample's generator (its only source of randomness).
        n: number of directions (>= 0).
        elevation_range: (lo, hi) radians within [-pi/2, pi/2], lo <= hi; (0, pi/2) = upper hemisphere.
    Returns:
        azimuth: (n,) float64 radians in [0, 2 pi).
        elevation: (n,) float64 radians in [lo, hi].
    Raises:
        ValueError: a negative n or an elevation range outside [-pi/2, pi/2] or reversed.
    """
    if not isinstance(n, int | np.integer) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    lo, hi = (float(x) for x in elevation_range)
    if not (-math.pi / 2 <= lo <= hi <= math.pi / 2):
        raise ValueError(f"elevation_range must satisfy -pi/2 <= lo <= hi <= pi/2 (radians), got {elevation_range!r}")
    azimuth = rng.uniform(0.0, 2.0 * math.pi, size=int(n))
    s = rng.uniform(math.sin(lo), math.sin(hi), size=int(n))
    elevation = np.clip(np.arcsin(s), lo, hi)
    return azimuth, elevation
