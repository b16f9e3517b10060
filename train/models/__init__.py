"""Scene models behind one interface (`SceneModel`) and a registry (`build_model`). Importing this package
registers every model (GQN now; RenderNet and ENR go beside it as sibling modules)."""

from train.models import gqn  # noqa: F401  (registers "gqn")
from train.models.base import SceneModel, build_model, model_names, register

__all__ = ["SceneModel", "build_model", "model_names", "register"]
