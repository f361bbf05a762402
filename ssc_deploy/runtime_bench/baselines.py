"""Baselines by zoo name: built untrained with the candidates' input and classes (latency, size, MACs)."""

from __future__ import annotations

from .model_under_test import Model
from .sources import family_of


def untrained_baseline(name: str, like: Model) -> Model:
    """A baseline built by name from the zoo with ``like``'s input and classes, random weights, kept in memory."""
    import torch

    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
    from ssc_deploy.models import create_model
    from ssc_deploy.models.complexity import net_complexity

    classes = list(like.classes or [str(i) for i in range(10)])
    shape = list(like.input_shape or [3, 32, 32])
    with torch.random.fork_rng():  # the same weights every run: the same files, sizes and instruction counts
        torch.manual_seed(0)
        net = create_model(name, num_classes=len(classes), in_size=shape[-1])
    fit_batch_norm(net, shape)
    params, macs = net_complexity(net, shape[-1])
    return Model(name=name, family=family_of(name), role="baseline", trained=False, input_shape=shape,
                 mean=list(like.mean or DEFAULT_MEAN), std=list(like.std or DEFAULT_STD), classes=classes,
                 params=params, macs=macs, module=net, exportable=True,
                 notes=["untrained: latency, size and MACs only"])


def fit_batch_norm(net, shape: list[int], images: int = 32, seed: int = 0) -> None:
    """Set every BatchNorm's running statistics from one batch of unit-variance noise, then leave ``net`` in eval mode.

    With random weights and the default statistics (mean 0, variance 1) a deep net's activations
    vanish (MobileNetV2's reach 1e-7 at the classifier): int8 scales underflow and the TFLite int8
    file's bias quantisation overflows. With the batch's statistics each layer's output keeps the
    scale a trained net's has; the weights stay random, so size, MACs and latency are unchanged.
    """
    import torch

    norms = [m for m in net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # a cumulative average: after one batch, that batch's statistics
    x = torch.randn(images, *shape, generator=torch.Generator().manual_seed(seed))
    net.train()
    with torch.no_grad():
        net(x)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    net.eval()


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
