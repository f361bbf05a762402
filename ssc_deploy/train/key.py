"""The key of a training run: equal keys mean the same code trained the same net on the same data.

A hash of the model name and input size, the data spec, the whole recipe, the seed, the
quick-run caps, the tool and torch versions and the content of the source files that
shape training (models, data, train, checkpoint), so no git checkout is needed. A rerun of
the quickstart reuses a checkpoint whose stored key (``provenance["train_key"]``) matches.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any

import ssc_deploy

from .recipe import Recipe

_PACKAGE = Path(ssc_deploy.__file__).resolve().parent
_SOURCES = ("models", "data", "train", "checkpoint.py")


@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """sha256 over the path and bytes of every training-relevant source file of the installed package."""
    h = hashlib.sha256()
    for top in _SOURCES:
        path = _PACKAGE / top
        for f in sorted(path.rglob("*.py")) if path.is_dir() else [path]:
            h.update(str(f.relative_to(_PACKAGE)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()


def train_key(model: str, data: str, recipe: Recipe, seed: int, in_size: int = 32,
              max_batches: int | None = None, eval_limit: int | None = None) -> str:
    """The run's key (hex sha256); see the module docstring for what it covers."""
    import torch

    parts: dict[str, Any] = {
        "model": model, "in_size": int(in_size), "data": data, "recipe": recipe.to_dict(), "seed": int(seed),
        "max_batches": int(max_batches or 0), "eval_limit": int(eval_limit or 0),
        "tool_version": ssc_deploy.__version__, "torch_version": str(torch.__version__), "source": source_hash(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()
