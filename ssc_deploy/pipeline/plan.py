"""How many epochs each quickstart model gets: planned from a short timed probe, not guessed.

A four-batch probe of each model measures seconds a batch on this machine right now, and each
model gets the epochs that fit its share of the budget (the model under test half of the
training time, the baselines the other half), capped at the recipe's default epochs for the data.
"""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any, Sequence

DEFAULT_MINUTES = 10.0
# Share of the budget left for exporting 3 x 3 artifacts and benchmarking them.
NON_TRAINING_SHARE = 0.35
PROBE_BATCHES = 4
# The probe only times training; its closing evaluation is cut to a few images.
PROBE_EVAL_IMAGES = 8


def probe_seconds_per_epoch(model: str, data: str, work: Path) -> float:
    """Seconds one training epoch of ``model`` takes here now, from a short timed probe."""
    from ssc_deploy.data import load_dataset, parse_spec
    from ssc_deploy.train import TrainConfig, train_model
    from ssc_deploy.train.recipe import default_recipe

    ckpt = train_model(TrainConfig(model=model, data=data, epochs=1, out=work / f"{model}.probe.pt", progress=False,
                                   max_batches=PROBE_BATCHES, eval_limit=PROBE_EVAL_IMAGES, force=True))
    hist = ckpt.metrics.get("history") or [{}]
    seconds = float(hist[-1].get("seconds") or ckpt.metrics.get("train_seconds") or 0.0)
    # The probe ran the recipe's own batch size, so batches an epoch follow from it.
    batches = math.ceil(len(load_dataset(data, "train")) / default_recipe(parse_spec(data)[0]).batch_size)
    return seconds / PROBE_BATCHES * batches


def plan_epochs(models: Sequence[str], data: str, minutes: float, epochs: int | None, quick: bool,
                console) -> dict[str, dict[str, Any]]:
    """Epochs (and batch caps) for each model: ``quick``, fixed ``epochs``, or fitted to ``minutes``."""
    from ssc_deploy.data import parse_spec
    from ssc_deploy.train.recipe import DEFAULT_EPOCHS

    if quick:
        return {m: {"epochs": 1, "max_batches": 4, "why": "--quick"} for m in models}
    if epochs is not None:
        return {m: {"epochs": epochs, "max_batches": None, "why": "--epochs"} for m in models}
    cap = DEFAULT_EPOCHS.get(parse_spec(data)[0], 15)
    budget = minutes * 60 * (1 - NON_TRAINING_SHARE)
    shares = [0.5] + [0.5 / max(1, len(models) - 1)] * (len(models) - 1) if len(models) > 1 else [1.0]
    plan = {}
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-probe-") as tmp:
        for model, share in zip(models, shares):
            console.print(f"  timing a {PROBE_BATCHES}-batch probe of {model} ...", highlight=False)
            per_epoch = probe_seconds_per_epoch(model, data, Path(tmp))
            n = max(1, min(cap, int(budget * share // max(per_epoch, 1e-3))))
            plan[model] = {"epochs": n, "max_batches": None, "seconds_per_epoch": per_epoch, "cap": cap,
                           "why": f"{per_epoch:.0f} s/epoch here, {budget * share / 60:.1f} min of the budget"}
    return plan


def budget_note(models: Sequence[str], plan: dict[str, dict[str, Any]]) -> str | None:
    """A warning when the model under test gets fewer epochs than its recipe, with the budget that would fit them."""
    first = plan[models[0]]
    if "seconds_per_epoch" not in first or first["epochs"] >= first.get("cap", 0):
        return None
    need = first["seconds_per_epoch"] * first["cap"] / 60 / 0.5 / (1 - NON_TRAINING_SHARE)
    return (f"{models[0]} gets {first['epochs']} of the recipe's {first['cap']} epochs "
            f"in this budget, so its accuracy will be below what it can reach; --minutes {need:.0f} "
            "would allow all of them on this machine as loaded now")
