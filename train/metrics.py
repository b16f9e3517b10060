"""Image metrics on [0, 1] images: MSE, PSNR = 10 log10(1 / MSE), SSIM (scikit-image).

All functions return one value per image; averages over a split are means of the per-image values.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from skimage.metrics import structural_similarity

logger = logging.getLogger(__name__)

#: MSE floor so identical images give a finite PSNR (100 dB).
_MSE_FLOOR = 1e-10


def _as_numpy(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(B, 3, H, W) tensor or (B, H, W, 3) array -> float64 (B, H, W, 3)."""
    if isinstance(images, torch.Tensor):
        return images.detach().cpu().double().permute(0, 2, 3, 1).numpy()
    return np.asarray(images, dtype=np.float64)


def mse(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> np.ndarray:
    """Mean squared error per image: (B,) float64. Images as (B, 3, H, W) tensors or (B, H, W, 3) arrays."""
    p, t = _as_numpy(pred), _as_numpy(target)
    if p.shape != t.shape:
        raise ValueError(f"prediction {p.shape} and target {t.shape} differ in shape")
    return ((p - t) ** 2).reshape(len(p), -1).mean(axis=1)


def psnr(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> np.ndarray:
    """PSNR per image in dB for images in [0, 1]: 10 log10(1 / MSE), (B,) float64."""
    return 10.0 * np.log10(1.0 / np.maximum(mse(pred, target), _MSE_FLOOR))


def ssim(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> np.ndarray:
    """Structural similarity per image (scikit-image, 7x7 window, data range 1), (B,) float64."""
    p, t = _as_numpy(pred), _as_numpy(target)
    win = min(7, p.shape[1], p.shape[2])
    win -= 1 - win % 2  # odd window
    return np.array([
        structural_similarity(a, b, data_range=1.0, channel_axis=-1, win_size=win) for a, b in zip(p, t, strict=True)
    ])


def image_metrics(pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """{"psnr", "ssim", "mse"} per image."""
    return {"psnr": psnr(pred, target), "ssim": ssim(pred, target), "mse": mse(pred, target)}
