"""`python -m train evaluate`: a model family's evaluation protocol on held-out scenes, with its baselines, to JSON.

The protocol belongs to the model's family (`train.families`): GQN draws context views and a query per scene
and reports its prediction modes; ENR renders view `source_view` of each test scene into every other view
(the original's PSNR protocol); RenderNet renders every held-out view from its voxels, pose and light. The JSON
always holds `split`, `checkpoint`, `step`, `model`, `seed`, `headline`, `metrics` and `baselines` (each
{psnr, ssim, mse}: means of per-image values, images in [0, 1]) and `notes` saying what each entry is. A run
started with `fit --init-from` also gets `before_fine_tuning`: the same protocol, scenes, views and noise with
the weights it started from (e.g. a model pretrained on synthetic scenes, before it saw the real ones).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path
from typing import Any

import gin
import numpy as np
import torch
from core import publish

from train import checkpoint as ckpt
from train.models import SceneModel, build_model, model_names
from train.trainer import _resolve_device

logger = logging.getLogger(__name__)


def load_trained_model(run_dir: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                       device: str = "auto") -> tuple[SceneModel, dict[str, Any], Path]:
    """Rebuild a run's model from a checkpoint (newest unless given) in eval mode, with its schedules at its step.

    Returns:
        (model, checkpoint dict, checkpoint path).
    Raises:
        CheckpointError: the checkpoint names a model this trainer does not know.
    """
    path = Path(checkpoint) if checkpoint else ckpt.latest_checkpoint(run_dir)
    state = ckpt.load_checkpoint(path)
    if state.get("model_name") not in model_names():
        raise ckpt.CheckpointError(f"{path}: holds a {state.get('model_name')!r} model; this trainer builds "
                                   f"{model_names()}")
    model = build_model(state["model_name"], **state["model_config"])
    model.load_state_dict(state["model"])
    model.set_step(int(state["step"]))
    return model.to(_resolve_device(device)).eval(), state, path


def _write_json_atomic(path: Path, content: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    publish.write_text(path, json.dumps(content, indent=2) + "\n")


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
    num_samples: int = 4,
    source_view: int = 64,
    save_predictions: bool = False,
    out: str | None = None,
    device: str = "auto",
    compare_init: bool = True,
) -> dict[str, Any]:
    """Evaluate a run's checkpoint on a held-out split and write `RUN/eval_{split}.json`.

    Args:
        run_dir: the run folder (`python -m train fit --run`).
        data_dir: dataset folder with `scenes_{split}.h5` (and `scenes_train.h5` for training-set baselines).
        split: "val" or "test" (or "train" to check fitting).
        checkpoint: a checkpoint file; default the run's newest.
        max_scenes: evaluate at most this many scenes (the first ones).
        n_context: GQN: context views per scene; 0 = the most the run trained with.
        batch_size: items per forward pass.
        seed: seed of the fixed view choice and noise per scene (GQN) or views (RenderNet); 1234 by default.
        num_samples: GQN: prior draws per query averaged in `prior_samples` (0: skip).
        source_view: ENR: the view of each test scene rendered into all others (the original: 64 of 251).
        save_predictions: also write `RUN/eval_{split}_predictions.npz` (float32 arrays (N, H, W, 3) in [0, 1]:
            `target`, one per prediction and baseline, and `scene`) and a picture of the first 8 items, one
            row per array, as `RUN/eval_{split}_predictions.png`.
        out: JSON path instead of `RUN/eval_{split}.json`.
        device: "auto", "cpu" or "cuda".
        compare_init: for a run started with `fit --init-from`, also evaluate that checkpoint on the same items
            (`before_fine_tuning`: {checkpoint, step, metrics}); skipped with a warning if the file is gone.
    Returns:
        The JSON content.
    """
    from train.families import EvalOptions, family_for  # the families import this module's loader

    model, state, path = load_trained_model(run_dir, checkpoint, device)
    family = family_for(state["model_name"])
    options = EvalOptions(split=split, max_scenes=max_scenes, batch_size=batch_size, seed=seed, n_context=n_context,
                          num_samples=num_samples, source_view=source_view, save_predictions=save_predictions)
    with torch.no_grad():
        part, sums = family.evaluate(model, state, Path(data_dir), options)
    result: dict[str, Any] = {
        "split": split, "checkpoint": str(path), "step": int(state["step"]), "model": state["model_name"],
        "seed": seed, "headline": model.predict_modes[0] if model.predict_modes else None, **part,
    }
    if compare_init and state.get("init_from"):
        result["before_fine_tuning"] = _evaluate_init(Path(state["init_from"]), state, family, Path(data_dir),
                                                      options, device)
    destination = Path(out) if out else Path(run_dir) / f"eval_{split}.json"
    _write_json_atomic(destination, result)
    if save_predictions:
        npz = Path(run_dir) / f"eval_{split}_predictions.npz"
        arrays = sums.arrays()
        with publish.Staged(npz) as staged:
            np.savez_compressed(staged.path, **arrays)
        _predictions_sheet(arrays, family.sheet_rows, npz.with_suffix(".png"))
    logger.info("wrote %s", destination)
    return result


def _evaluate_init(path: Path, state: dict[str, Any], family: Any, data_dir: Path, options: Any,
                   device: str) -> dict[str, Any] | None:
    """The fine-tuned run's protocol (its data settings, the same seed) with the weights it started from."""
    if not path.is_file():
        logger.warning("%s (the checkpoint this run started from) is gone: no before-fine-tuning figures", path)
        return None
    model, init_state, _ = load_trained_model(path.parent, path, device)
    with torch.no_grad():
        part, _ = family.evaluate(model, {**init_state, "data": state["data"]}, data_dir,
                                  dataclasses.replace(options, save_predictions=False))
    return {"checkpoint": str(path), "step": int(init_state["step"]), "metrics": part["metrics"],
            "baselines": part["baselines"]}


def _predictions_sheet(arrays: dict[str, np.ndarray], sheet_rows: tuple[tuple[str, str], ...], path: Path,
                       columns: int = 8) -> None:
    """A labelled PNG of the first items: truth, each prediction and each baseline, one row each."""
    from train.novel_views import labelled_grid, save_image_atomic  # novel_views imports this module

    rows = [(label, arrays[key][:columns]) for key, label in sheet_rows if key in arrays]
    save_image_atomic(labelled_grid(rows, tile=64), path)
