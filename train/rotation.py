"""Equivariant Neural Rendering's camera convention and the rotation of a scene tensor (Dupont et al. 2020).

The original builds a camera's rotation from its azimuth and elevation in degrees as
`R = R_y(-azimuth) R_z(-elevation)` in its own frame, whose y axis is the vertical, and turns a scene seen by the
source camera into the target camera's by `R_t R_s^T`. This module is that convention, tested:

- `enr_angles` is the one place where our world's angles enter it. Our files store azimuth and elevation of
  the camera position seen from the look-at point, world z up (docs/formats.md §3); the original's datasets
  come from Blender (z up, the same definition) and are read into the formula as they are, so the mapping is
  the identity, and it stays a function so that a dataset with another convention changes one place.
- In that frame `R e_x` is the camera's direction from the centre when the frame's axes are
  (world x, world -z, world y): the frame's y points down, like image rows (tested).
- A scene tensor (B, C, D, H, W) has its depth axis D along the frame's x (the camera's viewing axis at
  azimuth = elevation = 0), H along y (image rows) and W along z: the "swap of two axes" between the frame's
  (x, y, z) and `affine_grid`'s (W, H, D) order. Rotating content by M samples the input at M^T p
  (`affine_grid`/`grid_sample`, trilinear, align_corners=False, zeros outside).

Angles are degrees everywhere.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

#: Frame (x, y, z) -> affine_grid order (W, H, D) = (z, y, x): the axis swap (a permutation, its own inverse).
_SWAP = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def enr_angles(azimuth: torch.Tensor, elevation: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Our files' (azimuth, elevation) in degrees -> the original's (identity; see the module docstring)."""
    return azimuth, elevation


def rotation_y(degrees: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about y by `degrees`: (...,) -> (..., 3, 3)."""
    a = torch.deg2rad(degrees)
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, z, s, z, o, z, -s, z, c], dim=-1).unflatten(-1, (3, 3))


def rotation_z(degrees: torch.Tensor) -> torch.Tensor:
    """Right-handed rotation about z by `degrees`: (...,) -> (..., 3, 3)."""
    a = torch.deg2rad(degrees)
    c, s, z, o = torch.cos(a), torch.sin(a), torch.zeros_like(a), torch.ones_like(a)
    return torch.stack([c, -s, z, s, c, z, z, z, o], dim=-1).unflatten(-1, (3, 3))


def camera_rotation(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """The original's camera rotation `R_y(-azimuth) R_z(-elevation)`, degrees: (...,) -> (..., 3, 3)."""
    az, el = enr_angles(azimuth, elevation)
    return rotation_y(-az) @ rotation_z(-el)


def relative_rotation(src_azimuth: torch.Tensor, src_elevation: torch.Tensor, tgt_azimuth: torch.Tensor,
                      tgt_elevation: torch.Tensor) -> torch.Tensor:
    """Source to target camera, `R_t R_s^T`: (...,) each -> (..., 3, 3)."""
    r_s = camera_rotation(src_azimuth, src_elevation)
    r_t = camera_rotation(tgt_azimuth, tgt_elevation)
    return r_t @ r_s.transpose(-1, -2)


def world_to_frame(vectors: torch.Tensor) -> torch.Tensor:
    """World vectors (..., 3), z up -> the original's frame (x, -z, y)."""
    return torch.stack([vectors[..., 0], -vectors[..., 2], vectors[..., 1]], dim=-1)


def rotate_scene(scene: torch.Tensor, rotation: torch.Tensor, translation: torch.Tensor | None = None) -> torch.Tensor:
    """Turn (and shift) a scene tensor by a rigid motion given in the original's frame, trilinear resampling.

    Args:
        scene: (B, C, D, H, W); the tensor spans [-1, 1] in each axis.
        rotation: (B, 3, 3) motion of the content, e.g. `relative_rotation(...)`.
        translation: (B, 3) shift of the content after the rotation, in the frame's axes and the tensor's
            normalised units (the tensor's half-width is 1); None for none.
    Returns:
        (B, C, D, H, W): out(p) = scene(R^T (p - t)).
    """
    swap = _SWAP.to(scene.device, scene.dtype)
    inverse = swap @ rotation.transpose(-1, -2).to(scene.dtype) @ swap
    theta = torch.zeros(scene.shape[0], 3, 4, device=scene.device, dtype=scene.dtype)
    theta[:, :, :3] = inverse
    if translation is not None:
        theta[:, :, 3] = -(inverse @ (swap @ translation.to(scene.dtype)[..., None]))[..., 0]
    grid = F.affine_grid(theta, list(scene.shape), align_corners=False)
    return F.grid_sample(scene, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
