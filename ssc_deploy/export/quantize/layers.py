"""The layers a quantizer weighs: every Conv2d and Linear of the deployment net, by module name.

These names (``stage1.0.ssc1.1.0``, ``fc``) are what the per-layer error table prints and what
``--keep-float`` takes; each target maps them onto its own graph.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError

QUANTIZABLE = (nn.Conv2d, nn.Linear)


def quantizable_layers(net: nn.Module) -> list[str]:
    """Module names of ``net``'s Conv2d and Linear layers, in definition order."""
    return [name for name, mod in net.named_modules() if isinstance(mod, QUANTIZABLE)]


def run_order(net: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of ``net``'s Conv2d and Linear layers in the order one forward pass on ``example``
    calls them (a layer called twice appears twice)."""
    calls: list[str] = []
    hooks = [mod.register_forward_pre_hook(lambda _m, _a, name=name: calls.append(name))
             for name, mod in net.named_modules() if isinstance(mod, QUANTIZABLE)]
    try:
        with torch.no_grad():
            net(example)
    finally:
        for hook in hooks:
            hook.remove()
    return calls


def check_keep_float(net: nn.Module, names: Iterable[str]) -> list[str]:
    """``names`` de-duplicated, in order; one-line error for a name that is not a layer of ``net``."""
    known = quantizable_layers(net)
    wanted = list(dict.fromkeys(n.strip() for n in names if n and n.strip()))
    unknown = [n for n in wanted if n not in known]
    if unknown:
        shown = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
        raise SscDeployError(f"--keep-float: '{unknown[0]}' is not a conv or linear layer of this net "
                             f"(layers: {shown}; `ssc-deploy inspect CKPT --quant-error` lists them all)")
    return wanted
