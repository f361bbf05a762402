"""``torch.fx`` passes that rewrite shifts, shuffles and convs into fewer, plainer ops.

Each pass takes and returns an ``fx.GraphModule`` traced with ``Shift`` and
``ChannelShuffle`` kept as opaque modules; the weight algebra lives in
:mod:`.conv_algebra`. The registered lowerings (:mod:`.fused`) chain these passes.
"""

from __future__ import annotations

import operator
from typing import Callable

import torch
from torch import fx, nn

from ssc_deploy.models.layers import ChannelShuffle, Shift

from ssc_deploy.export.lowerings import conv_algebra as alg
from ssc_deploy.export.lowerings.pad_slice import PadSliceShift, ReshapeShuffle

# Ops that act on each channel alone and map zero to zero, so a channel permutation moves
# through them unchanged.
_CHANNELWISE_MODULES = (nn.ReLU, nn.ReLU6, nn.Identity)
_CHANNELWISE_FUNCTIONS = {torch.relu, torch.nn.functional.relu, torch.nn.functional.relu6}


class _Tracer(fx.Tracer):
    """Keeps shift and shuffle modules opaque: their forward reads shapes at run time."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        if isinstance(m, (Shift, ChannelShuffle, PadSliceShift, ReshapeShuffle, ChannelLastShuffle)):
            return True
        return super().is_leaf_module(m, qualname)


def trace(model: nn.Module) -> fx.GraphModule:
    """An ``fx.GraphModule`` of ``model`` with shift and shuffle modules as leaves."""
    graph = _Tracer().trace(model)
    gm = fx.GraphModule(model, graph)
    gm.eval()
    return gm


def _mod(gm: fx.GraphModule, node: fx.Node) -> nn.Module | None:
    if node.op != "call_module":
        return None
    return gm.get_submodule(node.target)


def _set_module(gm: fx.GraphModule, node: fx.Node, new: nn.Module) -> None:
    parent_name, _, child = node.target.rpartition(".")
    parent = gm.get_submodule(parent_name) if parent_name else gm
    setattr(parent, child, new)


def _finish(gm: fx.GraphModule) -> fx.GraphModule:
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _replace_each(
    gm: fx.GraphModule,
    kind: type,
    make: Callable[[nn.Module], nn.Module],
    when: Callable[[nn.Module], bool] = lambda mod: True,
) -> fx.GraphModule:
    """Replace every module of type ``kind`` (for which ``when(mod)``) by ``make(mod)``."""
    for node in gm.graph.nodes:
        mod = _mod(gm, node)
        if isinstance(mod, kind) and when(mod):
            _set_module(gm, node, make(mod))
    return _finish(gm)


def drop_identities(gm: fx.GraphModule) -> fx.GraphModule:
    """Remove ``nn.Identity`` calls (left behind by BatchNorm folding)."""
    for node in list(gm.graph.nodes):
        if isinstance(_mod(gm, node), nn.Identity):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    return _finish(gm)


def _is_channelwise(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return isinstance(_mod(gm, node), _CHANNELWISE_MODULES)
    return node.op == "call_function" and node.target in _CHANNELWISE_FUNCTIONS


def fuse_shift_into_conv(gm: fx.GraphModule) -> fx.GraphModule:
    """``Shift`` followed by its only user, an unpadded 1x1 conv, becomes one k x k conv (one-hot kernels)."""
    for node in list(gm.graph.nodes):
        shift = _mod(gm, node)
        if not isinstance(shift, Shift) or len(node.users) != 1:
            continue
        user = next(iter(node.users))
        conv = _mod(gm, user)
        if not (alg.is_plain_conv(conv) and conv.kernel_size == (1, 1) and conv.padding == (0, 0)):
            continue
        _set_module(gm, user, alg.shift_into_conv(shift.offsets, conv))
        user.replace_input_with(node, node.args[0])
        gm.graph.erase_node(node)
    return _finish(gm)


def shifts_to_depthwise(gm: fx.GraphModule, channel_multiple: int = 1) -> fx.GraphModule:
    """Every remaining ``Shift`` over a multiple of ``channel_multiple`` channels becomes a
    depthwise k x k conv with one-hot kernels."""
    return _replace_each(gm, Shift, lambda s: alg.shift_as_depthwise(s.offsets),
                         when=lambda s: s.channels % channel_multiple == 0)


def shifts_to_pad_slice(gm: fx.GraphModule) -> fx.GraphModule:
    """Every remaining ``Shift`` becomes pad + slices + concat (:class:`PadSliceShift`)."""
    return _replace_each(gm, Shift, lambda s: PadSliceShift(s.offsets))


def shuffles_to_reshape(gm: fx.GraphModule) -> fx.GraphModule:
    """Every remaining ``ChannelShuffle`` becomes reshape / transpose / reshape."""
    return _replace_each(gm, ChannelShuffle, lambda m: ReshapeShuffle(m.groups))


class ChannelLastShuffle(ReshapeShuffle):
    """Channel shuffle computed in channel-last order: permute to NHWC, reshape the channels to
    (g, C/g), swap them, permute back. Converters that keep tensors NHWC (LiteRT, XNNPACK) can
    cancel the outer permutes against their own layout transposes, leaving one transpose."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = (int(v) for v in x.shape)
        g = self.groups
        y = x.permute(0, 2, 3, 1).reshape(n, h, w, g, c // g).transpose(3, 4).reshape(n, h, w, c)
        return y.permute(0, 3, 1, 2)


def shuffles_to_channel_last(gm: fx.GraphModule) -> fx.GraphModule:
    """Every remaining ``ChannelShuffle`` becomes :class:`ChannelLastShuffle`."""
    return _replace_each(gm, ChannelShuffle, lambda m: ChannelLastShuffle(m.groups))


def fold_shuffles(gm: fx.GraphModule, max_mac_ratio: float = 1.0) -> fx.GraphModule:
    """Fold each ``ChannelShuffle`` into a neighbouring conv's weights where that costs at most
    ``max_mac_ratio`` times the conv's MACs.

    Producer side: conv -> (ReLU ...) -> shuffle, every link single-use; the conv's output
    channels are permuted (a permutation moves through channel-wise ops). Consumer side:
    every user of the shuffle is a conv; their input channels are permuted.
    """
    for node in list(gm.graph.nodes):
        shuffle = _mod(gm, node)
        if not isinstance(shuffle, ChannelShuffle):
            continue
        src = node.args[0]
        channels = _channels_of(gm, node)
        if channels is None:
            continue
        perm = alg.shuffle_permutation(channels, shuffle.groups)
        # consumer side
        users = list(node.users)
        convs = [_mod(gm, u) for u in users]
        # a grouped conv's permuted weight is at best dense: ``groups`` times the MACs
        if users and all(alg.is_plain_conv(c) and u.args[0] is node and c.groups <= max_mac_ratio
                         for c, u in zip(convs, users)):
            news = [alg.permute_inputs(c, perm) for c in convs]
            if all(alg.conv_macs(n) <= max_mac_ratio * alg.conv_macs(c) for n, c in zip(news, convs)):
                for u, n in zip(users, news):
                    _set_module(gm, u, n)
                node.replace_all_uses_with(src)
                gm.graph.erase_node(node)
                continue
        # producer side
        chain = [src]
        while _is_channelwise(gm, chain[-1]) and len(chain[-1].users) == 1:
            chain.append(chain[-1].args[0])
        producer = chain[-1]
        conv = _mod(gm, producer)
        if alg.is_plain_conv(conv) and conv.groups <= max_mac_ratio and all(len(n.users) == 1 for n in chain):
            new = alg.permute_outputs(conv, perm)
            if alg.conv_macs(new) <= max_mac_ratio * alg.conv_macs(conv):
                _set_module(gm, producer, new)
                node.replace_all_uses_with(src)
                gm.graph.erase_node(node)
    return _finish(gm)


def _channels_of(gm: fx.GraphModule, node: fx.Node) -> int | None:
    """Channel count flowing into ``node``, read from the nearest conv upstream."""
    cur = node.args[0]
    while isinstance(cur, fx.Node):
        mod = _mod(gm, cur)
        if isinstance(mod, nn.Conv2d):
            return mod.out_channels
        if isinstance(mod, Shift):
            return mod.channels
        if cur.op == "call_function" and cur.target in (operator.add, torch.add):
            cur = cur.args[0]
            continue
        if not cur.args:
            return None
        cur = cur.args[0]
    return None


def merge_pointwise(gm: fx.GraphModule, max_mac_ratio: float = 1.0) -> fx.GraphModule:
    """Merge conv -> [shuffle] -> 1x1 conv chains with nothing non-linear between them into one conv,
    when the merged conv costs at most ``max_mac_ratio`` times the two it replaces."""
    changed = True
    while changed:
        changed = False
        for node in list(gm.graph.nodes):
            second = _mod(gm, node)
            if not alg.is_pointwise(second):
                continue
            perm = None
            prev = node.args[0]
            if isinstance(_mod(gm, prev), ChannelShuffle) and len(prev.users) == 1:
                channels = _channels_of(gm, prev)
                if channels is None:
                    continue
                perm = alg.shuffle_permutation(channels, _mod(gm, prev).groups)
                shuffle_node, prev = prev, prev.args[0]
            else:
                shuffle_node = None
            first = _mod(gm, prev)
            if not alg.is_plain_conv(first) or len(prev.users) != 1:
                continue
            merged = alg.merge_convs(first, perm, second)
            if alg.conv_macs(merged) > max_mac_ratio * (alg.conv_macs(first) + alg.conv_macs(second)):
                continue
            _set_module(gm, node, merged)
            node.replace_input_with(node.args[0], prev.args[0])
            if shuffle_node is not None:
                gm.graph.erase_node(shuffle_node)
            gm.graph.erase_node(prev)
            changed = True
            break
    return _finish(gm)
