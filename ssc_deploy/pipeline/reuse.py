"""Which quickstart checkpoints a rerun can keep: those trained by the same code, data and recipe.

The trainer stores :func:`ssc_deploy.train.key.train_key` of every run in its checkpoint's
provenance; a checkpoint whose key equals the one the planned run would have is reused.
"""

from __future__ import annotations

from pathlib import Path

from ssc_deploy.errors import SscDeployError


def planned_key(model: str, data: str, epochs: int, max_batches: int | None = None,
                eval_limit: int | None = None, seed: int = 0) -> str:
    """The key a fresh quickstart run of ``model`` for ``epochs`` (the data's default recipe) would store."""
    from ssc_deploy.data import parse_spec
    from ssc_deploy.models import model_family
    from ssc_deploy.train.key import train_key
    from ssc_deploy.train.recipe import default_recipe

    recipe = default_recipe(parse_spec(data)[0], epochs=epochs, family=model_family(model))
    return train_key(model, data, recipe, seed, 32, max_batches, eval_limit)


def reusable(path: Path, key: str) -> bool:
    """Whether the checkpoint at ``path`` exists, loads and was trained under ``key``."""
    from ssc_deploy.checkpoint import load_checkpoint

    if not path.is_file():
        return False
    try:
        ckpt = load_checkpoint(path)
    except SscDeployError:
        return False
    return ckpt.provenance.get("train_key") == key
