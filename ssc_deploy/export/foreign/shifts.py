"""Shifts written as plain ops, found in an aten graph: zero pad + slices + concat, or ``torch.roll``
with the wrapped border zeroed by a constant mask.

Each node is read as a *view* of one source tensor: for every output channel, the source
channel it holds and, per spatial axis, ``(length, off, lo, hi, wrapped)``: element ``u`` is
``src[u + off]`` for ``lo <= u < hi`` and zero elsewhere (``wrapped``: ``src[(u + off) mod L]``
everywhere, as after a roll). A node whose view keeps every channel in place, has the source's
size and holds exactly the in-range pixels is a zero-filled shift, ``Shift`` with offsets
``(off_y, off_x)``.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import fx

from ssc_deploy.export.foreign.graph import Constants, shape

Axis = tuple[int, int, int, int, bool]  # length, off, lo, hi, wrapped
Channel = tuple[int, Axis, Axis]
aten = torch.ops.aten


@dataclass(frozen=True)
class View:
    """What a node holds, in terms of its ``source`` (see the module docstring)."""

    source: fx.Node
    channels: tuple[Channel, ...]


def identity(node: fx.Node) -> View | None:
    """The node as a view of itself."""
    s = shape(node)
    if s is None or len(s) != 4:
        return None
    _, c, h, w = s
    return View(node, tuple((ch, (h, 0, 0, h, False), (w, 0, 0, w, False)) for ch in range(c)))


def _pad_axis(ax: Axis, before: int, after: int) -> Axis | None:
    n, off, lo, hi, wrapped = ax
    if before == 0 and after == 0:
        return ax
    n2 = n + before + after
    if wrapped or n2 <= 0:
        return None
    return n2, off - before, max(lo + before, 0), min(hi + before, n2), False


def _map_axes(view: View, dim: int, fn: Callable[[Axis], Axis | None]) -> View | None:
    out = []
    for ch, ay, ax in view.channels:
        new = fn(ay if dim == 2 else ax)
        if new is None:
            return None
        out.append((ch, new, ax) if dim == 2 else (ch, ay, new))
    return View(view.source, tuple(out))


def _pad(view: View, pads: list[int]) -> View | None:
    if len(pads) not in (2, 4):
        return None  # pads the channel or batch dimension
    view = _map_axes(view, 3, lambda a: _pad_axis(a, pads[0], pads[1]))
    if view is not None and len(pads) == 4:
        view = _map_axes(view, 2, lambda a: _pad_axis(a, pads[2], pads[3]))
    return view


def _length(view: View, dim: int) -> int:
    return view.channels[0][1 if dim == 2 else 2][0] if view.channels else 0


def _slice(view: View, dim: int, start: int | None, end: int | None, step: int = 1) -> View | None:
    size = len(view.channels) if dim == 1 else (_length(view, dim) if dim in (2, 3) else None)
    if size is None:
        return None
    start, end, step = slice(start, end, step).indices(size)
    if dim == 1:
        return View(view.source, view.channels[start:end:step])
    if step != 1 or end <= start:
        return None
    return _map_axes(view, dim, lambda a: _pad_axis(a, -start, end - size))


def _roll(view: View, shifts: list[int], dims: list[int]) -> View | None:
    for s, d in zip(shifts, dims):
        d = d % 4
        if d not in (2, 3):
            return None

        def roll_axis(a: Axis, s=s) -> Axis | None:
            n, off, lo, hi, wrapped = a
            if not wrapped and (off, lo, hi) != (0, 0, n):
                return None  # rolling a padded or cut axis is not a shift
            return n, (off - s) % n, 0, n, True

        view = _map_axes(view, d, roll_axis)
        if view is None:
            return None
    return view


def _in_range(a: Axis, n_src: int, off: int) -> torch.Tensor:
    u = torch.arange(a[0]) + off
    return (u >= 0) & (u < n_src)


def _unwrap(a: Axis, n_src: int, mask_1d: torch.Tensor) -> Axis | None:
    """The clean axis a wrapped one becomes under a mask whose profile along it is ``mask_1d``."""
    n, off, _, _, _ = a
    for cand in (off, off - n):
        keep = _in_range(a, n_src, cand)
        if torch.equal(mask_1d, keep):
            idx = keep.nonzero()
            lo, hi = (int(idx[0]), int(idx[-1]) + 1) if len(idx) else (0, 0)
            return n, cand, lo, hi, False
    return None


def _masked(view: View, mask: torch.Tensor, src_hw: tuple[int, int]) -> View | None:
    """``view * mask``: a shift when the mask is exactly 1 on every kept pixel and 0 on every wrapped one."""
    h, w = _length(view, 2), _length(view, 3)
    if mask.dim() > 4 or (mask.dim() == 4 and mask.shape[0] != 1):
        return None
    try:
        full = torch.broadcast_to(mask, (1, len(view.channels), h, w))[0]
    except RuntimeError:
        return None
    if not bool(torch.isfinite(full).all()):
        return None
    out = []
    for m, (ch, ay, ax) in zip(full, view.channels):
        wrapped = ay[4] or ax[4]
        if ay[4]:
            ay = _unwrap(ay, src_hw[0], m.amax(1) != 0)
        if ax[4]:
            ax = _unwrap(ax, src_hw[1], m.amax(0) != 0)
        if ay is None or ax is None:
            return None
        keep = torch.zeros(h, w, dtype=torch.bool)
        keep[ay[2] : ay[3], ax[2] : ax[3]] = True
        # Outside the kept pixels a clean channel holds zeros (any finite factor keeps them), a wrapped one does not.
        if not bool((m[keep] == 1).all()) or (wrapped and not bool((m[~keep] == 0).all())):
            return None
        out.append((ch, ay, ax))
    return View(view.source, tuple(out))


class ShiftFinder:
    """Reads every node of ``gm`` as a view (memoized) and lists the nodes that are shifts."""

    def __init__(self, gm: fx.GraphModule, constants: Constants) -> None:
        self.gm, self.constants = gm, constants
        self._views: dict[fx.Node, Any] = {}

    def view(self, node: Any) -> Any:
        """The node's view (a list of views for a split), or None when it is not a data-movement op of one source."""
        if not isinstance(node, fx.Node):
            return None
        if node not in self._views:
            self._views[node] = self._read(node)
        return self._views[node]

    def _arg_view(self, node: Any) -> View | None:
        v = self.view(node)
        if isinstance(v, View):
            return v
        return identity(node) if isinstance(node, fx.Node) and v is None else None

    def _read(self, node: fx.Node) -> Any:
        if node.op != "call_function" or self.constants(node) is not None:
            return None
        t, a = node.target, node.args
        if t in (aten.clone.default, aten.alias.default, aten.contiguous.default):
            return self._arg_view(a[0])
        if t is aten.constant_pad_nd.default or t is aten.pad.default:
            value = a[2] if len(a) > 2 else node.kwargs.get("value", 0)
            if t is aten.pad.default:
                mode = a[2] if len(a) > 2 else node.kwargs.get("mode", "constant")
                value = a[3] if len(a) > 3 else node.kwargs.get("value")
                if mode != "constant":
                    return None
            v = self._arg_view(a[0])
            return _pad(v, list(a[1])) if v is not None and not value else None
        if t is aten.slice.Tensor:
            v = self._arg_view(a[0])
            dim, start, end, step = (list(a[1:]) + [0, None, None, 1][len(a) - 1 :])[:4]
            return _slice(v, dim % 4, start, end, step) if v is not None else None
        if t is aten.narrow.default:
            v = self._arg_view(a[0])
            return _slice(v, a[1] % 4, a[2], a[2] + a[3]) if v is not None else None
        if t in (aten.split.Tensor, aten.split_with_sizes.default):
            v = self._arg_view(a[0])
            dim = (a[2] if len(a) > 2 else 0) % 4
            if v is None or dim != 1:
                return None
            sizes = list(a[1]) if isinstance(a[1], (list, tuple)) else None
            if sizes is None:
                n = len(v.channels)
                sizes = [min(a[1], n - s) for s in range(0, n, a[1])]
            starts = [sum(sizes[:k]) for k in range(len(sizes))]
            return [_slice(v, 1, s, s + z) for s, z in zip(starts, sizes)]
        if t is operator.getitem:
            parts = self.view(a[0])
            return parts[a[1]] if isinstance(parts, list) else None
        if t is aten.index_select.default:
            v, index = self._arg_view(a[0]), self.constants(a[2])
            if v is None or a[1] % 4 != 1 or index is None:
                return None
            return View(v.source, tuple(v.channels[int(i)] for i in index.tolist()))
        if t is aten.cat.default:
            dim = (a[1] if len(a) > 1 else 0) % 4
            views = [self._arg_view(n) for n in a[0]]
            if dim != 1 or any(v is None for v in views) or len({v.source for v in views}) != 1:
                return None
            return View(views[0].source, sum((v.channels for v in views), ()))
        if t is aten.roll.default:
            v = self._arg_view(a[0])
            shifts, dims = a[1], a[2] if len(a) > 2 else []
            shifts, dims = ([shifts] if isinstance(shifts, int) else list(shifts)), ([dims] if isinstance(dims, int) else list(dims))
            return _roll(v, shifts, dims) if v is not None and len(shifts) == len(dims) and dims else None
        if t is aten.mul.Tensor:
            for data, other in ((a[0], a[1]), (a[1], a[0])):
                mask = self.constants(other)
                v = self.view(data)
                if isinstance(v, View) and mask is not None:
                    src = shape(v.source)
                    return _masked(v, mask, (src[2], src[3]))
        return None

    def shifts(self) -> list[tuple[fx.Node, View, list[tuple[int, int]]]]:
        """``(node, view, offsets)`` for each node that is a shift and is not only read by a larger one."""
        found = {}
        for node in self.gm.graph.nodes:
            offsets = _shift_offsets(self.view(node))
            if offsets is not None and any(offsets):
                found[node] = offsets
        return [(n, self.view(n), off) for n, off in found.items()
                if not n.users or not all(u in found for u in n.users)]


def _shift_offsets(view: Any) -> list[tuple[int, int]] | None:
    if not isinstance(view, View):
        return None
    src = shape(view.source)
    if src is None or len(view.channels) != src[1]:
        return None
    offsets = []
    for c, (ch, ay, ax) in enumerate(view.channels):
        if ch != c:
            return None
        for a, n_src in ((ay, src[2]), (ax, src[3])):
            n, off, lo, hi, wrapped = a
            exp_lo, exp_hi = min(max(-off, 0), n), min(max(n_src - off, 0), n)
            if wrapped or n != n_src or (hi <= lo) != (exp_hi <= exp_lo) or (hi > lo and (lo, hi) != (exp_lo, exp_hi)):
                return None
        offsets.append((ay[1], ax[1]))
    return offsets
