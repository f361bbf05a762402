"""Building blocks shared by the model families and understood by the export rewrite.

The export rewrite (``ssc_deploy.export``) recognises :class:`Shift` and
:class:`ChannelShuffle` by type and lowers them to plain graph ops, so every model
family must use these classes rather than its own copies.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx._symbolic_trace import is_fx_symbolic_tracing


def ssc_offsets(channels: int, kernel_size: int = 3) -> list[tuple[int, int]]:
    """Per-channel (dy, dx) shifts of the SSC kernel (paper Eq. 1-3).

    Channel p of each group of C = k*k channels keeps the one non-zero position
    (i_p, j_p) = ((p mod C) // k, (p mod C) % k); it is shifted by (i_p - k//2, j_p - k//2).
    """
    c = kernel_size * kernel_size
    half = kernel_size // 2
    return [((p % c) // kernel_size - half, (p % c) % kernel_size - half) for p in range(channels)]


def shiftnet_offsets(channels: int, kernel_size: int = 3) -> list[tuple[int, int]]:
    """Per-channel shifts of Shift-Net (Wu et al. 2017): k*k contiguous blocks of channels,
    one direction each; the centre block (no shift) takes the remainder."""
    c = kernel_size * kernel_size
    half = kernel_size // 2
    per = channels // c
    dirs = [(i // kernel_size - half, i % kernel_size - half) for i in range(c)]
    centre = c // 2
    counts = [per] * c
    counts[centre] += channels - per * c
    offsets: list[tuple[int, int]] = []
    for d, n in zip(dirs, counts):
        offsets.extend([d] * n)
    return offsets


def offset_runs(offsets: list[tuple[int, int]]) -> list[tuple[int, int, tuple[int, int]]]:
    """Maximal runs ``(start, stop, offset)`` of consecutive channels sharing one offset."""
    runs: list[tuple[int, int, tuple[int, int]]] = []
    for ch, off in enumerate(offsets):
        if runs and runs[-1][2] == off:
            runs[-1] = (runs[-1][0], ch + 1, off)
        else:
            runs.append((ch, ch + 1, off))
    return runs


def offset_period(offsets: list[tuple[int, int]]) -> int:
    """Smallest P with ``offsets[c] == offsets[c % P]`` for every channel c (C when none is shorter)."""
    c = len(offsets)
    for p in range(1, c):
        if 2 * p <= c and all(offsets[i] == offsets[i % p] for i in range(c)):
            return p
    return c


@dataclass(frozen=True)
class ShiftPlan:
    """How a shift is cut into slices, one per run of channels sharing a direction.

    With ``period < channels`` the first ``body`` channels are viewed as (N, body/period,
    period, H, W) and each of ``runs`` (channel ranges inside one period) is one slice over
    every period; ``tail`` holds plain channel runs for the remaining channels.
    """

    period: int
    body: int
    runs: tuple[tuple[int, int, tuple[int, int]], ...]
    tail: tuple[tuple[int, int, tuple[int, int]], ...] = ()


def shift_plan(offsets: list[tuple[int, int]]) -> ShiftPlan:
    """The plan with the fewest slices: periodic (SSC-Nets: one slice per direction) or plain runs."""
    c = len(offsets)
    runs = offset_runs(offsets)
    period = offset_period(offsets)
    body = c - c % period
    period_runs = offset_runs(offsets[:period])
    tail_runs = [(a + body, b + body, off) for a, b, off in offset_runs(offsets[body:])]
    if period < c and len(period_runs) + len(tail_runs) < len(runs):
        return ShiftPlan(period, body, tuple(period_runs), tuple(tail_runs))
    return ShiftPlan(c, c, tuple(runs))


def _copy_shifted(dst: torch.Tensor, src: torch.Tensor, dy: int, dx: int) -> None:
    """``dst[..., y, x] = src[..., y + dy, x + dx]`` where that source pixel exists, else 0
    (every element of ``dst`` is written)."""
    h, w = src.shape[-2:]
    if abs(dy) >= h or abs(dx) >= w:
        dst.zero_()
        return
    top, bottom, left, right = max(-dy, 0), h - max(dy, 0), max(-dx, 0), w - max(dx, 0)
    dst[..., top:bottom, left:right].copy_(src[..., max(dy, 0) : h - max(-dy, 0), max(dx, 0) : w - max(-dx, 0)])
    for rows in (slice(0, top), slice(bottom, h)):
        if rows.start < rows.stop:
            dst[..., rows, :].zero_()
    for cols in (slice(0, left), slice(right, w)):
        if cols.start < cols.stop:
            dst[..., top:bottom, cols].zero_()


def is_cnhw(x: torch.Tensor) -> bool:
    """True for a 4-D tensor laid out channel-major, (C, N, H, W) in memory: the layout the
    fast training forms keep SSC-Nets in (see :func:`to_cnhw`)."""
    return x.dim() == 4 and x.transpose(0, 1).is_contiguous()


def to_cnhw(x: torch.Tensor) -> torch.Tensor:
    """The same (N, C, H, W) values laid out as (C, N, H, W): every 1x1 convolution then is
    one (batched) GEMM over N*H*W columns and every per-channel reduction a contiguous row."""
    return x.transpose(0, 1).contiguous().transpose(0, 1)


def shift_zero_filled(x: torch.Tensor, plan: ShiftPlan, sign: int = 1, cdim: int = 1) -> torch.Tensor:
    """The zero-filled shift of ``plan`` over dimension ``cdim`` of ``x`` (``sign=-1``: every
    offset negated, its adjoint). Returns a new contiguous tensor.

    One strided copy (and zeroed borders) per slice of the plan: no gather, pad or concat.
    """
    x = x.contiguous()
    out = torch.empty_like(x)
    if plan.body:
        shape = x.shape[:cdim] + (plan.body // plan.period, plan.period) + x.shape[cdim + 1 :]
        body_src, body_dst = x.narrow(cdim, 0, plan.body).view(shape), out.narrow(cdim, 0, plan.body).view(shape)
        for a, b, (dy, dx) in plan.runs:
            _copy_shifted(body_dst.narrow(cdim + 1, a, b - a), body_src.narrow(cdim + 1, a, b - a), sign * dy, sign * dx)
    for a, b, (dy, dx) in plan.tail:
        _copy_shifted(out.narrow(cdim, a, b - a), x.narrow(cdim, a, b - a), sign * dy, sign * dx)
    return out


class _ShiftFunction(torch.autograd.Function):
    """Zero-filled shift whose backward is the same shift with negated offsets (each input
    pixel feeds at most one output pixel, so the adjoint is a copy too)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, plan: ShiftPlan, cdim: int) -> torch.Tensor:  # type: ignore[override]
        ctx.plan, ctx.cdim = plan, cdim
        return shift_zero_filled(x, plan, 1, cdim)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        return shift_zero_filled(grad, ctx.plan, -1, ctx.cdim), None, None


def tracing() -> bool:
    """True while torch.jit, torch.fx or torch.export records the graph: layers then run their
    reference form, the one the export rewrite understands."""
    return torch.jit.is_tracing() or is_fx_symbolic_tracing() or torch.compiler.is_exporting()


class Shift(nn.Module):
    """Zero-filled per-channel spatial shift: ``out[c, y, x] = in[c, y + dy_c, x + dx_c]``.

    Has no parameters. ``offsets[c] = (dy_c, dx_c)``; pixels shifted in from outside the
    map are zero, exactly like a k x k convolution with padding k//2 whose kernel is a
    one-hot at (dy + k//2, dx + k//2).

    ``fast`` (default) runs :func:`shift_zero_filled` with a copy-only backward; ``fast =
    False`` (see :func:`set_fast_forms`) and graph tracing run :meth:`reference_forward`.
    Both give the same values.
    """

    fast = True

    def __init__(self, offsets: list[tuple[int, int]], kernel_size: int = 3) -> None:
        super().__init__()
        self.offsets = [(int(dy), int(dx)) for dy, dx in offsets]
        self.kernel_size = kernel_size
        self.pad = max((max(abs(dy), abs(dx)) for dy, dx in self.offsets), default=0)
        self.plan = shift_plan(self.offsets)
        # Channels grouped by direction, so the reference form does one slice per direction.
        groups: dict[tuple[int, int], list[int]] = {}
        for ch, off in enumerate(self.offsets):
            groups.setdefault(off, []).append(ch)
        self._dirs = list(groups)
        order = [ch for d in self._dirs for ch in groups[d]]
        self.register_buffer("_gather", torch.tensor(order, dtype=torch.long), persistent=False)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        self.register_buffer("_scatter", inverse, persistent=False)
        self._sizes = [len(groups[d]) for d in self._dirs]

    @property
    def channels(self) -> int:
        return len(self.offsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fast and not tracing():
            if is_cnhw(x):  # keep the layout: shift the (C, N, H, W) view
                return _ShiftFunction.apply(x.transpose(0, 1), self.plan, 0).transpose(0, 1)
            return _ShiftFunction.apply(x, self.plan, 1)
        return self.reference_forward(x)

    def reference_forward(self, x: torch.Tensor) -> torch.Tensor:
        """The gather / pad / slice / concat / scatter form (the layer as first written)."""
        h, w = x.shape[-2:]
        # Pad each direction's channels on their own: one pad of the whole tensor with nine
        # slices of it makes backward zero-fill the full padded tensor nine times.
        chunks = torch.split(x.index_select(1, self._gather), self._sizes, 1)
        parts = []
        for (dy, dx), chunk in zip(self._dirs, chunks):
            shifted = F.pad(chunk, (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)))
            parts.append(shifted[:, :, max(dy, 0) : max(dy, 0) + h, max(dx, 0) : max(dx, 0) + w])
        return torch.cat(parts, 1).index_select(1, self._scatter)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> view (N, g, c) -> transpose -> (N, c*g)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        if not tracing() and is_cnhw(x) and not x.is_contiguous():  # keep the fast forms' CNHW layout
            rows = x.transpose(0, 1).reshape(self.groups, c // self.groups, n * h * w)
            return rows.transpose(0, 1).reshape(c, n, h, w).transpose(0, 1)
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def conv1x1_cnhw(x: torch.Tensor, weight: torch.Tensor, stride: int = 1, groups: int = 1) -> torch.Tensor:
    """An unpadded, bias-free 1x1 convolution of a CNHW tensor as one batched GEMM,
    (groups, Cout/groups, Cin/groups) @ (groups, Cin/groups, N*H*W); the output is CNHW.

    Same values as ``F.conv2d(x, weight, stride=stride, groups=groups)`` up to float rounding;
    forward and both backward products are large GEMMs, unlike oneDNN's grouped 1x1 kernels.
    """
    xt = x.transpose(0, 1)
    if stride != 1:
        xt = xt[:, :, ::stride, ::stride]
    c, n, h, w = xt.shape
    cout = weight.shape[0]
    out = torch.bmm(weight.view(groups, cout // groups, c // groups), xt.reshape(groups, c // groups, n * h * w))
    return out.view(cout, n, h, w).transpose(0, 1)


def batch_norm_cnhw(x: torch.Tensor, bn: nn.BatchNorm2d) -> torch.Tensor:
    """``bn(x)`` for a CNHW ``x``, run on its (1, C, N*H*W, 1) view: the same statistics, running
    averages and ``num_batches_tracked``, but PyTorch's kernel then reads one contiguous row a
    channel, several times faster than its NCHW path for H*W in the hundreds. CNHW output."""
    n, c, h, w = x.shape
    out = bn(x.transpose(0, 1).reshape(1, c, n * h * w, 1))
    return out.view(c, n, h, w).transpose(0, 1)


def _cnhw_conv_fits(conv: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d and conv.kernel_size == (1, 1) and conv.padding == (0, 0)
        and conv.dilation == (1, 1) and conv.bias is None and conv.stride[0] == conv.stride[1]
    )




class ConvBN(nn.Sequential):
    """Conv (no bias) + BatchNorm (+ ReLU) as an ``nn.Sequential`` (children ``0``, ``1``, ``2``).

    Training on a CNHW input (:func:`to_cnhw`) with ``fast`` set, a 1x1 conv runs as
    :func:`conv1x1_cnhw` and the BatchNorm as :func:`batch_norm_cnhw`; otherwise (NCHW
    inputs, eval mode, ``fast = False`` via :func:`set_fast_forms`, tracing) it is the plain
    sequence the export rewrite folds.
    """

    fast = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        modules = list(self)
        if tracing() or not (self.fast and self.training and _cnhw_conv_fits(modules[0]) and is_cnhw(x)):
            return super().forward(x)
        conv = modules[0]
        x = conv1x1_cnhw(x, conv.weight, conv.stride[0], conv.groups)
        if len(modules) > 1 and type(modules[1]) is nn.BatchNorm2d:
            x = batch_norm_cnhw(x, modules[1])
            modules = modules[1:]
        for module in modules[1:]:
            x = module(x)
        return x


def conv_bn(
    cin: int, cout: int, kernel_size: int = 1, stride: int = 1, groups: int = 1, relu: bool = True
) -> ConvBN:
    """Conv (no bias) + BatchNorm (+ ReLU): the unit the export rewrite folds into one conv."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return ConvBN(*layers)


def set_fast_forms(model: nn.Module, fast: bool = True) -> nn.Module:
    """Switch every module of ``model`` with a ``fast`` switch (:class:`Shift`, :class:`ConvBN`,
    ``SSCNet``) to its fast training form
    (``fast=True``, the default of a new model) or to the reference form (the layers as first
    written; same values and gradients, for tests and before/after benchmarks). Returns ``model``."""
    for m in model.modules():
        if isinstance(getattr(type(m), "fast", None), bool):
            m.fast = fast
    return model


def random_channel_mask(
    out_channels: int, in_channels: int, density: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A fixed random (out, in) 0/1 mask keeping ``round(density * in)`` (at least one) input
    channels for every output channel, as in Changpinyo et al. 2017's channel-wise sparsity."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    keep = max(1, round(density * in_channels))
    scores = torch.rand(out_channels, in_channels, generator=generator)
    chosen = scores.argsort(dim=1)[:, :keep]
    mask = torch.zeros(out_channels, in_channels)
    mask.scatter_(1, chosen, 1.0)
    return mask


class MaskedConv2d(nn.Conv2d):
    """A convolution whose weight is multiplied by a fixed 0/1 ``mask`` buffer in forward.

    ``mask`` has the weight's shape and is saved in the state dict. The export folds
    ``weight * mask`` into a plain convolution; complexity counts only the kept weights.
    """

    def __init__(self, *args, mask: torch.Tensor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if mask.dim() == 2:  # channel mask (out, in/groups): the same for every kernel tap
            mask = mask[:, :, None, None].expand_as(self.weight)
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype).contiguous())

    @property
    def density(self) -> float:
        """Fraction of the weights the mask keeps."""
        return float(self.mask.mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)
