"""Baselines by zoo name: built untrained with the candidates' input and classes (latency, size, MACs)."""

from __future__ import annotations

from .model_under_test import Model
from .sources import family_of, net_complexity


def untrained_baseline(name: str, like: Model) -> Model:
    """A baseline built by name from the zoo with ``like``'s input and classes, random weights, kept in memory."""
    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
    from ssc_deploy.models import create_model

    classes = list(like.classes or [str(i) for i in range(10)])
    shape = list(like.input_shape or [3, 32, 32])
    net = create_model(name, num_classes=len(classes), in_size=shape[-1]).eval()
    params, macs = net_complexity(net, shape[-1])
    return Model(name=name, family=family_of(name), role="baseline", trained=False, input_shape=shape,
                 mean=list(like.mean or DEFAULT_MEAN), std=list(like.std or DEFAULT_STD), classes=classes,
                 params=params, macs=macs, module=net, exportable=True,
                 notes=["untrained: latency, size and MACs only"])


def add_baselines(models: list[Model], names: list[str]) -> None:
    """Append an untrained baseline for each name that no source already provides."""
    like = next((m for m in models if m.role == "candidate"), models[0] if models else None)
    have = {m.name for m in models}
    for name in names:
        if name in have:
            continue
        if like is None:
            like = Model(name="", family="", role="candidate", trained=False, input_shape=[3, 32, 32])
        models.append(untrained_baseline(name, like))
