"""The default lowering: one positive zero pad, stride-1 slices and one concat per shift.

Channels are sliced in runs of equal offset. When the offsets repeat with a period ``P``
(SSC-Nets: ``P = k*k``, every channel in a period has its own direction), the run-per-channel
form would need one slice per channel; the tensor is instead viewed as ``(N, C/P, P, H, W)``
so each direction is one slice over every period, then viewed back. Channel shuffle becomes
reshape / transpose / reshape with static shapes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ssc_deploy.models.layers import ChannelShuffle, Shift, shift_plan

from ssc_deploy.export.lowerings.registry import register_lowering


class PadSliceShift(nn.Module):
    """``Shift`` as pad + slices + concat (see the module docstring)."""

    def __init__(self, offsets: list[tuple[int, int]]) -> None:
        super().__init__()
        self.offsets = [(int(dy), int(dx)) for dy, dx in offsets]
        self.pad = max((max(abs(dy), abs(dx)) for dy, dx in self.offsets), default=0)
        plan = shift_plan(self.offsets)
        self.period, self.body, self.runs, self.tail = plan.period, plan.body, list(plan.runs), list(plan.tail)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = self.pad
        if p == 0:
            return x
        n, c, h, w = (int(v) for v in x.shape)
        xp = F.pad(x, (p, p, p, p))
        if self.period == c:
            parts = [xp[:, a:b, p + dy : p + dy + h, p + dx : p + dx + w] for a, b, (dy, dx) in self.runs]
            return torch.cat(parts, 1) if len(parts) > 1 else parts[0]
        body = xp[:, : self.body] if self.tail else xp
        body = body.reshape(n, self.body // self.period, self.period, h + 2 * p, w + 2 * p)
        parts = [body[:, :, a:b, p + dy : p + dy + h, p + dx : p + dx + w] for a, b, (dy, dx) in self.runs]
        out = torch.cat(parts, 2).reshape(n, self.body, h, w)
        if not self.tail:
            return out
        tail = [xp[:, a:b, p + dy : p + dy + h, p + dx : p + dx + w] for a, b, (dy, dx) in self.tail]
        return torch.cat([out, *tail], 1)

    def extra_repr(self) -> str:
        return f"channels={len(self.offsets)}, pad={self.pad}, period={self.period}, slices={len(self.runs) + len(self.tail)}"


class ReshapeShuffle(nn.Module):
    """Channel shuffle as reshape / transpose / reshape."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = (int(v) for v in x.shape)
        g = self.groups
        return x.reshape(n, g, c // g, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def replace_modules(model: nn.Module, make) -> nn.Module:
    """Replace every submodule for which ``make(module)`` returns a module (in place; root too)."""
    root = make(model)
    if root is not None:
        return root
    for name, mod in list(model.named_modules()):
        if not name:
            continue
        new = make(mod)
        if new is not None:
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name) if parent_name else model, child, new)
    return model


def _make(mod: nn.Module) -> nn.Module | None:
    if isinstance(mod, Shift):
        return PadSliceShift(mod.offsets)
    if isinstance(mod, ChannelShuffle):
        return ReshapeShuffle(mod.groups)
    return None


@register_lowering("pad-slice", "one positive zero pad, stride-1 slices per direction, one concat (default)")
def pad_slice(model: nn.Module) -> nn.Module:
    """Lower every Shift to pad + slices + concat and every ChannelShuffle to reshape/transpose/reshape."""
    return replace_modules(model, _make)
