"""Generative Query Network (Eslami et al., Science 2018): representation network + DRAW-style latent model.

Composition:
- representation: a tower (or pooled tower) encodes each context view with its viewpoint; the scene
  representation r is the sum over context views, (B, R, h, w) with h = H / 4 (pooled: broadcast from 1 x 1).
- L steps of two ConvLSTM cores at h x w: the inference core (training only) reads the query image, and its
  posterior over z_l is pulled towards the generator's prior by the KL term; the generator core reads
  (v_q, r, z_l) and writes into a canvas u (B, U, h, w).
- the canvas is decoded to the image mean by an `Upsampler` and a sigmoid: bilinear + conv stages by default;
  `upsample='transposed'` is the paper's stride-4 transposed conv (it adds T(h_l) to a full-size canvas at
  every step; T is linear, so one T of the summed low-resolution canvas is the same function), which leaves
  4 x 4 block artefacts.

Three ways to render a query view (`predict` modes): `prior_mean` (z_l = prior mean: this project's headline
number; deterministic), `posterior` (z_l = posterior mean: reconstruction, needs the query image),
`prior_sample` (z_l drawn from the prior with the item's noise seed: how the paper generates; `evaluate`
also reports the mean over several draws as `prior_samples`).
"""

from __future__ import annotations

import logging

import gin
import torch
from torch import nn

from train.data import Batch
from train.losses import PixelSigmaAnnealer, gaussian_nll, kl_normal
from train.models.base import SceneModel, register
from train.models.blocks import ConvLSTMCell, TowerRepresentation, Upsampler

logger = logging.getLogger(__name__)

_LOGVAR_RANGE = (-12.0, 8.0)


def item_noise(seeds: torch.Tensor, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
    """Standard normal noise drawn per item from its own seed: (B, *shape).

    Independent of batch composition and process rank, so a DDP run draws the same noise as one process.
    """
    gen = torch.Generator(device="cpu")
    out = []
    for s in seeds.tolist():
        gen.manual_seed(int(s))
        out.append(torch.randn(shape, generator=gen))
    return torch.stack(out).to(device)


@register("gqn")
@gin.configurable
class GQN(SceneModel):
    """GQN with a ConvLSTM generator and inference core.

    Args:
        image_size: H = W of the images (divisible by 4).
        viewpoint_dim: length of a viewpoint vector (7).
        representation: "tower" (r at H/4) or "pool" (r at 1 x 1, broadcast).
        r_channels: channels of the representation r.
        h_channels: hidden channels of each ConvLSTM core.
        z_channels: channels of each latent z_l (at H/4 x W/4).
        canvas_channels: channels of the canvas u.
        steps: number L of generation steps.
        kernel_size: kernel of the ConvLSTM gate convolutions (paper: 5; CPU default 3).
        prior_kernel_size: kernel of the prior/posterior heads.
        share_cores: use one generator core for all L steps (paper: shared); False gives one core per step.
        upsample: canvas decoder, "bilinear", "pixel_shuffle" or "transposed" (original, block artefacts).
        sigma_initial, sigma_final, sigma_anneal_steps: pixel sigma schedule (`PixelSigmaAnnealer`).
    """

    predict_modes = ("prior_mean", "posterior", "prior_sample")

    def __init__(
        self,
        image_size: int = 32,
        viewpoint_dim: int = 7,
        representation: str = "tower",
        r_channels: int = 32,
        h_channels: int = 32,
        z_channels: int = 4,
        canvas_channels: int = 32,
        steps: int = 4,
        kernel_size: int = 3,
        prior_kernel_size: int = 3,
        share_cores: bool = True,
        upsample: str = "bilinear",
        sigma_initial: float = 2.0,
        sigma_final: float = 0.7,
        sigma_anneal_steps: int = 200_000,
    ) -> None:
        super().__init__({k: v for k, v in locals().items() if k not in ("self", "__class__")})
        if representation not in ("tower", "pool"):
            raise ValueError(f"unknown GQN representation {representation!r}; use 'tower' or 'pool'")
        if image_size % 4:
            raise ValueError(f"GQN image_size must be divisible by 4, got {image_size}")
        self.image_size, self.steps, self.z_channels = image_size, steps, z_channels
        h = w = image_size // 4
        self.latent_hw = (h, w)
        self.representation = TowerRepresentation((3, image_size, image_size), viewpoint_dim, r_channels,
                                                  pool=representation == "pool")
        # Query image at the latent resolution for the inference core: a stride-4 4x4 conv (space-to-depth).
        self.query_encoder = nn.Conv2d(3, h_channels, 4, stride=4)
        gen_in = (viewpoint_dim + r_channels + z_channels, h, w)
        inf_in = (h_channels + viewpoint_dim + r_channels + h_channels + canvas_channels, h, w)
        n_cores = 1 if share_cores else steps
        self.generator_cores = nn.ModuleList(ConvLSTMCell(gen_in, h_channels, kernel_size) for _ in range(n_cores))
        self.inference_cores = nn.ModuleList(ConvLSTMCell(inf_in, h_channels, kernel_size) for _ in range(n_cores))
        pad = prior_kernel_size // 2
        self.prior_head = nn.Conv2d(h_channels, 2 * z_channels, prior_kernel_size, padding=pad)
        self.posterior_head = nn.Conv2d(h_channels, 2 * z_channels, prior_kernel_size, padding=pad)
        self.canvas_writer = nn.Conv2d(h_channels, canvas_channels, 1)
        self.decoder = Upsampler((canvas_channels, h, w), 3, 4, mode=upsample)
        self.canvas_channels = canvas_channels
        self.annealer = PixelSigmaAnnealer(sigma_initial, sigma_final, sigma_anneal_steps)
        self.output_shape = self.decoder.output_shape

    # --- schedules -------------------------------------------------------------------------------------------
    def set_step(self, step: int) -> None:
        self.annealer.step = step

    @property
    def pixel_sigma(self) -> float:
        return self.annealer.sigma

    def schedule_state(self) -> dict[str, float]:
        return {"pixel_sigma": self.pixel_sigma}

    # --- sub-networks ----------------------------------------------------------------------------------------
    def represent(self, images: torch.Tensor, viewpoints: torch.Tensor) -> torch.Tensor:
        """Scene representation from K context views.

        Args:
            images: (B, K, 3, H, W); viewpoints: (B, K, 7).
        Returns:
            r (B, R, H/4, W/4), summed over the K views (pooled r broadcast to H/4).
        """
        b, k = images.shape[:2]
        r = self.representation(images.flatten(0, 1), viewpoints.flatten(0, 1))
        r = r.view(b, k, *r.shape[1:]).sum(dim=1)
        return r.expand(-1, -1, *self.latent_hw) if r.shape[-1] == 1 else r

    def _core(self, cores: nn.ModuleList, step: int) -> ConvLSTMCell:
        return cores[0] if len(cores) == 1 else cores[step]

    def _run(self, batch: Batch, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the L latent steps.

        Args:
            batch: see `train.data.Batch`.
            mode: "train" (z from the posterior with noise; returns the KL), "posterior" (posterior means),
                "prior_mean" or "prior_sample".
        Returns:
            mean image (B, 3, H, W) in [0, 1], and KL per item (B,) (zeros unless training/posterior).
        """
        r = self.represent(batch["context_images"], batch["context_viewpoints"])
        b = r.shape[0]
        v = batch["query_viewpoint"][:, :, None, None].expand(-1, -1, *self.latent_hw)
        h_g, c_g = self.generator_cores[0].initial_state(b, r)
        u = r.new_zeros((b, self.canvas_channels, *self.latent_hw))
        use_inference = mode in ("train", "posterior")
        if use_inference:
            x_enc = self.query_encoder(batch["query_image"])
            h_e, c_e = self.inference_cores[0].initial_state(b, r)
        noise = None
        if mode in ("train", "prior_sample"):
            noise = item_noise(batch["noise_seed"], (self.steps, self.z_channels, *self.latent_hw), r.device)
            noise = noise.to(r.dtype)
        kl = r.new_zeros(b, dtype=torch.float32)
        for step in range(self.steps):
            prior_mu, prior_logvar = self.prior_head(h_g).chunk(2, dim=1)
            prior_logvar = prior_logvar.clamp(*_LOGVAR_RANGE)
            if use_inference:
                inp = torch.cat([x_enc, v, r, h_g, u], dim=1)
                h_e, c_e = self._core(self.inference_cores, step)(inp, (h_e, c_e))
                post_mu, post_logvar = self.posterior_head(h_e).chunk(2, dim=1)
                post_logvar = post_logvar.clamp(*_LOGVAR_RANGE)
                kl = kl + kl_normal(post_mu.float(), post_logvar.float(), prior_mu.float(), prior_logvar.float())
                z = post_mu + (0.5 * post_logvar).exp() * noise[:, step] if mode == "train" else post_mu
            elif mode == "prior_mean":
                z = prior_mu
            elif mode == "prior_sample":
                z = prior_mu + (0.5 * prior_logvar).exp() * noise[:, step]
            else:
                raise ValueError(f"unknown GQN mode {mode!r}; use one of {('train', *self.predict_modes)}")
            h_g, c_g = self._core(self.generator_cores, step)(torch.cat([v, r, z], dim=1), (h_g, c_g))
            u = u + self.canvas_writer(h_g)
        mean = torch.sigmoid(self.decoder(u))
        return mean, kl

    # --- interface -------------------------------------------------------------------------------------------
    def forward(self, batch: Batch) -> dict:
        """Training pass: losses {"nll", "kl"} (means over the batch, nats per image) and the reconstruction.

        Returns:
            {"losses": {"nll": (), "kl": ()}, "prediction": (B, 3, H, W) posterior-sample mean image,
             "mse": () mean squared error of the prediction}
        """
        mean, kl = self._run(batch, "train")
        target = batch["query_image"]
        nll = gaussian_nll(target.float(), mean.float(), self.pixel_sigma)
        mse = (mean.detach().float() - target.float()).pow(2).mean()
        return {"losses": {"nll": nll.mean(), "kl": kl.mean()}, "prediction": mean, "mse": mse}

    @torch.no_grad()
    def predict(self, batch: Batch, mode: str = "prior_mean") -> torch.Tensor:
        if mode not in self.predict_modes:
            raise ValueError(f"unknown GQN predict mode {mode!r}; use one of {self.predict_modes}")
        return self._run(batch, mode)[0].float()

    @torch.no_grad()
    def evaluation_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-item NLL (at the current pixel sigma), KL and ELBO through the posterior, each (B,) nats."""
        mean, kl = self._run(batch, "train")
        nll = gaussian_nll(batch["query_image"].float(), mean.float(), self.pixel_sigma)
        return {"nll": nll, "kl": kl, "elbo": nll + kl}
