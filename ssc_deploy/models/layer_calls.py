"""The Conv2d and Linear layers one forward pass calls, in order, with their output shapes.

The one forward-hook walk: parameter/MAC counts, the quantizer's layer order and the op
profiler's MAC attribution all read it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .modes import eval_mode

LAYERS = (nn.Conv2d, nn.Linear)


@dataclass(frozen=True)
class LayerCall:
    """One call of a Conv2d or Linear layer during a forward pass."""

    name: str  # module name in ``net.named_modules()``
    module: nn.Module
    out_shape: tuple[int, ...]


def layer_calls(net: nn.Module, example: torch.Tensor, *, shapes_only: bool = False) -> list[LayerCall]:
    """Every Conv2d / Linear call of one forward pass of ``net`` (eval mode, no grad) on ``example``,
    in the order they run (a layer called twice appears twice).

    With ``shapes_only`` the parameters and buffers are swapped for PyTorch ``meta`` tensors
    (``torch.func.functional_call``) and ``example`` should be a ``meta`` tensor too: shapes
    only, no arithmetic. ``net`` itself is left as it was, training flag included.
    """
    calls: list[LayerCall] = []

    def record(name: str):
        return lambda module, _inputs, out: calls.append(LayerCall(name, module, tuple(out.shape)))

    handles = [m.register_forward_hook(record(name)) for name, m in net.named_modules() if isinstance(m, LAYERS)]
    try:
        with torch.no_grad(), eval_mode(net):
            if shapes_only:
                tensors = {n: torch.empty_like(t, device="meta") for n, t in net.named_parameters()}
                tensors.update({n: torch.empty_like(t, device="meta") for n, t in net.named_buffers()})
                torch.func.functional_call(net, tensors, (example,))
            else:
                net(example)
    finally:
        for h in handles:
            h.remove()
    return calls
