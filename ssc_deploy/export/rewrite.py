"""The deployment rewrite: a pure-PyTorch eval net that every exporter sees.

Steps, in order (:func:`deployment_rewrite`):

1. ``MaskedConv2d`` (channel-sparse family) becomes a plain ``Conv2d`` with ``weight * mask``.
2. BatchNorm is folded into the convolution before it (``torch.nn.utils.fusion``), first
   where ``Conv2d, BatchNorm2d`` sit side by side in an ``nn.Sequential``, then through an
   ``torch.fx`` trace for pairs wired in ``forward``. A BatchNorm with no conv to fold into
   (pre-activation nets) becomes a 1x1 depthwise conv, so no BatchNorm op reaches a runtime.
3. Training-only parts (Dropout) become ``Identity``.
4. The chosen shift lowering (``ssc_deploy.export.lowerings``) rewrites ``Shift`` and
   ``ChannelShuffle`` into plain graph ops.
"""

from __future__ import annotations

import copy

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from ssc_deploy.models import layers

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout)


def _replace(root: nn.Module, qualname: str, new: nn.Module) -> None:
    parent_name, _, child = qualname.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, new)


def unmask_convs(model: nn.Module) -> nn.Module:
    """Replace every ``MaskedConv2d`` by a plain ``Conv2d`` holding ``weight * mask`` (in place)."""
    masked_cls = getattr(layers, "MaskedConv2d", None)
    if masked_cls is None:
        return model
    for name, mod in list(model.named_modules()):
        if isinstance(mod, masked_cls):
            conv = nn.Conv2d(
                mod.in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding,
                mod.dilation, mod.groups, bias=mod.bias is not None, padding_mode=mod.padding_mode,
            )
            with torch.no_grad():
                mask = getattr(mod, "mask", None)
                weight = mod.weight * mask if mask is not None else mod.weight
                conv.weight.copy_(weight)
                if mod.bias is not None:
                    conv.bias.copy_(mod.bias)
            _replace(model, name, conv)
    return model


def _fold_sequential_pairs(model: nn.Module) -> None:
    for seq in [m for m in model.modules() if isinstance(m, nn.Sequential)]:
        keys = list(seq._modules)
        for a, b in zip(keys, keys[1:]):
            conv, bn = seq._modules[a], seq._modules[b]
            if type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats:
                seq._modules[a] = fuse_conv_bn_eval(conv, bn)
                seq._modules[b] = nn.Identity()


class _LeafTracer(fx.Tracer):
    """Keeps the shift and shuffle modules opaque so shape-dependent code is not traced."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (layers.Shift, layers.ChannelShuffle)):
            return True
        return super().is_leaf_module(m, qualname)


def _fold_traced_pairs(model: nn.Module) -> nn.Module:
    try:
        graph = _LeafTracer().trace(model)
    except Exception:  # noqa: BLE001 - untraceable nets keep their remaining BNs as affine convs
        return model
    gm = fx.GraphModule(model, graph)
    mods = dict(gm.named_modules())
    changed = False
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(mods.get(node.target), nn.BatchNorm2d):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and type(mods.get(src.target)) is nn.Conv2d):
            continue
        if len(src.users) != 1:
            continue
        bn = mods[node.target]
        if not bn.track_running_stats:
            continue
        _replace(gm, src.target, fuse_conv_bn_eval(mods[src.target], bn))
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
        changed = True
    if not changed:
        return model
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    gm.model_name = getattr(model, "model_name", None)
    return gm


def _bn_to_affine_conv(bn: nn.BatchNorm2d) -> nn.Conv2d:
    c = bn.num_features
    scale = (bn.weight if bn.affine else torch.ones(c)) / torch.sqrt(bn.running_var + bn.eps)
    shift = (bn.bias if bn.affine else torch.zeros(c)) - bn.running_mean * scale
    conv = nn.Conv2d(c, c, 1, groups=c, bias=True)
    with torch.no_grad():
        conv.weight.copy_(scale.reshape(c, 1, 1, 1))
        conv.bias.copy_(shift)
    return conv


def fold_batchnorm(model: nn.Module) -> nn.Module:
    """Fold every BatchNorm2d into the conv before it; a lone BatchNorm2d becomes a depthwise 1x1 conv.

    Returns the (possibly new, ``fx.GraphModule``) module; the input is modified in place.
    """
    model.eval()
    _fold_sequential_pairs(model)
    if any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
        model = _fold_traced_pairs(model)
    for name, mod in list(model.named_modules()):
        if isinstance(mod, nn.BatchNorm2d):
            _replace(model, name, _bn_to_affine_conv(mod))
    return model


def strip_training_parts(model: nn.Module) -> nn.Module:
    """Replace Dropout layers by Identity (in place) and put the net in eval mode."""
    for name, mod in list(model.named_modules()):
        if isinstance(mod, _DROPOUT):
            _replace(model, name, nn.Identity())
    return model.eval()


@torch.no_grad()
def deployment_rewrite(model: nn.Module, lowering: str = "pad-slice") -> nn.Module:
    """The net exporters see: a deep copy with masks applied, BN folded, training parts removed,
    and shifts/shuffles lowered by ``lowering``. The original model is untouched."""
    from ssc_deploy.export.lowerings import apply_lowering

    name = getattr(model, "model_name", None)
    net = copy.deepcopy(model).eval()
    net = unmask_convs(net)
    net = strip_training_parts(net)
    net = fold_batchnorm(net)
    net = apply_lowering(net, lowering).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    if name is not None:
        net.model_name = name
    return net
