"""The family interface and its registry (one family per registered model name)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from train.data import SceneDataset
from train.metrics import image_metrics
from train.models import SceneModel

logger = logging.getLogger(__name__)

_FAMILIES: dict[str, ModelFamily] = {}


@dataclass(frozen=True)
class EvalOptions:
    """`evaluate`'s options as a family sees them (documented at `train.evaluation.evaluate`)."""

    split: str
    max_scenes: int
    batch_size: int
    seed: int
    n_context: int
    num_samples: int
    source_view: int
    save_predictions: bool


@dataclass(frozen=True)
class RenderOptions:
    """`render_views`'s options as a family sees them (documented at `train.novel_views.render_views`)."""

    split: str
    scene: int
    n_context: int
    num_frames: int
    tile: int
    seed: int
    out_dir: Path
    rotate: bool
    azimuth: float
    elevation: float
    light_azimuth: float
    light_elevation: float
    radius: float


class MetricSums:
    """Per-image metrics collected batch by batch (and, optionally, the images themselves)."""

    def __init__(self, keep_images: bool) -> None:
        self.per: dict[str, dict[str, list[np.ndarray]]] = {}
        self.saved: dict[str, list[np.ndarray]] = {}
        self.keep_images = keep_images

    def add(self, name: str, pred: torch.Tensor, target: torch.Tensor) -> None:
        """pred, target (B, 3, H, W) in [0, 1]."""
        for metric, values in image_metrics(pred, target).items():
            self.per.setdefault(name, {}).setdefault(metric, []).append(values)
        if self.keep_images:
            self.keep(name, pred)

    def keep(self, name: str, images: torch.Tensor) -> None:
        """Keep (B, 3, H, W) images (or (B,) values) for the predictions file."""
        if not self.keep_images:
            return
        arr = images.detach().cpu()
        arr = arr.float().permute(0, 2, 3, 1) if arr.ndim == 4 else arr
        self.saved.setdefault(name, []).append(arr.numpy())

    def summary(self, name: str) -> dict[str, float]:
        return {k: float(np.mean(np.concatenate(v))) for k, v in self.per[name].items()}

    def arrays(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.saved.items()}


class ModelFamily:
    """What one model family brings (see the package docstring). Subclasses set `name` and override."""

    name: str = ""
    #: TensorBoard tag of the training-batch PSNR, and what that PSNR measures.
    train_psnr_tag: str = "train/psnr"
    #: Rows of the predictions sheet: (key in the predictions file, label).
    sheet_rows: tuple[tuple[str, str], ...] = ()

    def make_dataset(self, path: Path, model: SceneModel) -> SceneDataset:
        raise NotImplementedError

    def context_range(self, dataset: SceneDataset, min_context: int, max_context: int) -> tuple[int, int]:
        """Views per item beyond the first, as (min, max) for `SceneBatchSampler`."""
        raise NotImplementedError

    def data_state(self, dataset: SceneDataset, context_range: tuple[int, int]) -> dict[str, Any]:
        """Dataset settings saved in checkpoints (`data`); evaluation and rendering read them back."""
        return {"image_size": dataset.image_size, "num_views": dataset.num_views, "min_context": context_range[0],
                "max_context": context_range[1]}

    def picture(self, model: SceneModel, dataset: SceneDataset, seed: int, context_range: tuple[int, int],
                n: int = 4) -> tuple[str, list[torch.Tensor]]:
        """(TensorBoard tag, rows of (n, 3, H, W) images) of a fixed batch for the training log."""
        raise NotImplementedError

    def evaluate(self, model: SceneModel, state: dict[str, Any], data_dir: Path,
                 options: EvalOptions) -> tuple[dict[str, Any], MetricSums]:
        """Run the family's protocol; returns the JSON fields beyond the shared ones and the metric sums."""
        raise NotImplementedError

    def render(self, model: SceneModel, state: dict[str, Any], data_dir: Path, options: RenderOptions) -> dict[str, str]:
        raise NotImplementedError


def register_family(family: ModelFamily) -> ModelFamily:
    if family.name in _FAMILIES:
        raise ValueError(f"family {family.name!r} registered twice")
    _FAMILIES[family.name] = family
    return family


def family_for(model_name: str) -> ModelFamily:
    """The family of a registered model name (a checkpoint's `model_name`)."""
    if model_name not in _FAMILIES:
        raise ValueError(f"no model family for {model_name!r}; known: {sorted(_FAMILIES)} (set fit.model_name)")
    return _FAMILIES[model_name]
