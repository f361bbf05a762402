"""Group merge: ``k`` neighbouring groups of a grouped 1x1 conv become one group (exact).

A 1x1 conv with ``g`` groups of ``cin`` inputs and ``cout`` outputs each computes the same as a
1x1 conv with ``g // k`` groups of ``k * cin`` inputs and ``k * cout`` outputs whose weight is
block-diagonal (the ``k`` original blocks on the diagonal, zeros elsewhere). The result is the
same up to float rounding (the extra terms are exact zeros); what changes is the shape the
runtimes' int8 kernels see: wider groups fill their output tiles (XNNPACK's int8 igemm has no
narrow-N fallback) and onnxruntime's QLinearConv loops over fewer groups. The price is the
stored zeros: each merged layer's weight grows ``k`` times.

Depthwise convs (one input and one output per group) are never merged: every runtime has a
dedicated kernel for them. The merge is applied to a deployment net after its lowering
(:func:`merge_grouped_convs`), for int8 files only (``int8_group_merge`` of the export).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from torch import nn

from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.lowerings.conv_algebra import conv_bias, dense_weight, make_conv

GroupMergeSpec = tuple[tuple[str, int], ...]  # (layer-name prefix, k); "" is every layer; longest prefix wins
NO_MERGE: GroupMergeSpec = ()


@dataclass(frozen=True)
class MergeReport:
    """What :func:`merge_grouped_convs` did to one net."""

    merged: dict[str, tuple[int, int]]  # layer -> (groups before, groups after)
    weights_added: int  # zeros now stored in the merged weights

    def facts(self, spec: GroupMergeSpec) -> dict:
        """The manifest's ``quantization.group_merge``: the request and what it merged."""
        return {"k": format_spec(spec), "merged_layers": len(self.merged),
                "groups": {name: f"{a}->{b}" for name, (a, b) in self.merged.items()},
                "weights_added": self.weights_added}


def is_mergeable(conv: nn.Module, k: int) -> bool:
    """A plain grouped 1x1 conv, not depthwise, whose groups ``k`` divides (and ``k > 1``)."""
    if type(conv) is not nn.Conv2d or k <= 1 or conv.groups <= 1 or conv.groups % k:
        return False
    depthwise = conv.in_channels == conv.groups and conv.out_channels == conv.groups
    return (not depthwise and conv.kernel_size == (1, 1) and conv.dilation == (1, 1)
            and not isinstance(conv.padding, str) and conv.padding_mode == "zeros")


def merge_groups(conv: nn.Conv2d, k: int) -> nn.Conv2d:
    """``conv`` with every ``k`` neighbouring groups as one block-diagonal group (``groups // k`` groups)."""
    bias = conv_bias(conv) if conv.bias is not None else None
    return make_conv(dense_weight(conv), bias, conv.stride, conv.padding, groups=conv.groups // k)


def k_for(name: str, spec: GroupMergeSpec) -> int:
    """The ``k`` of layer ``name``: the longest matching prefix (by dotted components) of ``spec``, else 1."""
    best, best_len = 1, -1
    for prefix, k in spec:
        if (prefix == "" or name == prefix or name.startswith(prefix + ".")) and len(prefix) > best_len:
            best, best_len = k, len(prefix)
    return best


def merge_grouped_convs(net: nn.Module, spec: GroupMergeSpec) -> MergeReport:
    """Merge the groups of every mergeable conv of ``net`` by its ``k`` (:func:`k_for`), in place.

    Layers keep their names (``--keep-float`` and the per-layer error table still find them);
    a layer whose groups its ``k`` does not divide is left as it is.
    """
    merged: dict[str, tuple[int, int]] = {}
    added = 0
    for name, conv in list(net.named_modules()):
        k = k_for(name, spec)
        if not is_mergeable(conv, k):
            continue
        new = merge_groups(conv, k)
        parent_name, _, child = name.rpartition(".")
        setattr(net.get_submodule(parent_name) if parent_name else net, child, new)
        merged[name] = (conv.groups, new.groups)
        added += new.weight.numel() - conv.weight.numel()
    return MergeReport(merged, added)


def parse_spec(value: int | str | Mapping[str, int] | GroupMergeSpec | None) -> GroupMergeSpec:
    """``value`` as a spec: ``K`` (every grouped 1x1 conv), ``"PREFIX=K,..."`` or a mapping
    (per stage or layer, e.g. ``"stage1=3,stage2=2"``); 1, 0 and None: no merge.
    One-line error for anything else."""
    if value is None:
        return NO_MERGE
    if isinstance(value, tuple):
        pairs = list(value)
    elif isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, int) and not isinstance(value, bool):
        pairs = [("", value)]
    elif isinstance(value, str):
        pairs = []
        for item in (s.strip() for s in value.split(",")):
            if item:
                prefix, eq, k = item.rpartition("=")
                pairs.append((prefix.strip() if eq else "", k.strip()))
    else:
        raise SscDeployError(f"--group-merge: expected K or PREFIX=K,..., got {value!r}")
    spec = []
    for prefix, k in pairs:
        try:
            k = int(k)
        except (TypeError, ValueError):
            raise SscDeployError(f"--group-merge: '{k}' is not a whole number (use K or PREFIX=K,...)") from None
        if not 0 <= k <= 64:
            raise SscDeployError(f"--group-merge: k must be between 1 and 64, got {k}")
        spec.append((str(prefix), max(k, 1)))
    if len({p for p, _ in spec}) != len(spec):
        raise SscDeployError("--group-merge: a layer prefix is given twice")
    return tuple(spec) if any(k > 1 for _, k in spec) else NO_MERGE


def format_spec(spec: GroupMergeSpec) -> str:
    """``spec`` as the ``--group-merge`` text that gives it (``"1"``: no merge)."""
    if not spec:
        return "1"
    return ",".join(str(k) if p == "" else f"{p}={k}" for p, k in spec)
