"""The model interface and the model registry.

Every scene model (GQN now; RenderNet and ENR later) is a `SceneModel`:

- `forward(batch) -> {"losses": {name: scalar}, "prediction": (B, 3, H, W), ...}`; the trainer sums the losses;
- `predict(batch, mode) -> (B, 3, H, W)` in [0, 1], the image the model renders for the query viewpoint
  (`mode` names how; each model lists its modes in `predict_modes`);
- `set_step(step)` updates step-dependent schedules (e.g. GQN's pixel sigma) before each iteration;
- `config` holds the constructor's arguments, saved with the weights so a checkpoint rebuilds its model.

Models register under a short name with `@register("gqn")`; `build_model(name, **kwargs)` makes one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from train.data import Batch

logger = logging.getLogger(__name__)

_REGISTRY: dict[str, type[SceneModel]] = {}


class SceneModel(nn.Module):
    """Base class of the trainer's models (see the module docstring for the contract)."""

    #: Names accepted by `predict(batch, mode)`; the first is the headline prediction.
    predict_modes: tuple[str, ...] = ()

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        self.config = dict(config)

    def set_step(self, step: int) -> None:  # noqa: B027 - optional hook, most models have no schedules
        """Update step-dependent schedules before the iteration of `step`."""

    def schedule_state(self) -> dict[str, float]:
        """Values of the step-dependent schedules now (logged and checkpointed)."""
        return {}

    def predict(self, batch: Batch, mode: str) -> torch.Tensor:
        """Render the query view: (B, 3, H, W) in [0, 1]."""
        raise NotImplementedError

    def evaluation_terms(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Per-item likelihood terms for evaluation (e.g. NLL, KL), each (B,); empty if the model has none."""
        return {}


def register(name: str) -> Callable[[type[SceneModel]], type[SceneModel]]:
    """Class decorator: make a `SceneModel` buildable as `build_model(name, ...)`."""

    def wrap(cls: type[SceneModel]) -> type[SceneModel]:
        if name in _REGISTRY and _REGISTRY[name] is not cls:
            raise ValueError(f"model name {name!r} is taken by {_REGISTRY[name].__name__}")
        _REGISTRY[name] = cls
        return cls

    return wrap


def model_names() -> list[str]:
    """Registered model names, sorted."""
    return sorted(_REGISTRY)


def build_model(name: str, **kwargs: Any) -> SceneModel:
    """Instantiate a registered model. Without kwargs, gin supplies the arguments bound in the config files."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; registered models: {model_names()} (set fit.model_name)")
    return _REGISTRY[name](**kwargs)
