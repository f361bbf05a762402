"""Parameter and multiply-accumulate counts, for the model table, export manifests and benchmarks."""

from __future__ import annotations

import torch
from torch import nn

from .layers import MaskedConv2d


def count_params(model: nn.Module) -> int:
    """Learnable parameters; a :class:`MaskedConv2d` counts only the weights its mask keeps."""
    total = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, MaskedConv2d):
            total -= int(m.mask.numel() - m.mask.sum().item())
    return int(total)


def output_shapes(model: nn.Module, in_size: int = 32, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """Output shape of every Conv2d and Linear for one 1 x in_channels x in_size x in_size input.

    Runs the model with its parameters and buffers swapped for PyTorch ``meta`` tensors
    (``torch.func.functional_call``): shapes only, no arithmetic, the model is untouched.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    handles = []

    def record(name: str):
        return lambda _module, _inputs, out: shapes.__setitem__(name, tuple(out.shape))

    for name, m in model.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            handles.append(m.register_forward_hook(record(name)))
    tensors = {n: torch.empty_like(t, device="meta") for n, t in model.named_parameters()}
    tensors.update({n: torch.empty_like(t, device="meta") for n, t in model.named_buffers()})
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            torch.func.functional_call(model, tensors, (torch.empty(1, in_channels, in_size, in_size, device="meta"),))
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    return shapes


def layer_macs(module: nn.Module, out_shape: tuple[int, ...]) -> int:
    """MACs of one Conv2d / Linear producing ``out_shape`` (batch 1)."""
    if isinstance(module, MaskedConv2d):
        return int(out_shape[-2] * out_shape[-1] * module.mask.sum().item())
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        elements = 1
        for d in out_shape[1:]:
            elements *= d
        return elements * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        rows = 1
        for d in out_shape[1:-1]:
            rows *= d
        return rows * module.in_features * module.out_features
    return 0


def count_macs(model: nn.Module, in_size: int = 32, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a 1 x ``in_channels`` x in_size x in_size input.

    Counts Conv2d (output elements x in/groups x kh x kw; a MaskedConv2d only its kept
    connections) and Linear (in x out) layers; BN, activations, pooling, shifts and shuffles
    are free here (BN folds into the conv at export).
    """
    shapes = output_shapes(model, in_size, in_channels)
    modules = dict(model.named_modules())
    return sum(layer_macs(modules[name], shape) for name, shape in shapes.items())


def model_summary(name: str, num_classes: int = 10, in_size: int = 32) -> dict:
    """Name, family, parameters, MACs and description of one registered model, as plain data."""
    from .registry import create_model, model_family, registry_entries

    family = model_family(name)
    description = next((e.description for e in registry_entries() if e.family == family), "")
    model = create_model(name, num_classes=num_classes, in_size=in_size)
    return {
        "name": model.model_name,
        "family": family,
        "params": count_params(model),
        "macs": count_macs(model, in_size),
        "num_classes": num_classes,
        "in_size": in_size,
        "description": description,
    }
