"""The rewrite of a traced graph: SSC kernels -> ``Shift`` + 1x1 conv, written-out shifts -> ``Shift``,
convolutions and BatchNorms -> ``nn.Conv2d`` / ``nn.BatchNorm2d`` modules (so the deployment rewrite
folds the BNs and lowers the shifts exactly as for the zoo's nets)."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field

import torch
from torch import fx, nn

from ssc_deploy.models.layers import Shift

from ssc_deploy.export.foreign.graph import Constants, shape
from ssc_deploy.export.foreign.shifts import ShiftFinder
from ssc_deploy.export.foreign.ssc_kernel import ssc_kernel

aten = torch.ops.aten


@dataclass(frozen=True)
class ConvReport:
    """One convolution of the graph: what it is and what the rewrite made of it."""

    name: str
    weight_shape: tuple[int, ...]  # (out, in/groups, kh, kw)
    groups: int
    stride: tuple[int, int]
    zero_fraction: float  # exact zeros among its weights
    rewritten: bool  # into shift + 1x1 conv
    note: str  # "SSC kernel" or why it was left alone
    macs_before: int
    macs_after: int


@dataclass(frozen=True)
class ShiftReport:
    """A shift written as plain ops and recognised."""

    name: str
    channels: int
    directions: int
    written_as: str  # "pad + slice + concat" or "roll + mask"


@dataclass
class ForeignReport:
    """What the rewrite of one graph found."""

    convs: list[ConvReport] = field(default_factory=list)
    shifts: list[ShiftReport] = field(default_factory=list)
    batchnorms: int = 0
    untraced: str | None = None  # why the module was not traced (it is then exported as it is)

    @property
    def ssc_kernels(self) -> list[ConvReport]:
        return [c for c in self.convs if c.rewritten]

    @property
    def changed(self) -> bool:
        """True when an SSC kernel or a shift was rewritten (convs and BNs as modules alone change nothing)."""
        return bool(self.ssc_kernels or self.shifts)

    def lines(self) -> list[str]:
        """One line per finding, for the manifest's warnings and the CLI."""
        out = [f"graph rewrite skipped: {self.untraced}"] if self.untraced else []
        for c in self.convs:
            k = "x".join(str(d) for d in c.weight_shape[2:])
            if c.rewritten:
                out.append(f"conv {c.name}: SSC kernel ({k}, {c.groups} groups) rewritten as shift + 1x1 conv, "
                           f"MACs {c.macs_before:,} -> {c.macs_after:,}")
            elif c.weight_shape[2:] != (1, 1):
                out.append(f"conv {c.name}: {c.note}, left as a {k} conv")
        out += [f"shift {s.name}: {s.written_as} over {s.channels} channels ({s.directions} directions) "
                f"recognised as a shift" for s in self.shifts]
        return out

    def summary(self) -> dict:
        """The short form for a manifest: layers found and left alone (with why), shifts, conv MACs."""
        return {"ssc_kernels": [c.name for c in self.ssc_kernels],
                "left_alone": {c.name: c.note for c in self.convs if not c.rewritten and c.weight_shape[2:] != (1, 1)},
                "shifts": [s.name for s in self.shifts],
                "conv_macs_before": sum(c.macs_before for c in self.convs),
                "conv_macs_after": sum(c.macs_after for c in self.convs), "untraced": self.untraced}

    def to_dict(self) -> dict:
        """Plain data (JSON)."""
        return {"convs": [c.__dict__ | {"weight_shape": list(c.weight_shape), "stride": list(c.stride)} for c in self.convs],
                "shifts": [s.__dict__ for s in self.shifts], "batchnorms": self.batchnorms, "untraced": self.untraced}


def node_name(node: fx.Node, constants: Constants | None = None, weight: fx.Node | None = None) -> str:
    """The module path the node was traced in (else its weight's name, else the node's name)."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1][0]
        if path:
            return str(path).replace("L['self'].", "")
    fqn = constants.fqn(weight) if constants is not None and weight is not None else None
    return fqn.rsplit(".", 1)[0] if fqn else f"(node {node.name})"


def _pair(v) -> tuple[int, int]:
    v = list(v) if isinstance(v, (list, tuple)) else [v]
    return (int(v[0]), int(v[-1]))


def _conv_args(node: fx.Node):
    """``(x, weight, bias, stride, padding, dilation, groups)`` of a 2-D conv node, or None."""
    a = list(node.args) + [None] * 9
    if node.target is aten.conv2d.default:
        x, w, b = a[0], a[1], a[2]
        stride, padding, dilation, groups = a[3] or [1], a[4] or [0], a[5] or [1], a[6] or 1
    elif node.target is aten.convolution.default and not a[6] and len(shape(a[1]) or ()) == 4:
        x, w, b, stride, padding, dilation, groups = a[0], a[1], a[2], a[3], a[4], a[5], a[8]
    else:
        return None
    if isinstance(padding, str):
        return None
    return x, w, b, _pair(stride), _pair(padding), _pair(dilation), int(groups)


class _Builder:
    """Adds modules to the graph module under unique flat names."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm

    def call(self, base: str, module: nn.Module, arg: fx.Node, before: fx.Node) -> fx.Node:
        stem = "m_" + "".join(ch if ch.isalnum() else "_" for ch in base)
        name, k = stem, 1
        while hasattr(self.gm, name):
            name, k = f"{stem}_{k}", k + 1
        self.gm.add_submodule(name, module)
        with self.gm.graph.inserting_before(before):
            return self.gm.graph.call_module(name, (arg,))


def _conv_module(weight: torch.Tensor, bias: torch.Tensor | None, stride, padding, dilation, groups) -> nn.Conv2d:
    out_ch, per_group, kh, kw = weight.shape
    conv = nn.Conv2d(per_group * groups, out_ch, (kh, kw), stride, padding, dilation, groups, bias=bias is not None)
    with torch.no_grad():
        conv.weight.copy_(weight)
        if bias is not None:
            conv.bias.copy_(bias)
    return conv.eval()


def _rewrite_convs(gm: fx.GraphModule, constants: Constants, build: _Builder, report: ForeignReport) -> None:
    for node in list(gm.graph.nodes):
        args = _conv_args(node) if node.op == "call_function" else None
        if args is None:
            continue
        x, w_node, b_node, stride, padding, dilation, groups = args
        weight, bias = constants(w_node), constants(b_node) if b_node is not None else None
        name = node_name(node, constants, w_node)
        if weight is None or (b_node is not None and bias is None):
            continue  # a weight computed from the input is not a layer
        out = shape(node)
        elems = out[1] * out[2] * out[3] if out else 0
        per_group, kh, kw = (int(d) for d in weight.shape[1:])
        verdict = ssc_kernel(weight, groups, padding, dilation)
        if verdict.is_ssc:
            k = max(kh, kw)
            shifted = build.call(name + ".shift", Shift(verdict.offsets, k), x, node)
            new = build.call(name + ".conv", _conv_module(verdict.pointwise, bias, stride, 0, 1, groups), shifted, node)
        else:
            new = build.call(name, _conv_module(weight, bias, stride, padding, dilation, groups), x, node)
        new.meta["val"] = node.meta.get("val")
        node.replace_all_uses_with(new)
        report.convs.append(ConvReport(
            name=name, weight_shape=tuple(int(d) for d in weight.shape), groups=groups, stride=stride,
            zero_fraction=float((weight == 0).float().mean()), rewritten=verdict.is_ssc, note=verdict.reason,
            macs_before=elems * per_group * kh * kw, macs_after=elems * per_group * (1 if verdict.is_ssc else kh * kw)))


def _rewrite_batchnorms(gm: fx.GraphModule, constants: Constants, build: _Builder, report: ForeignReport) -> None:
    for node in list(gm.graph.nodes):
        if node.op != "call_function":
            continue
        if node.target is aten.batch_norm.default:
            x, w, b, mean, var, training, _momentum, eps = node.args[:8]
            target = node
        elif node.target is aten._native_batch_norm_legit_no_training.default:
            x, w, b, mean, var, _momentum, eps = node.args[:7]
            training = False
            users = list(node.users)
            if not users or any(u.target is not operator.getitem or u.args[1] != 0 for u in users):
                continue
            target = users[0]
        else:
            continue
        values = [constants(v) if v is not None else None for v in (w, b, mean, var)]
        if training or values[2] is None or values[3] is None or (w is not None and values[0] is None) \
                or (b is not None and values[1] is None) or len(shape(x) or ()) != 4:
            continue
        bn = nn.BatchNorm2d(values[2].numel(), eps=float(eps), affine=w is not None or b is not None).eval()
        with torch.no_grad():
            bn.running_mean.copy_(values[2])
            bn.running_var.copy_(values[3])
            if bn.affine:
                bn.weight.copy_(values[0] if values[0] is not None else torch.ones_like(values[2]))
                bn.bias.copy_(values[1] if values[1] is not None else torch.zeros_like(values[2]))
        new = build.call(node_name(node, constants, mean), bn, x, node)
        new.meta["val"] = target.meta.get("val")
        target.replace_all_uses_with(new)
        report.batchnorms += 1


def _rewrite_shifts(gm: fx.GraphModule, constants: Constants, build: _Builder, report: ForeignReport) -> None:
    finder = ShiftFinder(gm, constants)
    for node, view, offsets in finder.shifts():
        k = 2 * max(max(abs(dy), abs(dx)) for dy, dx in offsets) + 1
        rolled = any(n.target is aten.roll.default for n in _region(node, view.source))
        name = node_name(node)
        new = build.call(name + ".shift", Shift(offsets, k), view.source, node)
        new.meta["val"] = node.meta.get("val")
        node.replace_all_uses_with(new)
        report.shifts.append(ShiftReport(name, len(offsets), len(set(offsets)),
                                         "roll + mask" if rolled else "pad + slice + concat"))


def _region(node: fx.Node, source: fx.Node) -> list[fx.Node]:
    """The nodes between ``source`` and ``node``."""
    seen, todo = [], [node]
    while todo:
        n = todo.pop()
        if n is source or n in seen:
            continue
        seen.append(n)
        todo.extend(n.all_input_nodes)
    return seen


def _drop_unused_buffers(gm: fx.GraphModule) -> None:
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    for name in [b for b in gm._buffers if b not in used]:
        del gm._buffers[name]


def rewrite_graph(gm: fx.GraphModule) -> ForeignReport:
    """Rewrite ``gm`` (from :func:`~.graph.program_graph`) in place; what was found."""
    constants = Constants(gm)
    build = _Builder(gm)
    report = ForeignReport()
    _rewrite_shifts(gm, constants, build, report)
    _rewrite_convs(gm, constants, build, report)
    _rewrite_batchnorms(gm, constants, build, report)
    gm.graph.eliminate_dead_code()
    gm.graph.lint()
    _drop_unused_buffers(gm)
    gm.recompile()
    return report
