"""The layers a quantizer weighs: every Conv2d and Linear of the deployment net, by module name.

These names (``stage1.0.ssc1.1.0``, ``fc``) are what the per-layer error table prints and what
``--keep-float`` takes; each target maps them onto its own graph.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.models.layer_calls import LAYERS, layer_calls

QUANTIZABLE = LAYERS


def quantizable_layers(net: nn.Module) -> list[str]:
    """Module names of ``net``'s Conv2d and Linear layers, in definition order."""
    return [name for name, mod in net.named_modules() if isinstance(mod, QUANTIZABLE)]


def run_order(net: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of ``net``'s Conv2d and Linear layers in the order one forward pass on ``example``
    calls them (a layer called twice appears twice)."""
    return [call.name for call in layer_calls(net, example)]


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


# int8 weight granularity (``--int8-weights``): per output channel everywhere, or per tensor for the
# grouped convs (depthwise included) or for every layer. A per-channel layer stores a scale (and,
# in TFLite, an int64 zero point) per output channel for its weight and again for its int32 bias:
# for a grouped 1x1 conv of 9-in/9-out groups that is more bytes than its int8 weights.
WEIGHT_MODES = {
    "per-channel": "int8 per-channel (symmetric)",
    "per-tensor-grouped": "int8 per-tensor for grouped convs, per-channel elsewhere (symmetric)",
    "per-tensor": "int8 per-tensor (symmetric)",
}
DEFAULT_WEIGHTS = "per-channel"


def check_weights_mode(mode: str | None) -> str:
    """``mode`` checked (None: per-channel); one-line error for an unknown one."""
    name = DEFAULT_WEIGHTS if mode is None else str(mode).strip().lower()
    if name not in WEIGHT_MODES:
        raise SscDeployError(f"--int8-weights: unknown mode '{mode}' (use one of: {', '.join(WEIGHT_MODES)})")
    return name


def per_tensor_layers(net: nn.Module, mode: str, keep_float: Iterable[str] = ()) -> list[str]:
    """The layers of ``net`` whose int8 weights ``mode`` quantizes per tensor (none kept in float)."""
    keep = set(keep_float)
    return [name for name, mod in net.named_modules()
            if isinstance(mod, QUANTIZABLE) and name not in keep
            and (mode == "per-tensor" or (mode == "per-tensor-grouped" and getattr(mod, "groups", 1) > 1))]
