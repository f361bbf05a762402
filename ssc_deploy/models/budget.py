"""How big a network this tool builds: parameters, MACs and activation memory are estimated on
PyTorch's ``meta`` device (shapes only, no memory) and a net beyond the limits is refused in one
line before it is built (``ssc-net-99-99`` has 2.0 G parameters and 3.6 GiB of conv outputs per
image: building and calibrating it grew to 21 GB until the kernel killed the process).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from ssc_deploy.errors import SscDeployError

MAX_PARAMS = 100_000_000  # the zoo's largest at 32 px: 3.4 M (channel-sparse-resnet-9-0.25)
MAX_MACS = 50_000_000_000  # per image
MAX_ACTIVATION_BYTES = 512 * 2**20  # float32 conv/linear outputs of one image; the zoo's largest: 32 MiB


@dataclass(frozen=True)
class SizeEstimate:
    """What building and running a net would take (batch 1, float32)."""

    params: int
    macs: int  # dense: a masked conv counted as its full kernel (an upper bound)
    activation_bytes: int


@functools.lru_cache(maxsize=64)
def _estimate(builder: Callable[..., Any], groups: tuple[tuple[str, str], ...], num_classes: int,
              in_size: int) -> SizeEstimate:
    import torch

    from .complexity import estimate_outputs, output_shapes

    with torch.device("meta"):
        net = builder(num_classes=num_classes, in_size=in_size, **dict(groups))
    params = sum(p.numel() for p in net.parameters())
    if params > MAX_PARAMS:  # refused already: no need to trace it
        return SizeEstimate(params, 0, 0)
    macs, act = estimate_outputs(output_shapes(net, in_size), dict(net.named_modules()))
    return SizeEstimate(params, macs, act)


def check_budget(name: str, builder: Callable[..., Any], groups: dict[str, str], num_classes: int,
                 in_size: int) -> None:
    """One-line :class:`SscDeployError` when the net ``builder`` would build is beyond the limits."""
    est = _estimate(builder, tuple(sorted(groups.items())), num_classes, in_size)
    refuse_beyond(f"{name} ({num_classes} classes, {in_size} px)", est)


def check_module(what: str, model: Any, in_size: int) -> None:
    """The same limits for a module given as it is (``export_module``), before it runs on an input."""
    from .complexity import size_estimate

    refuse_beyond(what, SizeEstimate(*size_estimate(model, in_size)))


def refuse_beyond(what: str, est: SizeEstimate) -> None:
    """One-line :class:`SscDeployError` naming the first limit ``est`` is beyond."""
    if est.params > MAX_PARAMS:
        raise SscDeployError(f"{what} has {est.params / 1e6:,.0f} M parameters, more than the "
                             f"{MAX_PARAMS / 1e6:.0f} M this tool builds; pick a smaller model")
    if est.macs > MAX_MACS:
        raise SscDeployError(f"{what} needs {est.macs / 1e9:,.1f} G MACs per image, more than the "
                             f"{MAX_MACS / 1e9:.0f} G this tool builds; pick a smaller model or input")
    if est.activation_bytes > MAX_ACTIVATION_BYTES:
        raise SscDeployError(f"{what} needs {est.activation_bytes / 2**20:,.0f} MiB of activations per image, more "
                             f"than the {MAX_ACTIVATION_BYTES // 2**20} MiB this tool builds; pick a smaller model "
                             "or input")
