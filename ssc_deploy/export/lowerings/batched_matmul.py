"""Grouped 1x1 convs as one batched MatMul (exact; issue 22).

A 1x1, stride-1 conv with ``G`` groups of ``ci`` inputs and ``co`` outputs on a batch-1
``[1, G*ci, H, W]`` tensor is ``reshape -> [G, ci, H*W]``, one MatMul with the ``[G, co, ci]``
weight, ``+ bias [G, co, 1]``, ``reshape -> [1, G*co, H, W]``. The wide dimension of each
group's product becomes the spatial one (as in onnxruntime's fp32 MlasConv), where the int8
grouped-conv kernels see N = ``co`` (9 in SSC-Nets): onnxruntime's QLinearConv loops over the
groups with one tiny GEMM each. The exported graph keeps batch 1, as every export does.

Registered lowerings: ``dwconv-bmm`` and ``dwconv-nhwc-bmm`` (the ``dwconv`` / ``dwconv-nhwc``
lowerings, then every grouped, non-depthwise 1x1 conv as a batched MatMul), meant as int8
candidates (the runtime table's ``int8_candidates``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

from ssc_deploy.export.lowerings.conv_algebra import conv_bias
from ssc_deploy.export.lowerings.fused import pipeline
from ssc_deploy.export.lowerings.registry import register_lowering
from ssc_deploy.runtimes import meant_for


class GroupedPointwiseMatMul(nn.Module):
    """A grouped 1x1 conv (and the ReLU after it, ``relu``) written as
    ``reshape -> MatMul -> + bias [-> ReLU] -> reshape`` (batch 1).

    The ReLU sits before the last reshape so that onnxruntime's QDQ passes see
    ``MatMul -> Add -> Relu -> Q``, then a Reshape between equal quantization parameters (dropped).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, relu: bool = False) -> None:
        super().__init__()
        self.groups, self.cout_g, self.cin_g = weight.shape
        self.relu = relu
        self.weight = nn.Parameter(weight.detach().clone(), requires_grad=False)  # [G, co, ci]
        self.bias = nn.Parameter(bias.detach().reshape(self.groups, self.cout_g, 1).clone(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if n != 1:  # the parity checks' batches; exports trace batch 1 and get the 3-D form
            return torch.cat([self(x[i:i + 1]) for i in range(n)])
        y = torch.matmul(self.weight, x.reshape(self.groups, self.cin_g, h * w)) + self.bias
        if self.relu:
            y = torch.relu(y)
        return y.reshape(1, self.groups * self.cout_g, h, w)


def is_batchable(conv: nn.Module) -> bool:
    """A plain grouped 1x1, stride-1, unpadded conv that is not depthwise."""
    if type(conv) is not nn.Conv2d or conv.groups <= 1:
        return False
    depthwise = conv.in_channels == conv.groups and conv.out_channels == conv.groups
    return (not depthwise and conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.dilation == (1, 1)
            and conv.padding in ((0, 0), "valid") and conv.padding_mode == "zeros")


def as_matmul(conv: nn.Conv2d, relu: bool = False) -> GroupedPointwiseMatMul:
    """``conv`` (:func:`is_batchable`), then ReLU if ``relu``, as a :class:`GroupedPointwiseMatMul`."""
    g = conv.groups
    w = conv.weight.detach().reshape(g, conv.out_channels // g, conv.in_channels // g)
    return GroupedPointwiseMatMul(w, conv_bias(conv), relu)


def _is_relu(gm: fx.GraphModule, node: fx.Node) -> bool:
    if node.op == "call_module":
        return type(gm.get_submodule(node.target)) is nn.ReLU
    return node.op in ("call_function", "call_method") and node.target in (torch.relu, F.relu, "relu")


def convs_to_matmul(gm: fx.GraphModule) -> list[str]:
    """Replace every :func:`is_batchable` conv of ``gm`` by its batched MatMul, in place (module names kept),
    with the ReLU that is its only user folded in; returns the names replaced."""
    done = []
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not is_batchable(gm.get_submodule(node.target)):
            continue
        users = list(node.users)
        relu = len(users) == 1 and _is_relu(gm, users[0]) and not users[0].kwargs.get("inplace", False)
        parent_name, _, child = node.target.rpartition(".")
        parent = gm.get_submodule(parent_name) if parent_name else gm
        setattr(parent, child, as_matmul(gm.get_submodule(node.target), relu))
        if relu:
            users[0].replace_all_uses_with(node)
            gm.graph.erase_node(users[0])
        done.append(node.target)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return done


def with_batched_matmul(shift: str, shuffle: str = "reshape"):
    """The fused ``pipeline(shift, shuffle=shuffle)`` lowering, then :func:`convs_to_matmul`."""
    base = pipeline(shift, shuffle=shuffle)

    def run(model: nn.Module) -> nn.Module:
        gm = base(model)
        convs_to_matmul(gm)
        return gm

    return run


register_lowering(
    "dwconv-bmm",
    "as dwconv, and each grouped 1x1 conv as one batched MatMul [G, co, ci] x [G, ci, H*W] (int8 candidate)",
)(with_batched_matmul("depthwise"))
register_lowering(
    "dwconv-nhwc-bmm",
    "as dwconv-nhwc, and each grouped 1x1 conv as one batched MatMul [G, co, ci] x [G, ci, H*W] (int8 candidate)",
    runtimes=meant_for("dwconv-nhwc-bmm"),
)(with_batched_matmul("depthwise", shuffle="channel-last"))
register_lowering(
    "pad-slice-bmm",
    "pad + slices per direction, and each grouped 1x1 conv as one batched MatMul (int8 candidate: all NCHW)",
    runtimes=meant_for("pad-slice-bmm"),
)(with_batched_matmul("pad-slice"))
