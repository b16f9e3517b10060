"""The GQN family: context views + a query, 7-number viewpoints, GQN's three prediction modes and baselines.

Evaluation (`evaluate`): per held-out scene a fixed draw from (seed, scene) picks K context views and one query.
Reported, as means of per-image values:

- `prior_mean` (the headline of this project): every latent at its prior mean, from context only;
- `prior_sample`: one draw from the prior per query (the item's noise seed): how the paper generates;
- `prior_samples`: per query the mean over `num_samples` prior draws of each metric (PSNR of each draw, then
  averaged), a less noisy figure for the paper's sampling;
- `posterior`: reconstruction with the latents at their posterior means; it sees the query image, so it is an
  upper bound, not a novel-view result (the training log's `train/psnr_posterior` is this, on training batches);
- baselines `mean_train_image` and `nearest_context_view` (context image whose 7-number viewpoint is nearest);
- likelihood through the posterior: NLL at the checkpoint's pixel sigma, KL, ELBO, bits per pixel, NLL floor.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, ImageDraw

from train.data import DatasetError, SceneDataset, fixed_batch, mean_image, split_path
from train.families.base import EvalOptions, MetricSums, ModelFamily, RenderOptions, register_family
from train.losses import bits_per_pixel, nll_floor
from train.metrics import image_metrics
from train.models import SceneModel

logger = logging.getLogger(__name__)


def nearest_context_view(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per item, the context image whose viewpoint is nearest (Euclidean, 7 numbers) to the query's: (B, 3, H, W)."""
    dist = (batch["context_viewpoints"] - batch["query_viewpoint"][:, None]).pow(2).sum(-1)
    idx = dist.argmin(dim=1)
    return batch["context_images"][torch.arange(len(idx)), idx]


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class GQNFamily(ModelFamily):
    name = "gqn"
    train_psnr_tag = "train/psnr_posterior"
    sheet_rows = (("target", "truth"), ("prior_mean", "prior mean"), ("posterior", "posterior"),
                  ("prior_sample", "prior sample"), ("nearest_context_view", "nearest context"),
                  ("mean_train_image", "mean image"))

    def make_dataset(self, path: Path, model: SceneModel) -> SceneDataset:
        dataset = SceneDataset(path)  # image_size from gin (SceneDataset.image_size)
        size = model.config.get("image_size")
        if size is not None and size != dataset.image_size:
            raise ValueError(
                f"model image_size={size} but SceneDataset.image_size={dataset.image_size}; bind both to the "
                "same value in the gin file"
            )
        return dataset

    def context_range(self, dataset: SceneDataset, min_context: int, max_context: int) -> tuple[int, int]:
        hi = min(max_context, dataset.num_views - 1)
        lo = min(min_context, hi)
        if lo < 1:
            raise ValueError(f"GQN needs at least one context view: fit.min_context={min_context}, "
                             f"{dataset.num_views} views per scene in {dataset.path}")
        return lo, hi

    def picture(self, model: SceneModel, dataset: SceneDataset, seed: int, context_range: tuple[int, int],
                n: int = 4) -> tuple[str, list[torch.Tensor]]:
        """First context view | truth | each prediction mode."""
        dev = next(model.parameters()).device
        scenes = list(range(min(n, len(dataset))))
        batch = _to(fixed_batch(dataset, scenes, context_range[1], seed), dev)
        preds = [model.predict(batch, m) for m in model.predict_modes]
        rows = [batch["context_images"][:, 0], batch["query_image"], *preds]
        return "train/context|truth|" + "|".join(model.predict_modes), rows

    def evaluate(self, model: SceneModel, state: dict[str, Any], data_dir: Path,
                 options: EvalOptions) -> tuple[dict[str, Any], MetricSums]:
        dev = next(model.parameters()).device
        data = state["data"]
        dataset = SceneDataset(split_path(data_dir, options.split), image_size=data["image_size"])
        k = options.n_context or min(data["max_context"], dataset.num_views - 1)
        if not 1 <= k <= dataset.num_views - 1:
            raise DatasetError(f"n_context={k} impossible with {dataset.num_views} views per scene in {dataset.path}")
        try:
            mean_img = torch.from_numpy(mean_image(SceneDataset(split_path(data_dir, "train"),
                                                                image_size=data["image_size"]))).permute(2, 0, 1)
        except DatasetError as exc:
            logger.warning("no mean-image baseline: %s", exc)
            mean_img = None
        scenes = list(range(min(options.max_scenes, len(dataset))))
        sums = MetricSums(options.save_predictions)
        terms: dict[str, list[np.ndarray]] = {}
        for start in range(0, len(scenes), options.batch_size):
            batch = _to(fixed_batch(dataset, scenes[start : start + options.batch_size], k, options.seed), dev)
            target = batch["query_image"]
            for mode in model.predict_modes:
                sums.add(mode, model.predict(batch, mode), target)
            draws = [image_metrics_of(model, batch, target, j) for j in range(options.num_samples)]
            for metric in draws[0] if draws else ():
                sums.per.setdefault("prior_samples", {}).setdefault(metric, []).append(
                    np.mean([d[metric] for d in draws], axis=0))
            sums.add("nearest_context_view", nearest_context_view(batch), target)
            if mean_img is not None:
                sums.add("mean_train_image", mean_img[None].expand_as(target).to(dev), target)
            for name, values in model.evaluation_terms(batch).items():
                terms.setdefault(name, []).append(values.cpu().numpy())
            sums.keep("target", target)
            sums.keep("scene", batch["scene"])
        h = w = dataset.image_size
        modes = [*model.predict_modes, *(["prior_samples"] if options.num_samples else [])]
        result: dict[str, Any] = {
            "data": str(dataset.path), "num_scenes": len(scenes), "n_context": k, "image_size": h,
            "num_samples": options.num_samples,
            "metrics": {m: sums.summary(m) for m in modes},
            "baselines": {b: sums.summary(b) for b in ("mean_train_image", "nearest_context_view") if b in sums.per},
            "notes": {
                "prior_mean": "generation from context only, every latent at its prior mean (this project's headline)",
                "prior_sample": "one draw from the prior per query (the paper generates by sampling)",
                "prior_samples": f"per query the mean of each metric over {options.num_samples} prior draws",
                "posterior": "reconstruction through the posterior (sees the query image); train/psnr_posterior "
                             "in TensorBoard is this on training batches",
                "psnr": "mean over images of 10 log10(1 / MSE), images in [0, 1]",
            },
        }
        if terms:
            lik = {name: float(np.mean(np.concatenate(v))) for name, v in terms.items()}
            sigma = model.schedule_state().get("pixel_sigma")
            lik["bits_per_pixel"] = bits_per_pixel(lik["elbo"], h, w) if "elbo" in lik else None
            if sigma is not None:
                lik["pixel_sigma"] = sigma
                lik["nll_floor"] = nll_floor(3 * h * w, sigma)
            result["likelihood"] = lik
        return result, sums

    def render(self, model: SceneModel, state: dict[str, Any], data_dir: Path, options: RenderOptions) -> dict[str, str]:
        """Context views, the scene's other views with predictions, and a ring of novel views (PNG + GIF)."""
        from train.novel_views import _predict, _tiles, labelled_grid, ring_path, save_gif, save_image_atomic

        if options.rotate:
            raise ValueError("render --rotate is for RenderNet and ENR; GQN's render already turns along a ring")
        mode = model.predict_modes[0]
        dataset = SceneDataset(split_path(data_dir, options.split), image_size=state["data"]["image_size"])
        scene, seed, tile, num_frames = options.scene, options.seed, options.tile, options.num_frames
        if not 0 <= scene < len(dataset):
            raise ValueError(f"scene {scene} out of range: {dataset.path} holds {len(dataset)} scenes")
        images, views = dataset.read_scene(scene)
        k = options.n_context or min(state["data"]["max_context"], dataset.num_views - 1)
        k = min(k, dataset.num_views - 1)
        order = np.random.default_rng([seed, scene]).permutation(dataset.num_views)
        ctx, rest = order[:k], np.sort(order[k:])[:8]
        ctx_images = torch.from_numpy(np.ascontiguousarray(images[ctx].transpose(0, 3, 1, 2)))
        ctx_views = torch.from_numpy(views[ctx])
        truth_pred = _predict(model, ctx_images, ctx_views, views[rest], mode, seed)
        path = ring_path(views[ctx], num_frames)
        ring = _predict(model, ctx_images, ctx_views, path, mode, seed)
        show = np.linspace(0, num_frames - 1, min(8, num_frames)).round().astype(int)
        grid = labelled_grid([
            ("context views", images[ctx]),
            ("ground truth", images[rest]),
            (f"predicted\n({mode})", truth_pred),
            ("novel views\n(ring path)", ring[show]),
        ], tile=tile)
        folder = options.out_dir
        folder.mkdir(parents=True, exist_ok=True)
        png, gif = folder / f"scene_{scene:04d}.png", folder / f"scene_{scene:04d}.gif"
        save_image_atomic(grid, png)
        big = 2 * tile
        ctx_strip = labelled_grid([("context", images[ctx])], tile=tile // 2, label_width=60)
        frames = []
        for i, im in enumerate(_tiles(ring, big)):
            frame = Image.new("RGB", (max(big, ctx_strip.width), big + ctx_strip.height + 16), "white")
            frame.paste(im, ((frame.width - big) // 2, 0))
            ImageDraw.Draw(frame).text((4, big + 2), f"novel view {i + 1}/{num_frames} ({mode})", fill="black")
            frame.paste(ctx_strip, (0, big + 16))
            frames.append(frame)
        save_gif(frames, gif)
        return {"png": str(png), "gif": str(gif)}


def image_metrics_of(model: SceneModel, batch: dict[str, torch.Tensor], target: torch.Tensor,
                     draw: int) -> dict[str, np.ndarray]:
    """Metrics of prior draw number `draw` (noise seed shifted by a fixed per-draw offset), (B,) each."""
    shifted = {**batch, "noise_seed": batch["noise_seed"] + 7919 * (draw + 1)}
    return image_metrics(model.predict(shifted, "prior_sample"), target)


register_family(GQNFamily())
