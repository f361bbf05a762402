"""A run's options checked before any data is read, and what they leave open filled in (on resume,
from the checkpoint being continued)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ssc_deploy.atomic import check_writable_dir
from ssc_deploy.checkpoint import Checkpoint, load_checkpoint
from ssc_deploy.data import DEFAULT_DATA, parse_spec
from ssc_deploy.errors import SscDeployError
from ssc_deploy.models import model_family

from .config import TrainConfig, require_model
from .recipe import Recipe, default_recipe


def check_output_path(out: Path, resume: Path | None, force: bool, init: Path | None = None) -> None:
    """Refuse to overwrite an existing checkpoint unless it is being resumed or ``force`` is set
    (named as the ``--init`` checkpoint when it is that one, through links too)."""
    from ssc_deploy.output_paths import check_outputs

    check_outputs([("--out", out)], inputs=[(init, "an input, the --init checkpoint")] if init is not None else [], force=force)
    if out.is_dir():
        raise SscDeployError(f"--out {out} is a directory; give a file name such as {out / 'model.pt'}")
    if out.exists() and not force and (resume is None or out.resolve() != resume.resolve()):
        raise SscDeployError(f"{out} already exists: pass --resume {out} to continue it or --force to replace it")
    check_writable_dir(out.parent, "checkpoint directory")  # a read-only --out is found now, not after training


def _resumable(path: Path) -> Checkpoint:
    """The checkpoint ``--resume`` names, refused in one line unless it holds a training state."""
    try:
        ckpt = load_checkpoint(path)
    except SscDeployError as err:
        if "bare state_dict" in str(err):
            raise SscDeployError(f"{path}: a bare state_dict holds no training state to resume "
                                 f"(start from its weights with --init {path} --model NAME)") from None
        raise
    state = ckpt.training_state
    if not state or any(key not in state for key in ("epoch", "optimizer", "recipe")):
        raise SscDeployError(f"{path}: holds no training state to resume (use --init to start from its weights)")
    return ckpt


def _stored_or(value: int | None, state: dict[str, Any], key: str) -> int | None:
    """``value``, else the quick-run cap a resumed run stored (0 there means none)."""
    return value if value is not None or not state.get(key) else int(state[key])


def _check_numbers(config: TrainConfig) -> None:
    """The run's numeric options (the recipe's own are checked with it)."""
    from ssc_deploy.numeric import check_int, check_threads

    check_threads("--threads", config.threads)
    check_int("--num-workers", config.num_workers, 0, 64)
    check_int("--max-batches", config.max_batches, 1)
    check_int("--eval-every", config.eval_every, 0)
    check_int("--eval-limit", config.eval_limit, 1)
    check_int("--in-size", config.in_size, 4, note="pixels")


def prepare_run(config: TrainConfig) -> tuple[TrainConfig, Checkpoint | None, Recipe]:
    """Check a run's options before any data is read and fill in what they leave open.

    Returns the config with ``out``, ``model`` and ``data`` resolved (on resume also the input
    size, seed and quick-run caps the checkpoint stored), the checkpoint being resumed (None for
    a fresh run) and the recipe the run follows (a resumed run's stored one unless overridden).
    """
    _check_numbers(config)
    out = config.output_path()
    check_output_path(out, config.resume, config.force, config.init)
    start = _resumable(config.resume) if config.resume is not None else None
    model_name, data = config.model, config.data
    if start is not None:
        if model_name and model_name.strip().lower() != start.model_name:
            raise SscDeployError(f"{config.resume}: was trained as '{start.model_name}', not '{model_name}'")
        model_name = start.model_name
        data = data or str(start.provenance.get("data") or DEFAULT_DATA)
    data = data or DEFAULT_DATA
    kind, _ = parse_spec(data)
    model_family(require_model(model_name))  # an unknown name fails here, before any data is read
    resolved = dataclasses.replace(config, out=out, model=model_name, data=data)
    if start is None:
        return resolved, None, default_recipe(kind, config.epochs, config.batch_size, config.lr, config.weight_decay,
                                              name=config.recipe, family=model_family(model_name))
    state = start.training_state
    try:
        stored = Recipe.from_dict(state["recipe"])
    except (TypeError, ValueError, SscDeployError) as err:
        raise SscDeployError(f"{config.resume}: its stored training recipe is unreadable ({err})") from None
    if config.recipe is not None and config.recipe != stored.name:
        raise SscDeployError(f"{config.resume}: was trained with recipe '{stored.name}', not '{config.recipe}'")
    checked = default_recipe(
        kind,
        epochs=stored.epochs if config.epochs is None else config.epochs,
        batch_size=stored.batch_size if config.batch_size is None else config.batch_size,
        lr=stored.lr if config.lr is None else config.lr,
        weight_decay=stored.weight_decay if config.weight_decay is None else config.weight_decay,
        name=stored.name,
    )
    recipe = dataclasses.replace(stored, epochs=checked.epochs, batch_size=checked.batch_size, lr=checked.lr,
                                 weight_decay=checked.weight_decay,
                                 milestones=checked.milestones if stored.schedule == "step" else stored.milestones)
    resolved = dataclasses.replace(
        resolved, in_size=start.in_size, seed=int(state.get("seed", config.seed)),
        max_batches=_stored_or(config.max_batches, state, "max_batches"),
        eval_limit=_stored_or(config.eval_limit, state, "eval_limit"),
    )
    return resolved, start, recipe
