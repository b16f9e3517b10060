"""Checkpoints of a training run: `RUN/checkpoints/step_{step:08d}.pt`, written atomically, newest N kept.

A checkpoint is one `torch.save`d dict (see docs/training.md, "Checkpoints"):

| key | contents |
| --- | --- |
| `format_version` | 1 |
| `step` | optimiser steps done |
| `model_name`, `model_config` | registry name and constructor arguments: `build_model(name, **config)` rebuilds it |
| `model` | the model's state_dict (unwrapped from DDP / torch.compile) |
| `optimizer`, `scheduler` | their state_dicts |
| `annealer` | step-dependent schedules (e.g. GQN's pixel sigma) |
| `rng` | torch, numpy and python global RNG states |
| `sampler` | the data sampler's settings (its batches are a function of (seed, step)) |
| `data` | dataset settings the model was trained with (image size, context views; `mix` in runs that mix) |
| `init_from` | only in runs started with `fit --init-from`: that checkpoint |
| `config` | gin's operative config of the run |
"""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch
from core import publish

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """No checkpoint where one was expected, or an unreadable one; the message names the path and the fix."""


def checkpoint_dir(run_dir: str | os.PathLike) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """The run's checkpoints, oldest first (sorted by step)."""
    folder = checkpoint_dir(run_dir)
    return sorted(folder.glob("step_*.pt")) if folder.is_dir() else []


def latest_checkpoint(run_dir: str | os.PathLike) -> Path:
    """Newest checkpoint of a run.

    Raises:
        CheckpointError: the run has none.
    """
    found = list_checkpoints(run_dir)
    if not found:
        raise CheckpointError(
            f"{checkpoint_dir(run_dir)}: no checkpoints (step_*.pt). Pass --run with the folder of a run that "
            "`python -m train fit` wrote, or train one first."
        )
    return found[-1]


def rng_state() -> dict[str, Any]:
    """Global RNG states of torch, numpy and python (restored on resume)."""
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(run_dir: str | os.PathLike, state: dict[str, Any], keep: int = 3) -> Path:
    """Write `state` (which must hold `step`) atomically as the newest checkpoint; keep the newest `keep`."""
    folder = checkpoint_dir(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"step_{int(state['step']):08d}.pt"
    with publish.Staged(path, durable=True) as staged:
        torch.save({"format_version": FORMAT_VERSION, **state}, staged.path)
    for old in list_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        old.unlink()
    logger.info("saved checkpoint %s", path)
    return path


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a checkpoint on the CPU.

    Raises:
        CheckpointError: unreadable, or not a checkpoint of this trainer.
    """
    path = Path(path)
    try:
        # weights_only=False: the file also holds numpy/python RNG states; only load checkpoints you wrote.
        state = torch.load(path, map_location="cpu", weights_only=False)
    except (OSError, RuntimeError, EOFError) as exc:
        raise CheckpointError(f"{path}: cannot read checkpoint ({exc}); delete it to fall back to an older one") from exc
    if not isinstance(state, dict) or state.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: not a checkpoint of format_version {FORMAT_VERSION} of this trainer")
    return state
