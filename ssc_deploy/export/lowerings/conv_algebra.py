"""Exact weight algebra behind the fused lowerings (no graph code here).

Every function builds a plain ``nn.Conv2d`` that computes exactly what the ops it replaces
computed (up to float rounding): a ``Shift`` followed by a 1x1 conv is a k x k conv whose
kernels are one-hot; two convs with nothing but a channel permutation between them (and the
second one 1x1) are one conv whose weight is the matrix product; a permutation of a dense
conv's outputs or inputs is a permutation of its weight.
"""

from __future__ import annotations

import torch
from torch import nn


def conv_macs(conv: nn.Conv2d) -> int:
    """Multiply-accumulates per output pixel."""
    kh, kw = conv.kernel_size
    return conv.out_channels * (conv.in_channels // conv.groups) * kh * kw


def is_pointwise(conv: nn.Module) -> bool:
    """A 1x1, stride-1, unpadded, undilated conv: a per-pixel matrix product."""
    return (
        type(conv) is nn.Conv2d
        and conv.kernel_size == (1, 1)
        and conv.stride == (1, 1)
        and conv.padding in ((0, 0), "valid")
        and conv.padding_mode == "zeros"
    )


def is_plain_conv(conv: nn.Module) -> bool:
    """A Conv2d with numeric zero padding and no dilation (what the algebra below handles)."""
    return (
        type(conv) is nn.Conv2d
        and not isinstance(conv.padding, str)
        and conv.padding_mode == "zeros"
        and conv.dilation == (1, 1)
    )


def dense_weight(conv: nn.Conv2d) -> torch.Tensor:
    """The weight as if ``groups == 1``: shape (Cout, Cin, kh, kw), zeros off the group blocks."""
    g = conv.groups
    w = conv.weight.detach()
    if g == 1:
        return w.clone()
    cout, cin_g, kh, kw = w.shape
    cout_g = cout // g
    dense = w.new_zeros(cout, cin_g * g, kh, kw)
    for i in range(g):
        dense[i * cout_g : (i + 1) * cout_g, i * cin_g : (i + 1) * cin_g] = w[i * cout_g : (i + 1) * cout_g]
    return dense


def conv_bias(conv: nn.Conv2d) -> torch.Tensor:
    """The bias, zeros when the conv has none."""
    if conv.bias is None:
        return conv.weight.new_zeros(conv.out_channels)
    return conv.bias.detach().clone()


def largest_groups(dense: torch.Tensor) -> int:
    """The largest ``g`` for which ``dense`` (Cout, Cin, kh, kw) is exactly block-diagonal in g blocks."""
    cout, cin = dense.shape[:2]
    nonzero = dense.abs().sum(dim=(2, 3)) != 0
    rows, cols = torch.arange(cout), torch.arange(cin)
    for g in sorted({d for d in range(2, min(cout, cin) + 1) if cout % d == 0 and cin % d == 0}, reverse=True):
        inside = (rows[:, None] // (cout // g)) == (cols[None, :] // (cin // g))
        if not bool((nonzero & ~inside).any()):
            return g
    return 1


def make_conv(
    dense: torch.Tensor,
    bias: torch.Tensor | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int | None = None,
) -> nn.Conv2d:
    """A Conv2d from a dense weight, using the largest exact grouping unless ``groups`` is given."""
    g = largest_groups(dense) if groups is None else groups
    cout, cin, kh, kw = dense.shape
    conv = nn.Conv2d(cin, cout, (kh, kw), stride, padding, groups=g, bias=bias is not None)
    co, ci = cout // g, cin // g
    with torch.no_grad():
        blocks = [dense[i * co : (i + 1) * co, i * ci : (i + 1) * ci] for i in range(g)]
        conv.weight.copy_(torch.cat(blocks, 0))
        if bias is not None:
            conv.bias.copy_(bias)
    return conv.eval()


def merge_convs(first: nn.Conv2d, perm: list[int] | None, second: nn.Conv2d) -> nn.Conv2d:
    """``second(first(x)[:, perm])`` as one conv; ``second`` must be pointwise.

    The merged conv keeps ``first``'s kernel, stride and padding (a pointwise conv commutes
    with them) and takes the largest grouping its weight allows.
    """
    wa = dense_weight(first).double()
    ba = conv_bias(first).double()
    if perm is not None:
        wa, ba = wa[perm], ba[perm]
    wb = dense_weight(second).double()[:, :, 0, 0]
    w = torch.einsum("om,mikl->oikl", wb, wa)
    b = wb @ ba + conv_bias(second).double()
    has_bias = first.bias is not None or second.bias is not None
    return make_conv(w.float(), b.float() if has_bias else None, first.stride, first.padding)


def shift_into_conv(offsets: list[tuple[int, int]], conv: nn.Conv2d) -> nn.Conv2d:
    """``conv(Shift(offsets)(x))`` as one k x k conv with one-hot kernels; ``conv`` must be 1x1, unpadded.

    A zero-filled shift by (dy, dx) is a correlation with a kernel that is one at
    (dy + p, dx + p) under padding p, so the 1x1 weight moves to that tap.
    """
    p = max((max(abs(dy), abs(dx)) for dy, dx in offsets), default=0)
    k = 2 * p + 1
    g = conv.groups
    cout, cin_g = conv.out_channels, conv.in_channels // g
    w1 = conv.weight.detach()[:, :, 0, 0]
    w = w1.new_zeros(cout, cin_g, k, k)
    # input channel of weight column i in output row o: its group's base + i
    channel = (torch.arange(cout)[:, None] // (cout // g)) * cin_g + torch.arange(cin_g)[None, :]
    off = torch.tensor(offsets, dtype=torch.long)[channel] + p
    rows = torch.arange(cout)[:, None].expand(cout, cin_g)
    cols = torch.arange(cin_g)[None, :].expand(cout, cin_g)
    w[rows, cols, off[..., 0], off[..., 1]] = w1
    new = nn.Conv2d(conv.in_channels, cout, k, conv.stride, p, groups=g, bias=conv.bias is not None)
    with torch.no_grad():
        new.weight.copy_(w)
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new.eval()


def shift_as_depthwise(offsets: list[tuple[int, int]]) -> nn.Conv2d:
    """``Shift(offsets)`` as a depthwise k x k conv with one-hot kernels and no bias."""
    c = len(offsets)
    p = max((max(abs(dy), abs(dx)) for dy, dx in offsets), default=0)
    k = 2 * p + 1
    conv = nn.Conv2d(c, c, k, 1, p, groups=c, bias=False)
    off = torch.tensor(offsets, dtype=torch.long).reshape(c, 2) + p
    weight = torch.zeros(c, 1, k, k)
    weight[torch.arange(c), 0, off[:, 0], off[:, 1]] = 1.0
    with torch.no_grad():
        conv.weight.copy_(weight)
    return conv.eval()


def permute_outputs(conv: nn.Conv2d, perm: list[int]) -> nn.Conv2d:
    """``conv(x)[:, perm]`` as one conv (exact when ``conv`` is dense; grouping is re-detected)."""
    w = dense_weight(conv)[perm]
    b = conv_bias(conv)[perm] if conv.bias is not None else None
    return make_conv(w, b, conv.stride, conv.padding)


def permute_inputs(conv: nn.Conv2d, perm: list[int]) -> nn.Conv2d:
    """``conv(x[:, perm])`` as one conv: input channel ``j`` reads what ``perm[j]`` held."""
    inverse = [0] * len(perm)
    for j, src in enumerate(perm):
        inverse[src] = j
    w = dense_weight(conv)[:, inverse]
    b = conv_bias(conv) if conv.bias is not None else None
    return make_conv(w, b, conv.stride, conv.padding)


def shuffle_permutation(channels: int, groups: int) -> list[int]:
    """``ChannelShuffle(groups)`` as ``out[:, j] = in[:, perm[j]]``."""
    per = channels // groups
    return [(j % groups) * per + j // groups for j in range(channels)]
