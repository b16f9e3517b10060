"""Equivariant Neural Rendering (Dupont et al., ICML 2020): an image becomes a 3D scene tensor that turns with
the camera.

Composition (each block exposes `output_shape` without the batch dimension):
- `InverseRenderer`: 2D convolutions (stride-2 stages down to the scene's side s = H / 2**stages) -> inverse
  projection (a 1x1 convolution to C3 * s channels, reshaped so the channels fold out into depth) -> 3D
  convolutions -> scene tensor (C, s, s, s);
- the scene tensor of the source view is turned into the target view with `train.rotation` (the original's
  `R_t R_s^T`, trilinear resampling; with `use_translation` also shifted by the objects' relative offset);
- `ForwardRenderer`: 3D convolutions -> projection (depth folded into channels, a 1x1 convolution) -> 2D
  transposed-convolution stages back to H x W (no sigmoid, see there; predictions are clamped to [0, 1]).

Training takes two views of a scene, infers both scene tensors, turns each into the other's camera and renders
it ("swap" of the original); the loss per image is L1 + `ssim_weight` (1 - SSIM) (SSIM from pytorch-msssim).
No batch normalisation: a DDP run then equals one process.
"""

from __future__ import annotations

import logging

import gin
import torch
from pytorch_msssim import ssim as ms_ssim
from torch import nn

from train.data import Batch
from train.models.base import SceneModel, register
from train.rotation import relative_rotation, rotate_scene, world_to_frame

logger = logging.getLogger(__name__)

_SLOPE = 0.2  # leaky ReLU slope of every layer


def _act() -> nn.Module:
    return nn.LeakyReLU(_SLOPE, inplace=True)


class InverseRenderer(nn.Module):
    """image (3, H, W) -> scene tensor (scene_channels, s, s, s) with s = H / 2**stages."""

    def __init__(self, image_size: int, stages: int, channels_2d: int, channels_3d: int, scene_channels: int) -> None:
        super().__init__()
        side = image_size >> stages
        if side << stages != image_size or side < 2:
            raise ValueError(f"ENR image_size={image_size} must be a multiple of 2**stages={2**stages} (>= 2x)")
        layers: list[nn.Module] = [nn.Conv2d(3, channels_2d, 3, padding=1), _act()]
        for _ in range(stages):
            layers += [nn.Conv2d(channels_2d, channels_2d, 4, stride=2, padding=1), _act()]
        self.conv2d = nn.Sequential(*layers)
        self.inverse_projection = nn.Conv2d(channels_2d, channels_3d * side, 1)
        self.conv3d = nn.Sequential(_act(), nn.Conv3d(channels_3d, channels_3d, 3, padding=1), _act(),
                                    nn.Conv3d(channels_3d, scene_channels, 3, padding=1))
        self.side, self.channels_3d = side, channels_3d
        self.output_shape = (scene_channels, side, side, side)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) -> (N, C, s, s, s)."""
        x = self.inverse_projection(self.conv2d(images))
        x = x.view(x.shape[0], self.channels_3d, self.side, self.side, self.side)  # channels fold into depth
        return self.conv3d(x)


class ForwardRenderer(nn.Module):
    """scene tensor (scene_channels, s, s, s) -> image (3, s * 2**stages, ...), unbounded (clamp to show it).

    No final sigmoid: on mostly white images the L1 loss first drives a sigmoid output to white everywhere,
    where it saturates and its gradient vanishes (seen on the toy sets: training stalled at the blank image).
    """

    def __init__(self, side: int, stages: int, channels_2d: int, channels_3d: int, scene_channels: int) -> None:
        super().__init__()
        self.conv3d = nn.Sequential(nn.Conv3d(scene_channels, channels_3d, 3, padding=1), _act(),
                                    nn.Conv3d(channels_3d, channels_3d, 3, padding=1), _act())
        self.projection = nn.Sequential(nn.Conv2d(channels_3d * side, channels_2d, 1), _act())
        layers: list[nn.Module] = []
        for _ in range(stages):
            layers += [nn.ConvTranspose2d(channels_2d, channels_2d, 4, stride=2, padding=1), _act()]
        layers.append(nn.Conv2d(channels_2d, 3, 3, padding=1))
        self.conv2d = nn.Sequential(*layers)
        self.output_shape = (3, side << stages, side << stages)

    def forward(self, scene: torch.Tensor) -> torch.Tensor:
        """(N, C, s, s, s) -> (N, 3, H, W)."""
        x = self.conv3d(scene)
        x = self.projection(x.flatten(1, 2))  # depth folded into channels, then 1x1
        return self.conv2d(x)


@register("enr")
@gin.configurable
class ENR(SceneModel):
    """ENR with a swap loss over pairs of views.

    Args:
        image_size: H = W of the images.
        stages: stride-2 stages between image and scene side (2: 128 px -> 32^3, 32 px -> 8^3).
        scene_channels: channels C of the scene tensor (paper: 64).
        channels_2d, channels_3d: widths of the 2D and 3D convolutions.
        use_translation: also shift the scene tensor by the objects' relative `offset` (translation sets).
        ssim_weight: weight of (1 - SSIM) beside L1 (the original: 0.05).
        ssim_window: Gaussian window of SSIM (pytorch-msssim's default 11; must be < the image side).
    """

    predict_modes = ("rotated", "unrotated")

    def __init__(
        self,
        image_size: int = 32,
        stages: int = 2,
        scene_channels: int = 8,
        channels_2d: int = 32,
        channels_3d: int = 8,
        use_translation: bool = False,
        ssim_weight: float = 0.05,
        ssim_window: int = 11,
    ) -> None:
        super().__init__({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        if ssim_window % 2 != 1 or ssim_window >= image_size:
            raise ValueError(f"ENR ssim_window={ssim_window} must be odd and below image_size={image_size}")
        self.inverse = InverseRenderer(image_size, stages, channels_2d, channels_3d, scene_channels)
        self.renderer = ForwardRenderer(self.inverse.side, stages, channels_2d, channels_3d, scene_channels)
        self.use_translation, self.ssim_weight, self.ssim_window = use_translation, ssim_weight, ssim_window
        self.scene_shape = self.inverse.output_shape
        self.output_shape = self.renderer.output_shape

    def fields(self) -> tuple[str, ...]:
        """Per-view datasets this model reads besides `images`."""
        return ("azimuth", "elevation", "offset") if self.use_translation else ("azimuth", "elevation")

    def transform(self, scene: torch.Tensor, batch: Batch, src: int, tgt: int) -> torch.Tensor:
        """Turn scene tensors (B, C, s, s, s) inferred from view `src` of each item into view `tgt`."""
        az, el = batch["azimuth"], batch["elevation"]
        rot = relative_rotation(az[:, src], el[:, src], az[:, tgt], el[:, tgt])
        shift = None
        if self.use_translation:
            # world metres -> the original's frame -> normalised units (the tensor spans the unit cube)
            delta = world_to_frame(batch["offset"][:, tgt] - batch["offset"][:, src])
            shift = 2.0 * delta
        return rotate_scene(scene, rot, shift)

    def _loss(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        l1 = (pred - target).abs().mean()
        similarity = ms_ssim(pred.float(), target.float(), data_range=1.0, size_average=True, win_size=self.ssim_window)
        return l1, self.ssim_weight * (1.0 - similarity)

    def forward(self, batch: Batch) -> dict:
        """Training pass on pairs.

        Args:
            batch: images (B, 2, 3, H, W), azimuth / elevation (B, 2) degrees (offset (B, 2, 3) metres).
        Returns:
            {"losses": {"l1": (), "ssim": ()} (means over both swapped renders), "prediction": (B, 3, H, W)
             view 1 rendered from view 0, "mse": () of the swapped renders}
        """
        images = batch["images"]
        b = images.shape[0]
        scenes = self.inverse(images.flatten(0, 1)).unflatten(0, (b, 2))
        to_1 = self.renderer(self.transform(scenes[:, 0], batch, 0, 1))
        to_0 = self.renderer(self.transform(scenes[:, 1], batch, 1, 0))
        pred, target = torch.cat([to_1, to_0]), torch.cat([images[:, 1], images[:, 0]])
        l1, ssim_term = self._loss(pred, target)
        mse = (pred.detach().float().clamp(0, 1) - target.float()).pow(2).mean()
        return {"losses": {"l1": l1, "ssim": ssim_term}, "prediction": to_1, "mse": mse}

    @torch.no_grad()
    def predict(self, batch: Batch, mode: str = "rotated") -> torch.Tensor:
        """View 1 of each item rendered from view 0: (B, 3, H, W). `rotated` turns the scene tensor by the
        relative camera motion (the model); `unrotated` renders it as inferred (an ablation)."""
        if mode not in self.predict_modes:
            raise ValueError(f"unknown ENR predict mode {mode!r}; use one of {self.predict_modes}")
        scene = self.inverse(batch["images"][:, 0])
        if mode == "rotated":
            scene = self.transform(scene, batch, 0, 1)
        return self.renderer(scene).float().clamp(0.0, 1.0)
