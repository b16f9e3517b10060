"""The ENR family: pairs of views of one scene with azimuth/elevation in degrees; the original's PSNR protocol.

Evaluation follows `evaluate_psnr.py` of the original: in each test scene (251 views on an Archimedean spiral)
view `source_view` (64) is rendered into every other view; PSNR is the mean over all those images. Beside it:
`unrotated` (the scene tensor rendered without turning it: what the rotation adds) and the baseline
`source_view_copied` (the source image given as the prediction for every target).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.data import DatasetError, ItemKey, PosedViewDataset, SceneDataset, _collate, split_path
from train.families.base import EvalOptions, MetricSums, ModelFamily, RenderOptions, register_family
from train.models import SceneModel

logger = logging.getLogger(__name__)

#: The original protocol's test scenes: 251 views, (views - 1) % 125 == 0.
PROTOCOL_VIEWS = 251


def _dataset(path: Path, model: SceneModel, image_size: int | None = None) -> PosedViewDataset:
    return PosedViewDataset(path, image_size or model.config["image_size"], model.fields(), "ENR")


def pair_batch(dataset: PosedViewDataset, scene: int, source: int, targets: np.ndarray) -> dict[str, torch.Tensor]:
    """Items (source, target) of one scene for each target view: images (N, 2, 3, H, W) and angles (N, 2)."""
    views = dataset.read_views(scene, np.concatenate([[source], targets]))
    n = len(targets)
    out = {}
    for name, value in views.items():
        if name == "scene":
            out[name] = value.expand(n)
        else:
            out[name] = torch.stack([value[[0] * n], value[1:]], dim=1)
    return out


class ENRFamily(ModelFamily):
    name = "enr"
    train_psnr_tag = "train/psnr_swapped"  # both views rendered from the other one's scene tensor
    sheet_rows = (("target", "truth"), ("rotated", "ENR"), ("unrotated", "no rotation"),
                  ("source_view_copied", "source view"))

    def make_dataset(self, path: Path, model: SceneModel) -> SceneDataset:
        return _dataset(path, model)

    def context_range(self, dataset: SceneDataset, min_context: int, max_context: int) -> tuple[int, int]:
        if dataset.num_views < 2:
            raise DatasetError(f"{dataset.path}: ENR trains on pairs of views; scenes have {dataset.num_views}")
        return 1, 1

    def picture(self, model: SceneModel, dataset: SceneDataset, seed: int, context_range: tuple[int, int],
                n: int = 4) -> tuple[str, list[torch.Tensor]]:
        """Source | target | rendered with the rotation | without it."""
        dev = next(model.parameters()).device
        keys = [ItemKey(s, 1, int(np.random.SeedSequence([seed, 3, s]).generate_state(1)[0]))
                for s in range(min(n, len(dataset)))]
        batch = {k: v.to(dev) for k, v in _collate([dataset[k] for k in keys]).items()}
        rows = [batch["images"][:, 0], batch["images"][:, 1], *(model.predict(batch, m) for m in model.predict_modes)]
        return "train/source|target|" + "|".join(model.predict_modes), rows

    def evaluate(self, model: SceneModel, state: dict[str, Any], data_dir: Path,
                 options: EvalOptions) -> tuple[dict[str, Any], MetricSums]:
        dev = next(model.parameters()).device
        dataset = _dataset(split_path(data_dir, options.split), model, state["data"]["image_size"])
        v, src = dataset.num_views, options.source_view
        if not 0 <= src < v:
            raise DatasetError(f"{dataset.path}: source view {src} but scenes have {v} views; the original protocol "
                               f"needs {PROTOCOL_VIEWS} spiral views (set -p 'evaluate.source_view=N' otherwise)")
        if (v - 1) % 125:
            logger.warning("%s has %d views per scene; the original protocol's test scenes have %d",
                           dataset.path, v, PROTOCOL_VIEWS)
        targets = np.array([i for i in range(v) if i != src])
        scenes = list(range(min(options.max_scenes, len(dataset))))
        sums = MetricSums(False)
        for scene in scenes:
            keep = options.save_predictions and scene == scenes[0]  # one scene's views: the rest would be huge
            sums.keep_images = keep
            for start in range(0, len(targets), options.batch_size):
                batch = {k: t.to(dev) for k, t in pair_batch(dataset, scene, src, targets[start:start + options.batch_size]).items()}
                target = batch["images"][:, 1]
                for mode in model.predict_modes:
                    sums.add(mode, model.predict(batch, mode), target)
                sums.add("source_view_copied", batch["images"][:, 0], target)
                sums.keep("target", target)
                sums.keep("scene", batch["scene"])
        sums.keep_images = options.save_predictions
        result = {
            "data": str(dataset.path), "num_scenes": len(scenes), "image_size": dataset.image_size,
            "views_per_scene": v, "source_view": src, "num_images": len(scenes) * len(targets),
            "metrics": {m: sums.summary(m) for m in model.predict_modes},
            "baselines": {"source_view_copied": sums.summary("source_view_copied")},
            "notes": {
                "rotated": f"view {src} of each scene rendered into each of its other {len(targets)} views with the "
                           "relative rotation (the original's PSNR protocol; headline)",
                "unrotated": "the same scene tensor rendered without the rotation (ablation)",
                "source_view_copied": "baseline: the source image as the prediction of every view",
                "psnr": "mean over images of 10 log10(1 / MSE), images in [0, 1]",
            },
        }
        return result, sums

    def render(self, model: SceneModel, state: dict[str, Any], data_dir: Path, options: RenderOptions) -> dict[str, str]:
        """The scene turning 360 degrees in azimuth from one source image (as the reproduction's render_gif.py):
        `rotate_XXXX.gif` and a PNG strip of 8 frames beside the source."""
        from train.novel_views import labelled_grid, save_captioned_gif, save_image_atomic

        dev = next(model.parameters()).device
        dataset = _dataset(split_path(data_dir, options.split), model, state["data"]["image_size"])
        if not 0 <= options.scene < len(dataset):
            raise ValueError(f"scene {options.scene} out of range: {dataset.path} holds {len(dataset)} scenes")
        src = 64 if dataset.num_views > 64 else 0
        view = dataset.read_views(options.scene, np.array([src]))
        n = options.num_frames
        az0, el0 = float(view["azimuth"][0]), float(view["elevation"][0])
        turn = torch.tensor([az0 + 360.0 * i / n for i in range(n)])
        batch = {"images": view["images"][None].expand(n, 1, -1, -1, -1).repeat(1, 2, 1, 1, 1),
                 "azimuth": torch.stack([torch.full((n,), az0), turn], dim=1),
                 "elevation": torch.full((n, 2), el0)}
        if "offset" in view:
            batch["offset"] = torch.zeros(n, 2, 3)
        batch = {k: t.to(dev) for k, t in batch.items()}
        frames_np = model.predict(batch, "rotated").cpu().permute(0, 2, 3, 1).numpy()
        folder = options.out_dir
        folder.mkdir(parents=True, exist_ok=True)
        gif, png = folder / f"rotate_{options.scene:04d}.gif", folder / f"rotate_{options.scene:04d}.png"
        source_np = view["images"].permute(0, 2, 3, 1).numpy()
        show = np.linspace(0, n - 1, min(8, n)).round().astype(int)
        save_image_atomic(labelled_grid([("source view", source_np),
                                         ("turning\n(ENR)", frames_np[show])], tile=options.tile), png)
        big = 2 * options.tile
        save_captioned_gif(frames_np, [f"azimuth {az0 + 360.0 * i / n:.0f} deg" for i in range(n)], big, gif)
        return {"gif": str(gif), "png": str(png)}


register_family(ENRFamily())
