"""`python -m train evaluate`: image metrics on held-out scenes, with trivial baselines, written to JSON.

For each held-out scene (in order), a fixed draw from (seed, scene) picks `n_context` context views and one query
view. Reported (means of per-image values):

- `prior_mean` (the headline): the query view generated with every latent at its prior mean, from context only;
- `posterior`: reconstruction through the posterior (latents at their posterior means; it sees the query
  image, so it is an upper bound, not a novel-view result);
- `prior_sample`: one draw from the prior (the item's noise seed);
- baselines: `mean_train_image` (mean of all training views) and `nearest_context_view` (the context image whose
  7-number viewpoint is closest to the query's);
- likelihood (through the posterior): NLL at the checkpoint's pixel sigma, KL, ELBO, bits per pixel, and the NLL
  floor that a perfect mean would reach at that sigma.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch

from train import checkpoint as ckpt
from train.data import DatasetError, SceneDataset, fixed_batch, mean_image, split_path
from train.losses import bits_per_pixel, nll_floor
from train.metrics import image_metrics
from train.models import SceneModel, build_model
from train.trainer import _resolve_device

logger = logging.getLogger(__name__)


def load_trained_model(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                       device: str = "auto") -> tuple[SceneModel, dict[str, Any], Path]:
    """Rebuild a run's model from a checkpoint (newest unless given) in eval mode, with its schedules at its step.

    Returns:
        (model, checkpoint dict, checkpoint path).
    """
    path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(run_dir)
    state = ckpt.load_checkpoint(path)
    model = build_model(state["model_name"], **state["model_config"])
    model.load_state_dict(state["model"])
    model.set_step(int(state["step"]))
    return model.to(_resolve_device(device)).eval(), state, path


def _to(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


def nearest_context_view(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per item, the context image whose viewpoint is nearest (Euclidean, 7 numbers) to the query's: (B, 3, H, W)."""
    dist = (batch["context_viewpoints"] - batch["query_viewpoint"][:, None]).pow(2).sum(-1)
    idx = dist.argmin(dim=1)
    return batch["context_images"][torch.arange(len(idx)), idx]


def _summary(per_image: dict[str, list[np.ndarray]]) -> dict[str, float]:
    return {k: float(np.mean(np.concatenate(v))) for k, v in per_image.items()}


@gin.configurable(denylist=["run_dir", "data_dir"])
def evaluate(
    run_dir: str | os.PathLike,
    data_dir: str | os.PathLike,
    split: str = "test",
    checkpoint: str | None = None,
    max_scenes: int = 1000,
    n_context: int = 0,
    batch_size: int = 16,
    seed: int = 1234,
    save_predictions: bool = False,
    out: str | None = None,
    device: str = "auto",
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on a held-out split and write `RUN/eval_{split}.json`.

    Args:
        run_dir: the run folder (`python -m train fit --run`).
        data_dir: dataset folder with `scenes_{split}.h5` (and `scenes_train.h5` for the mean-image baseline).
        split: "val" or "test" (or "train" to check fitting).
        checkpoint: a checkpoint file; default the run's newest.
        max_scenes: evaluate at most this many scenes (the first ones).
        n_context: context views per scene; 0 = the most the run trained with.
        batch_size: scenes per forward pass.
        seed: seed of the fixed view choice and noise per scene.
        save_predictions: also write `RUN/eval_{split}_predictions.npz` (uint8-free float32 arrays
            `target`, one per prediction mode and baseline, (N, H, W, 3) in [0, 1], and `scene`) and a picture of
            the first 8 queries, one row per array, as `RUN/eval_{split}_predictions.png`.
        out: JSON path instead of `RUN/eval_{split}.json`.
        device: "auto", "cpu" or "cuda".
    Returns:
        The JSON content.
    """
    model, state, path = load_trained_model(run_dir, checkpoint, device)
    dev = next(model.parameters()).device
    data = state["data"]
    dataset = SceneDataset(split_path(data_dir, split), image_size=data["image_size"])
    k = n_context or min(data["max_context"], dataset.num_views - 1)
    if not 1 <= k <= dataset.num_views - 1:
        raise DatasetError(f"n_context={k} impossible with {dataset.num_views} views per scene in {dataset.path}")
    try:
        mean_img = torch.from_numpy(mean_image(SceneDataset(split_path(data_dir, "train"),
                                                            image_size=data["image_size"]))).permute(2, 0, 1)
    except DatasetError as exc:
        logger.warning("no mean-image baseline: %s", exc)
        mean_img = None
    scenes = list(range(min(max_scenes, len(dataset))))
    per: dict[str, dict[str, list[np.ndarray]]] = {}
    terms: dict[str, list[np.ndarray]] = {}
    saved: dict[str, list[np.ndarray]] = {}

    def add(name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        for metric, values in image_metrics(pred, target).items():
            per.setdefault(name, {}).setdefault(metric, []).append(values)
        if save_predictions:
            saved.setdefault(name, []).append(pred.detach().cpu().permute(0, 2, 3, 1).numpy().astype(np.float32))

    for start in range(0, len(scenes), batch_size):
        batch = _to(fixed_batch(dataset, scenes[start : start + batch_size], k, seed), dev)
        target = batch["query_image"]
        for mode in model.predict_modes:
            add(mode, model.predict(batch, mode), target)
        add("nearest_context_view", nearest_context_view(batch), target)
        if mean_img is not None:
            add("mean_train_image", mean_img[None].expand_as(target).to(dev), target)
        for name, values in model.evaluation_terms(batch).items():
            terms.setdefault(name, []).append(values.cpu().numpy())
        if save_predictions:
            saved.setdefault("target", []).append(target.cpu().permute(0, 2, 3, 1).numpy())
            saved.setdefault("scene", []).append(batch["scene"].cpu().numpy())

    h = w = dataset.image_size
    result: dict[str, Any] = {
        "split": split, "data": str(dataset.path), "checkpoint": str(path), "step": int(state["step"]),
        "model": state["model_name"], "num_scenes": len(scenes), "n_context": k, "image_size": h, "seed": seed,
        "headline": model.predict_modes[0] if model.predict_modes else None,
        "metrics": {m: _summary(per[m]) for m in model.predict_modes},
        "baselines": {b: _summary(per[b]) for b in ("mean_train_image", "nearest_context_view") if b in per},
        "notes": {
            "prior_mean": "generation from context only, every latent at its prior mean (headline)",
            "posterior": "reconstruction through the posterior (sees the query image)",
            "prior_sample": "one draw from the prior",
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
    destination = Path(out) if out else Path(run_dir) / f"eval_{split}.json"
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, destination)
    if save_predictions:
        npz = Path(run_dir) / f"eval_{split}_predictions.npz"
        tmp = npz.with_name(f".{npz.stem}.tmp-{os.getpid()}.npz")
        arrays = {k2: np.concatenate(v) for k2, v in saved.items()}
        np.savez_compressed(tmp, **arrays)
        os.replace(tmp, npz)
        _predictions_sheet(arrays, npz.with_suffix(".png"))
    logger.info("wrote %s", destination)
    return result


_SHEET_ROWS = (("target", "truth"), ("prior_mean", "prior mean"), ("posterior", "posterior"),
               ("prior_sample", "prior sample"), ("nearest_context_view", "nearest context"),
               ("mean_train_image", "mean image"))


def _predictions_sheet(arrays: dict[str, np.ndarray], path: Path, columns: int = 8) -> None:
    """A labelled PNG of the first query views: truth, each prediction mode and each baseline, one row each."""
    from train.novel_views import labelled_grid, save_image_atomic  # novel_views imports this module

    rows = [(label, arrays[key][:columns]) for key, label in _SHEET_ROWS if key in arrays]
    save_image_atomic(labelled_grid(rows, tile=64), path)
