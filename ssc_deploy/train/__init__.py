"""Training with the paper's recipe, single-process or data-parallel under ``torchrun``.

>>> from ssc_deploy.train import train_model
>>> ckpt = train_model("ssc-net-1-9", data="digits", epochs=15, out="ssc19.pt")
"""

from .recipe import DEFAULT_EPOCHS, Recipe, default_recipe
from .trainer import evaluate, params_sha256, train_model

__all__ = ["DEFAULT_EPOCHS", "Recipe", "default_recipe", "evaluate", "params_sha256", "train_model"]
