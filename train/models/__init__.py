"""Scene models behind one interface (`SceneModel`) and a registry (`build_model`). Importing this package
registers every model (GQN, ENR, RenderNet)."""

from train.models import enr, gqn, rendernet  # noqa: F401  (registers the models)
from train.models.base import SceneModel, build_model, model_names, register

__all__ = ["SceneModel", "build_model", "model_names", "register"]
