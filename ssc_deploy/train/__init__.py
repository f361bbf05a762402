"""Training with the paper's recipe, single-process or data-parallel under ``torchrun``.

>>> from ssc_deploy.train import TrainConfig, train_model
>>> ckpt = train_model(TrainConfig(model="ssc-net-1-9", data="digits", epochs=15, out="ssc19.pt"))
"""

from .config import TrainConfig
from .recipe import DEFAULT_EPOCHS, Recipe, default_recipe
from .distributed import params_sha256
from .trainer import evaluate, train_model

__all__ = ["DEFAULT_EPOCHS", "Recipe", "TrainConfig", "default_recipe", "evaluate", "params_sha256", "train_model"]
