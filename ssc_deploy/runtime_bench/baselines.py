"""Baselines by zoo name: built untrained with the candidates' input and classes (latency, size, MACs)."""

from __future__ import annotations

from pathlib import Path

from ssc_deploy import __version__

from .model_under_test import Model
from .sources import model_from_checkpoint


def untrained_baseline(name: str, like: Model, work: Path) -> Model:
    """A baseline built by name from the zoo with ``like``'s input and classes, random weights."""
    from ssc_deploy.checkpoint import Checkpoint, save_checkpoint
    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
    from ssc_deploy.models import create_model

    classes = like.classes or [str(i) for i in range(10)]
    shape = like.input_shape or [3, 32, 32]
    net = create_model(name, num_classes=len(classes), in_size=shape[-1]).eval()
    ckpt = Checkpoint(
        model_name=name, config={"num_classes": len(classes), "in_size": shape[-1]},
        state_dict=net.state_dict(), classes=classes, mean=list(like.mean or DEFAULT_MEAN),
        std=list(like.std or DEFAULT_STD), input_shape=list(shape),
        provenance={"tool_version": __version__, "note": "untrained baseline for latency"},
    )
    path = work / "baselines" / f"{name}.untrained.pt"
    save_checkpoint(ckpt, path)
    model = model_from_checkpoint(path, role="baseline")
    model.trained = False
    model.exportable = True
    model.notes.append("untrained: latency, size and MACs only")
    return model


def add_baselines(models: list[Model], names: list[str], work: Path) -> None:
    """Append an untrained baseline for each name that no source already provides."""
    like = next((m for m in models if m.role == "candidate"), models[0] if models else None)
    have = {m.name for m in models}
    for name in names:
        if name in have:
            continue
        if like is None:
            like = Model(name="", family="", role="candidate", trained=False, input_shape=[3, 32, 32])
        models.append(untrained_baseline(name, like, work))
