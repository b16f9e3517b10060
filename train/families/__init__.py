"""Model families: what differs between GQN, ENR and RenderNet outside the network itself.

A family brings its data fields and reader, its sampler settings (views per item), the pictures the trainer
logs, its evaluation protocol with baselines and its `render` command; the loop, checkpoints, logging, DDP,
precision and the CLI stay in `train.trainer` / `train.cli` and are shared. `family_for(model_name)` finds the
family of a registered model.
"""

from train.families import enr, gqn, rendernet  # noqa: F401  (registers the families)
from train.families.base import EvalOptions, ModelFamily, RenderOptions, family_for

__all__ = ["EvalOptions", "ModelFamily", "RenderOptions", "family_for"]
