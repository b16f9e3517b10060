"""Loss terms and the GQN paper's annealing schedules.

GQN's loss is the negative ELBO in nats per image: NLL of the query image under a Gaussian with mean from the
model and a fixed, annealed pixel sigma, plus the KL between posterior and prior summed over all latent steps.
With sigma = 0.7 the NLL of a 64x64x3 image cannot fall below 12288 * 0.5 * ln(2 pi 0.49) = 6,909 nats
(`nll_floor`), however good the prediction: judge images by MSE/PSNR, not by the ELBO's size.
"""

from __future__ import annotations

import logging
import math

import torch

logger = logging.getLogger(__name__)


def gaussian_nll(target: torch.Tensor, mean: torch.Tensor, sigma: float) -> torch.Tensor:
    """Negative log-likelihood of `target` under N(mean, sigma^2), summed per item.

    Args:
        target, mean: (B, C, H, W) float.
        sigma: pixel standard deviation.
    Returns:
        (B,) nats.
    """
    var = sigma * sigma
    per_pixel = 0.5 * math.log(2 * math.pi * var) + (target - mean).pow(2) / (2 * var)
    return per_pixel.flatten(1).sum(dim=1)


def nll_floor(num_values: int, sigma: float) -> float:
    """The smallest NLL (nats) possible for `num_values` pixel values at pixel sigma `sigma` (perfect mean)."""
    return num_values * 0.5 * math.log(2 * math.pi * sigma * sigma)


def kl_normal(mu_q: torch.Tensor, logvar_q: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu_q, var_q) || N(mu_p, var_p)) of diagonal Gaussians, summed per item: all (B, ...) -> (B,) nats."""
    kl = 0.5 * (logvar_p - logvar_q + (logvar_q.exp() + (mu_q - mu_p).pow(2)) / logvar_p.exp() - 1.0)
    return kl.flatten(1).sum(dim=1)


def bits_per_pixel(nats_per_image: float, height: int, width: int) -> float:
    """Nats per image -> bits per pixel (one pixel = its 3 colour values)."""
    return nats_per_image / (math.log(2) * height * width)


def linear_anneal(step: int, initial: float, final: float, steps: int) -> float:
    """The GQN paper's schedule: `max(final + (initial - final) * (1 - step / steps), final)` (for initial > final)."""
    if steps <= 0:
        return final
    frac = min(max(step / steps, 0.0), 1.0)
    return final + (initial - final) * (1.0 - frac)


class PixelSigmaAnnealer:
    """Pixel standard deviation of the GQN likelihood, annealed linearly from `initial` to `final`.

    Args:
        initial: sigma at step 0 (paper: 2.0).
        final: sigma from `anneal_steps` on (paper: 0.7).
        anneal_steps: steps of the linear ramp (paper: 200,000; the CPU config uses far fewer).

    Configured through the model (e.g. `GQN.sigma_initial`), not gin directly.
    """

    def __init__(self, initial: float = 2.0, final: float = 0.7, anneal_steps: int = 200_000) -> None:
        if initial <= 0 or final <= 0:
            raise ValueError(f"pixel sigma must be positive, got initial={initial}, final={final}")
        self.initial, self.final, self.anneal_steps = initial, final, anneal_steps
        self.step = 0

    @property
    def sigma(self) -> float:
        return linear_anneal(self.step, self.initial, self.final, self.anneal_steps)
