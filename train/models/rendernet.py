"""RenderNet (Nguyen-Phuoc et al., NeurIPS 2018): a voxel grid, posed by the camera, rendered into a shaded image.

Composition (each block exposes `output_shape` without the batch dimension):
- pose: the occupancy grid (G, G, G) indexed [x, y, z] over the unit cube is resampled (trilinear) into a
  camera-aligned grid (P, P, P) (depth along the viewing axis, rows down, columns right) covering the view's
  frustum at the object's distance, half-width `radius * tan(fov / 2)`: turning and scaling by the radius,
  as the original's "rotate about the grid centre, scale 3.3 / r, resample";
- `VoxelEncoder`: 3D convolutions (stride-2 stages) -> (C, p, p, p);
- `ProjectionUnit`: depth folded into channels (C * p, p, p) and 1x1 convolutions: the learnt projection;
- `ResidualDecoder`: 2D residual blocks and upsampling stages to H x W, with the light direction (in the camera
  frame) as input channels, ending in heads for the image and the normal map (camera frame).
  `shading='phong'` (the original's RenderNet-Phong) predicts albedo, normals and mask and shades them,
  `mask * albedo * (0.1 + 0.9 max(n.l, 0)) + (1 - mask) * background`; `'learned'` predicts the shaded image.

Losses: the image by BCE when `greyscale` (the original's chairs) else MSE; normals by MSE on object pixels;
the mask by BCE (phong). No batch normalisation, so a DDP run equals one process.

`invert` is inverse rendering: from an image, optimise pose and light (degrees) through the frozen network.
"""

from __future__ import annotations

import logging
import math

import gin
import torch
import torch.nn.functional as F
from torch import nn

from train.data import Batch
from train.models.base import SceneModel, register

logger = logging.getLogger(__name__)

_SLOPE = 0.2
_AMBIENT, _DIFFUSE = 0.1, 0.9  # the original's Phong weights, white light
#: World (x, y, z) -> grid_sample's (W, H, D) order of a grid indexed [x, y, z] as (D, H, W).
_XYZ_TO_GRID = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def _act() -> nn.Module:
    return nn.LeakyReLU(_SLOPE, inplace=True)


def direction(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """(...,) degrees -> (..., 3): (cos el cos az, cos el sin az, sin el), world z up (docs/formats.md §3)."""
    az, el = torch.deg2rad(azimuth), torch.deg2rad(elevation)
    return torch.stack([torch.cos(el) * torch.cos(az), torch.cos(el) * torch.sin(az), torch.sin(el)], dim=-1)


def camera_to_world(azimuth: torch.Tensor, elevation: torch.Tensor) -> torch.Tensor:
    """OpenCV camera-to-world rotation (..., 3, 3), columns right, down, forward, of a camera at (azimuth,
    elevation) degrees looking at the centre, world z up, no roll. Differentiable in the angles."""
    forward = -direction(azimuth, elevation)
    up = torch.zeros_like(forward)
    up[..., 2] = 1.0
    right = F.normalize(torch.linalg.cross(forward, up), dim=-1)
    down = torch.linalg.cross(forward, right)
    return torch.stack([right, down, forward], dim=-1)


def pose_voxels(voxels: torch.Tensor, azimuth: torch.Tensor, elevation: torch.Tensor, radius: torch.Tensor,
                fov_deg: float, size: int) -> torch.Tensor:
    """Resample world voxels into the camera's frame.

    Args:
        voxels: (B, G, G, G) occupancy indexed [x, y, z] over the unit cube [-0.5, 0.5]^3.
        azimuth, elevation: (B,) degrees; radius: (B,) metres.
        fov_deg: horizontal field of view of the camera.
        size: side P of the posed grid.
    Returns:
        (B, 1, P, P, P): depth (away from the camera), rows (down), columns (right); the grid spans the
        frustum's half-width at the object's distance, `radius * tan(fov / 2)`, in each axis.
    """
    rot = camera_to_world(azimuth, elevation)  # camera axes in world
    half = radius * math.tan(math.radians(fov_deg) / 2)
    # output (x=right, y=down, z=forward) in [-1, 1] -> metres * half -> world -> voxel units [-1, 1] = 2 * metres
    theta = torch.zeros(voxels.shape[0], 3, 4, device=voxels.device, dtype=voxels.dtype)
    theta[:, :, :3] = 2.0 * half[:, None, None] * (_XYZ_TO_GRID.to(voxels) @ rot)
    grid = F.affine_grid(theta, [voxels.shape[0], 1, size, size, size], align_corners=False)
    return F.grid_sample(voxels[:, None], grid, mode="bilinear", padding_mode="zeros", align_corners=False)


class VoxelEncoder(nn.Module):
    """posed grid (1, P, P, P) -> (channels, P / 2**stages, ...)."""

    def __init__(self, size: int, channels: int, stages: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv3d(1, channels, 3, padding=1), _act()]
        for _ in range(stages):
            layers += [nn.Conv3d(channels, channels, 4, stride=2, padding=1), _act()]
        layers += [nn.Conv3d(channels, channels, 3, padding=1), _act()]
        self.net = nn.Sequential(*layers)
        side = size >> stages
        self.output_shape = (channels, side, side, side)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return self.net(grid)


class ProjectionUnit(nn.Module):
    """(C, p, p, p) -> depth folded into channels (C * p, p, p) -> 1x1 convolutions -> (out_channels, p, p)."""

    def __init__(self, input_shape: tuple[int, int, int, int], hidden: int, out_channels: int) -> None:
        super().__init__()
        c, d, h, w = input_shape
        self.net = nn.Sequential(nn.Conv2d(c * d, hidden, 1), _act(), nn.Conv2d(hidden, out_channels, 1), _act())
        self.output_shape = (out_channels, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1, 2))


class _ResBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), _act(),
                                  nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.leaky_relu(x + self.body(x), _SLOPE)


class ResidualDecoder(nn.Module):
    """(C, p, p) + light (3,) -> (out_channels, p * 2**stages, ...): residual blocks and x2 upsampling stages."""

    def __init__(self, input_shape: tuple[int, int, int], channels: int, stages: int, blocks: int,
                 out_channels: int) -> None:
        super().__init__()
        c, h, w = input_shape
        self.stem = nn.Sequential(nn.Conv2d(c + 3, channels, 3, padding=1), _act())
        layers: list[nn.Module] = [_ResBlock(channels) for _ in range(blocks)]
        for _ in range(stages):
            layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                       nn.Conv2d(channels, channels, 3, padding=1), _act(), _ResBlock(channels)]
        self.body = nn.Sequential(*layers)
        self.head = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.output_shape = (out_channels, h << stages, w << stages)

    def forward(self, x: torch.Tensor, light: torch.Tensor) -> torch.Tensor:
        """x (B, C, p, p), light (B, 3) camera frame -> (B, out_channels, H, W)."""
        lit = light[:, :, None, None].expand(-1, -1, *x.shape[2:])
        return self.head(self.body(self.stem(torch.cat([x, lit], dim=1))))


@register("rendernet")
@gin.configurable
class RenderNet(SceneModel):
    """RenderNet with a posed voxel input, a projection unit and a residual decoder.

    Args:
        image_size: H = W of the images.
        voxel_size: side G of the voxel grid read from the data (a divisor of the stored side).
        grid_size: side P of the posed grid (the original: 64^3 voxels resampled to 128^3).
        fov_deg: horizontal field of view of the data's camera (the posed grid spans its frustum).
        channels_3d: channels of the 3D encoder; stages_3d: its stride-2 stages.
        projection_channels: hidden width of the projection unit's 1x1 convolutions.
        channels_2d: width of the decoder; blocks: residual blocks before upsampling.
        shading: "phong" (albedo, normals, mask, shaded with the light) or "learned" (the decoder shades).
        greyscale: train on greyscale images with BCE (the original's chairs); otherwise RGB with MSE.
        normal_weight: weight of the normal-map loss.
        background: grey level of the plain background (1 = white).
    """

    predict_modes = ("shaded",)

    def __init__(
        self,
        image_size: int = 32,
        voxel_size: int = 32,
        grid_size: int = 32,
        fov_deg: float = 25.0,
        channels_3d: int = 8,
        stages_3d: int = 1,
        projection_channels: int = 64,
        channels_2d: int = 32,
        blocks: int = 2,
        shading: str = "phong",
        greyscale: bool = False,
        normal_weight: float = 1.0,
        background: float = 1.0,
    ) -> None:
        super().__init__({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        if shading not in ("phong", "learned"):
            raise ValueError(f"unknown RenderNet shading {shading!r}; use 'phong' or 'learned'")
        self.encoder = VoxelEncoder(grid_size, channels_3d, stages_3d)
        side = self.encoder.output_shape[1]
        up = int(round(math.log2(image_size / side)))
        if side << up != image_size:
            raise ValueError(f"RenderNet image_size={image_size} must be grid_size / 2**stages_3d = {side} times "
                             "a power of two")
        self.projection = ProjectionUnit(self.encoder.output_shape, projection_channels, channels_2d)
        self.colours = 1 if greyscale else 3
        out = self.colours + 3 + (1 if shading == "phong" else 0)
        self.decoder = ResidualDecoder(self.projection.output_shape, channels_2d, up, blocks, out)
        self.grid_size, self.fov_deg, self.shading = grid_size, fov_deg, shading
        self.greyscale, self.normal_weight, self.background = greyscale, normal_weight, background
        self.output_shape = (self.colours, image_size, image_size)

    @staticmethod
    def fields() -> tuple[str, ...]:
        return ("voxels", "azimuth", "elevation", "radius", "light_azimuth", "light_elevation", "normal", "mask")

    def render(self, voxels: torch.Tensor, azimuth: torch.Tensor, elevation: torch.Tensor, radius: torch.Tensor,
               light_azimuth: torch.Tensor, light_elevation: torch.Tensor) -> dict[str, torch.Tensor]:
        """Render posed voxels.

        Args:
            voxels: (B, G, G, G); angles (B,) degrees; radius (B,) metres.
        Returns:
            {"image": (B, colours, H, W) in [0, 1], "normal": (B, 3, H, W) unit, camera frame,
             "mask": (B, 1, H, W) in [0, 1] (phong only), "mask_logit", "image_logit" (learned only)}.
        """
        grid = pose_voxels(voxels, azimuth, elevation, radius, self.fov_deg, self.grid_size)
        rot = camera_to_world(azimuth, elevation)
        light = (rot.transpose(-1, -2) @ direction(light_azimuth, light_elevation)[..., None])[..., 0]
        out = self.decoder(self.projection(self.encoder(grid)), light)
        c = self.colours
        normal = F.normalize(out[:, c:c + 3], dim=1)
        if self.shading == "learned":
            return {"image": torch.sigmoid(out[:, :c]), "image_logit": out[:, :c], "normal": normal}
        albedo, mask_logit = torch.sigmoid(out[:, :c]), out[:, c + 3:c + 4]
        mask = torch.sigmoid(mask_logit)
        shade = _AMBIENT + _DIFFUSE * (normal * light[:, :, None, None]).sum(1, keepdim=True).clamp(min=0)
        image = mask * albedo * shade + (1 - mask) * self.background
        return {"image": image, "normal": normal, "mask": mask, "mask_logit": mask_logit}

    def _inputs(self, batch: Batch) -> tuple[torch.Tensor, ...]:
        """The single posed view of each item (N = 1 of `PosedViewDataset`)."""
        return (batch["voxels"], batch["azimuth"][:, 0], batch["elevation"][:, 0], batch["radius"][:, 0],
                batch["light_azimuth"][:, 0], batch["light_elevation"][:, 0])

    def target_image(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> the training target: itself, or its grey level (B, 1, H, W) when greyscale."""
        return images.mean(dim=1, keepdim=True) if self.greyscale else images

    def forward(self, batch: Batch) -> dict:
        """Training pass on single posed views.

        Args:
            batch: voxels (B, G, G, G), images (B, 1, 3, H, W), normal (B, 1, 3, H, W) world frame, mask
                (B, 1, 1, H, W), angles (B, 1) degrees, radius (B, 1).
        Returns:
            {"losses": {"image", "normal"[, "mask"]}: (), "prediction": (B, 3, H, W), "mse": ()}
        """
        out = self.render(*self._inputs(batch))
        target = self.target_image(batch["images"][:, 0])
        if self.greyscale:
            image_loss = (F.binary_cross_entropy_with_logits(out["image_logit"], target) if "image_logit" in out
                          else F.binary_cross_entropy(out["image"].clamp(1e-6, 1 - 1e-6), target))
        else:
            image_loss = F.mse_loss(out["image"], target)
        rot = camera_to_world(batch["azimuth"][:, 0], batch["elevation"][:, 0])
        normal_cam = torch.einsum("bji,bjhw->bihw", rot, batch["normal"][:, 0])  # R^T n per pixel
        mask = batch["mask"][:, 0]
        # per item, then the batch mean: a DDP run's halves then average to the global batch's value
        err = ((out["normal"] - normal_cam).pow(2).sum(1, keepdim=True) * mask).flatten(1).sum(1)
        normal_loss = (err / mask.flatten(1).sum(1).clamp(min=1)).mean()
        losses = {"image": image_loss, "normal": self.normal_weight * normal_loss}
        if "mask_logit" in out:
            losses["mask"] = F.binary_cross_entropy_with_logits(out["mask_logit"], mask)
        mse = (out["image"].detach().float() - target.float()).pow(2).mean()
        return {"losses": losses, "prediction": self._rgb(out["image"]), "mse": mse}

    def _rgb(self, image: torch.Tensor) -> torch.Tensor:
        return image.expand(-1, 3, -1, -1) if image.shape[1] == 1 else image

    @torch.no_grad()
    def predict(self, batch: Batch, mode: str = "shaded") -> torch.Tensor:
        """The shaded image of each item's posed view: (B, 3, H, W) in [0, 1] (grey repeated when greyscale)."""
        if mode not in self.predict_modes:
            raise ValueError(f"unknown RenderNet predict mode {mode!r}; use one of {self.predict_modes}")
        return self._rgb(self.render(*self._inputs(batch))["image"]).float()

    def invert(self, image: torch.Tensor, voxels: torch.Tensor, radius: torch.Tensor, azimuth: torch.Tensor,
               elevation: torch.Tensor, light_starts: torch.Tensor, optimise_pose: bool = False, steps: int = 100,
               lr: float = 2.0) -> dict[str, torch.Tensor]:
        """Inverse rendering: find the light (and, with `optimise_pose`, the pose) that best explains `image`.

        The network is frozen; the angles (degrees) are optimised by Adam on the image MSE from each start in
        `light_starts`, all starts at once, and the start with the lowest final error wins.

        Args:
            image: (3, H, W) target in [0, 1]; voxels (G, G, G); radius, azimuth, elevation: () pose (the
                initial pose when `optimise_pose`).
            light_starts: (S, 2) initial (light azimuth, light elevation) degrees.
        Returns:
            {"light_azimuth", "light_elevation", "azimuth", "elevation": () degrees, "mse": () of the best start}.
        """
        was_training = self.training
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)
        s = len(light_starts)
        light = light_starts.detach().clone().float().requires_grad_(True)
        pose = torch.stack([azimuth, elevation]).float()[None].repeat(s, 1).requires_grad_(optimise_pose)
        opt = torch.optim.Adam([light, pose] if optimise_pose else [light], lr=lr)
        target = self.target_image(image[None]).expand(s, -1, -1, -1)
        vox, rad = voxels[None].expand(s, -1, -1, -1), radius.reshape(1).expand(s)
        try:
            with torch.enable_grad():
                for _ in range(steps):
                    out = self.render(vox, pose[:, 0], pose[:, 1], rad, light[:, 0], light[:, 1])["image"]
                    err = (out - target).pow(2).flatten(1).mean(1)
                    opt.zero_grad()
                    err.sum().backward()
                    opt.step()
                with torch.no_grad():
                    out = self.render(vox, pose[:, 0], pose[:, 1], rad, light[:, 0], light[:, 1])["image"]
                    err = (out - target).pow(2).flatten(1).mean(1)
        finally:
            for p in self.parameters():
                p.requires_grad_(True)
            self.train(was_training)
        best = int(err.argmin())
        return {"light_azimuth": light[best, 0].detach(), "light_elevation": light[best, 1].detach(),
                "azimuth": pose[best, 0].detach(), "elevation": pose[best, 1].detach(), "mse": err[best].detach()}
