"""The RenderNet family: single posed views of voxelised objects with per-view light; shaded-image evaluation.

Evaluation renders every view of the held-out scenes (up to `max_scenes`) from the scene's voxels, the view's
pose and its light, against the baseline `nearest_training_pose`: the training image (any training object)
whose camera direction is nearest to the view's. `render --rotate` turns the object 360 degrees in azimuth
under a fixed camera elevation, radius and light (the original demo's flags).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from train.data import DatasetError, ItemKey, PosedViewDataset, SceneDataset, _collate, split_path
from train.families.base import EvalOptions, MetricSums, ModelFamily, RenderOptions, register_family
from train.models import SceneModel
from train.models.rendernet import direction

logger = logging.getLogger(__name__)


def _dataset(path: Path, model: SceneModel, image_size: int | None = None) -> PosedViewDataset:
    dataset = PosedViewDataset(path, image_size or model.config["image_size"], model.fields(), "RenderNet",
                               voxel_size=model.config["voxel_size"])
    check_camera_and_background(dataset, model)
    return dataset


def check_camera_and_background(dataset: PosedViewDataset, model: SceneModel, fov_tol_deg: float = 0.5,
                                background_tol: float = 0.05) -> None:
    """Refuse data whose camera or background the model would not reproduce, naming the binding to change.

    The posed grid spans the camera's frustum (`RenderNet.fov_deg`) and Phong mode paints `RenderNet.background`
    where the mask is empty; a mismatch with the renders cannot be learnt away (it showed as an image loss that
    grows while the normal and mask losses fall).
    """
    with h5py.File(dataset.path, "r") as f:
        if "K" in f and len(f["K"]):
            fx, width = float(f["K"][0, 0, 0, 0]), f["images"].shape[3]
            fov = float(np.degrees(2.0 * np.arctan(width / (2.0 * fx))))
            if abs(fov - model.fov_deg) > fov_tol_deg:
                raise DatasetError(f"{dataset.path}: the cameras have a {fov:.2f} degree field of view but "
                                   f"RenderNet.fov_deg = {model.fov_deg:g}; bind RenderNet.fov_deg = {fov:.2f}")
    if model.shading != "phong" or not len(dataset):
        return
    view = dataset.read_views(0, np.array([0]))
    empty = view["mask"][0, 0] < 0.01
    if empty.any():
        grey = float(view["images"][0][:, empty].mean())
        if abs(grey - model.background) > background_tol:
            raise DatasetError(f"{dataset.path}: the background of the renders is grey level {grey:.3f} but "
                               f"RenderNet.background = {model.background:g}; bind RenderNet.background = "
                               f"{grey:.3f}")


def view_batch(dataset: PosedViewDataset, scene: int, views: np.ndarray) -> dict[str, torch.Tensor]:
    """Views of one scene as a batch of single-view items (N = 1)."""
    item = dataset.read_views(scene, views)
    n = len(views)
    out = {}
    for name, value in item.items():
        if name in dataset.scene_fields:
            out[name] = value[None].expand(n, *value.shape)
        elif name == "scene":
            out[name] = value.expand(n)
        else:
            out[name] = value[:, None]
    return out


def nearest_pose_images(train: PosedViewDataset, azimuth: torch.Tensor, elevation: torch.Tensor,
                        max_scenes: int = 200) -> torch.Tensor:
    """For each (azimuth, elevation) (N,), the training image with the nearest camera direction: (N, 3, H, W)."""
    with h5py.File(train.path, "r") as f:
        s = min(max_scenes, f["azimuth"].shape[0])
        az, el = f["azimuth"][:s].astype(np.float32), f["elevation"][:s].astype(np.float32)
    dirs = direction(torch.from_numpy(az), torch.from_numpy(el)).reshape(-1, 3)
    query = direction(azimuth.float().cpu(), elevation.float().cpu())
    best = (query @ dirs.T).argmax(dim=1).numpy()
    views = train.num_views
    return torch.stack([train.read_views(int(i // views), np.array([i % views]))["images"][0] for i in best])


class RenderNetFamily(ModelFamily):
    name = "rendernet"
    train_psnr_tag = "train/psnr_shaded"
    sheet_rows = (("target", "truth"), ("shaded", "RenderNet"), ("nearest_training_pose", "nearest pose"))

    def make_dataset(self, path: Path, model: SceneModel) -> SceneDataset:
        return _dataset(path, model)

    def context_range(self, dataset: SceneDataset, min_context: int, max_context: int) -> tuple[int, int]:
        return 0, 0

    def data_state(self, dataset: SceneDataset, context_range: tuple[int, int]) -> dict[str, Any]:
        return {**super().data_state(dataset, context_range), "voxel_size": dataset.voxel_size}

    def picture(self, model: SceneModel, dataset: SceneDataset, seed: int, context_range: tuple[int, int],
                n: int = 4) -> tuple[str, list[torch.Tensor]]:
        """Truth | shaded prediction | predicted normal map ((n + 1) / 2 as colours)."""
        dev = next(model.parameters()).device
        keys = [ItemKey(s, 0, int(np.random.SeedSequence([seed, 3, s]).generate_state(1)[0]))
                for s in range(min(n, len(dataset)))]
        batch = {k: v.to(dev) for k, v in _collate([dataset[k] for k in keys]).items()}
        out = model.render(*model._inputs(batch))
        return "train/truth|shaded|normals", [batch["images"][:, 0], model._rgb(out["image"]), (out["normal"] + 1) / 2]

    def evaluate(self, model: SceneModel, state: dict[str, Any], data_dir: Path,
                 options: EvalOptions) -> tuple[dict[str, Any], MetricSums]:
        dev = next(model.parameters()).device
        size = state["data"]["image_size"]
        dataset = _dataset(split_path(data_dir, options.split), model, size)
        try:
            train = PosedViewDataset(split_path(data_dir, "train"), size, ("azimuth", "elevation"), "RenderNet")
        except DatasetError as exc:
            logger.warning("no nearest-training-pose baseline: %s", exc)
            train = None
        scenes = list(range(min(options.max_scenes, len(dataset))))
        sums = MetricSums(options.save_predictions)
        views = np.arange(dataset.num_views)
        for scene in scenes:
            for start in range(0, len(views), options.batch_size):
                batch = {k: t.to(dev) for k, t in view_batch(dataset, scene, views[start:start + options.batch_size]).items()}
                target = batch["images"][:, 0]
                sums.add("shaded", model.predict(batch, "shaded"), target)
                if train is not None:
                    near = nearest_pose_images(train, batch["azimuth"][:, 0], batch["elevation"][:, 0]).to(dev)
                    sums.add("nearest_training_pose", near, target)
                sums.keep("target", target)
                sums.keep("scene", batch["scene"])
        result = {
            "data": str(dataset.path), "num_scenes": len(scenes), "image_size": dataset.image_size,
            "num_images": len(scenes) * len(views),
            "metrics": {"shaded": sums.summary("shaded")},
            "baselines": {"nearest_training_pose": sums.summary("nearest_training_pose")} if train is not None else {},
            "notes": {
                "shaded": "every view rendered from the scene's voxels, the view's pose and its light (headline)",
                "nearest_training_pose": "baseline: the training image whose camera direction is nearest",
                "psnr": "mean over images of 10 log10(1 / MSE), images in [0, 1]",
            },
        }
        return result, sums

    def render(self, model: SceneModel, state: dict[str, Any], data_dir: Path, options: RenderOptions) -> dict[str, str]:
        """`--rotate`: the scene's voxels turned 360 degrees (GIF and a PNG strip); otherwise its first 8 views,
        truth above prediction (PNG)."""
        from train.novel_views import labelled_grid, save_captioned_gif, save_image_atomic

        dev = next(model.parameters()).device
        dataset = _dataset(split_path(data_dir, options.split), model, state["data"]["image_size"])
        if not 0 <= options.scene < len(dataset):
            raise ValueError(f"scene {options.scene} out of range: {dataset.path} holds {len(dataset)} scenes")
        folder = options.out_dir
        folder.mkdir(parents=True, exist_ok=True)
        if not options.rotate:
            views = np.arange(min(8, dataset.num_views))
            batch = {k: t.to(dev) for k, t in view_batch(dataset, options.scene, views).items()}
            pred = model.predict(batch, "shaded").cpu().permute(0, 2, 3, 1).numpy()
            truth = batch["images"][:, 0].cpu().permute(0, 2, 3, 1).numpy()
            png = folder / f"scene_{options.scene:04d}.png"
            save_image_atomic(labelled_grid([("ground truth", truth), ("RenderNet", pred)], tile=options.tile), png)
            return {"png": str(png)}
        n = options.num_frames
        voxels = dataset.read_views(options.scene, np.array([0]))["voxels"]
        full = lambda v: torch.full((n,), float(v), device=dev)  # noqa: E731
        azimuth = torch.tensor([options.azimuth + 360.0 * i / n for i in range(n)], device=dev)
        out = model.render(voxels[None].expand(n, *voxels.shape).to(dev), azimuth, full(options.elevation),
                           full(options.radius), full(options.light_azimuth), full(options.light_elevation))
        frames_np = model._rgb(out["image"]).float().cpu().permute(0, 2, 3, 1).numpy()
        gif, png = folder / f"rotate_{options.scene:04d}.gif", folder / f"rotate_{options.scene:04d}.png"
        show = np.linspace(0, n - 1, min(8, n)).round().astype(int)
        save_image_atomic(labelled_grid([("turning\n(RenderNet)", frames_np[show])], tile=options.tile), png)
        big = 2 * options.tile
        save_captioned_gif(frames_np, [f"azimuth {float(azimuth[i]):.0f} deg" for i in range(n)], big, gif)
        return {"gif": str(gif), "png": str(png)}


register_family(RenderNetFamily())
