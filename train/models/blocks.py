"""Building blocks shared by the models. Each block is built for a known input shape and exposes
`output_shape` (C, H, W) without the batch dimension, so sub-networks can be chained without guessing sizes."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

logger = logging.getLogger(__name__)

Shape = tuple[int, int, int]


class ConvLSTMCell(nn.Module):
    """Convolutional LSTM with fused gates: one convolution of [input, h] gives all four gates.

    Args:
        input_shape: (C_in, H, W) of the input.
        hidden_channels: channels of h and c.
        kernel_size: odd kernel of the gate convolution ("same" padding keeps H x W).
    """

    def __init__(self, input_shape: Shape, hidden_channels: int, kernel_size: int = 3) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvLSTM kernel_size must be odd, got {kernel_size}")
        c_in, h, w = input_shape
        self.hidden_channels = hidden_channels
        self.gates = nn.Conv2d(c_in + hidden_channels, 4 * hidden_channels, kernel_size, padding=kernel_size // 2)
        self.output_shape: Shape = (hidden_channels, h, w)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, C_in, H, W), state (h, c) each (B, hidden, H, W) -> new (h, c)."""
        h, c = state
        i, f, g, o = self.gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        return h, c

    def initial_state(self, batch: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Zero (h, c) of shape (batch, hidden, H, W) on `like`'s device and dtype."""
        zeros = like.new_zeros((batch, *self.output_shape))
        return zeros, zeros.clone()


class Upsampler(nn.Module):
    """Upsample a feature map by 2 ** n without transposed convolutions (no checkerboard or block artefacts).

    Each x2 stage is either `bilinear` (bilinear resize, then a 3x3 conv) or `pixel_shuffle` (3x3 conv to 4x the
    channels, then a 2x2 pixel shuffle), followed by ReLU; a final 3x3 conv maps to `out_channels`.
    `transposed` is the GQN paper's stride-`factor` transposed conv (config/train/gqn_paper.gin uses it; applied
    once to the summed canvas, which equals the paper's per-step application since both are linear); it
    leaves factor x factor block artefacts, which is why the CPU default is `bilinear`.
    """

    def __init__(self, input_shape: Shape, out_channels: int, factor: int, mode: str = "bilinear",
                 hidden_channels: int | None = None) -> None:
        super().__init__()
        c, h, w = input_shape
        if factor < 1 or factor & (factor - 1):
            raise ValueError(f"upsampling factor must be a power of two, got {factor}")
        hidden = hidden_channels or c
        self.mode = mode
        layers: list[nn.Module] = []
        if mode == "transposed":
            layers.append(nn.ConvTranspose2d(c, out_channels, factor, stride=factor))
        elif mode in ("bilinear", "pixel_shuffle"):
            ch = c
            for _ in range(factor.bit_length() - 1):
                if mode == "bilinear":
                    layers += [nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
                               nn.Conv2d(ch, hidden, 3, padding=1)]
                else:
                    layers += [nn.Conv2d(ch, 4 * hidden, 3, padding=1), nn.PixelShuffle(2)]
                layers.append(nn.ReLU(inplace=True))
                ch = hidden
            layers.append(nn.Conv2d(ch, out_channels, 3, padding=1))
        else:
            raise ValueError(f"unknown upsampling mode {mode!r}; use 'bilinear', 'pixel_shuffle' or 'transposed'")
        self.net = nn.Sequential(*layers)
        self.output_shape: Shape = (out_channels, h * factor, w * factor)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, C, H, W) -> (B, out_channels, H * factor, W * factor)."""
        return self.net(x)


class TowerRepresentation(nn.Module):
    """GQN's "tower" representation of one view (and its "pool" variant).

    image (3, H, W) and viewpoint (7,) -> r (channels, H/4, W/4), or (channels, 1, 1) when `pool` is set.
    Two stride-2 2x2 convolutions with residual branches; the viewpoint is broadcast and concatenated at H/4.

    Args:
        image_shape: (3, H, W), H and W divisible by 4.
        viewpoint_dim: length of the viewpoint vector.
        channels: output channels (the paper uses 256); inner layers use channels // 2.
        pool: average-pool the final map to 1 x 1 ("pool" architecture).
    """

    def __init__(self, image_shape: Shape, viewpoint_dim: int = 7, channels: int = 256, pool: bool = False) -> None:
        super().__init__()
        c, h, w = image_shape
        if h % 4 or w % 4:
            raise ValueError(f"tower representation needs H and W divisible by 4, got {h}x{w}")
        half = max(channels // 2, 1)
        self.conv1 = nn.Conv2d(c, channels, 2, stride=2)
        self.skip2 = nn.Conv2d(channels, channels, 2, stride=2)
        self.conv2 = nn.Conv2d(channels, half, 3, padding=1)
        self.conv3 = nn.Conv2d(half, channels, 2, stride=2)
        self.skip5 = nn.Conv2d(channels + viewpoint_dim, channels, 3, padding=1)
        self.conv5 = nn.Conv2d(channels + viewpoint_dim, half, 3, padding=1)
        self.conv6 = nn.Conv2d(half, channels, 3, padding=1)
        self.conv7 = nn.Conv2d(channels, channels, 1)
        self.pool = pool
        self.output_shape: Shape = (channels, 1, 1) if pool else (channels, h // 4, w // 4)

    def forward(self, image: torch.Tensor, viewpoint: torch.Tensor) -> torch.Tensor:
        """image (N, 3, H, W), viewpoint (N, 7) -> r (N, *output_shape)."""
        x = F.relu(self.conv1(image))
        x = F.relu(self.conv3(F.relu(self.conv2(x)))) + F.relu(self.skip2(x))
        v = viewpoint[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3])
        x = torch.cat([x, v], dim=1)
        x = F.relu(self.conv6(F.relu(self.conv5(x)))) + F.relu(self.skip5(x))
        x = F.relu(self.conv7(x))
        if self.pool:
            x = x.mean(dim=(2, 3), keepdim=True)
        return x
