"""What a .tflite graph says about its layers and its delegation.

- :func:`layer_ops`: which compute op (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED, ...) each
  layer of the deployment net became. litert-torch names tensors after the PyTorch module path,
  one ``<class>_<attribute>`` segment per level (``...Sequential_stage1/...SSCModule_0/...ConvBN_conv1/
  torch.nn.modules.conv.Conv2d_0``), fused names joined by ``;``; a layer owns the compute op whose
  output, weight or bias tensor carries its own path. Where the paths are lost (channel-last I/O),
  layers and compute ops are paired in execution order, checked by kind and filter shape.
- :func:`delegation`: which ops of the file LiteRT runs inside the XNNPACK delegate and which on
  its builtin kernels (the reference grouped CONV_2D is about 10x slower than XNNPACK's).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch
from torch import nn

from ssc_deploy.export.targets.tflite.session import tflite_interpreter

from ssc_deploy.export.quantize.layers import run_order

COMPUTE_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "TRANSPOSE_CONV", "BATCH_MATMUL")


@dataclass(frozen=True)
class ComputeOp:
    """One compute op of a .tflite graph (subgraph 0)."""

    index: int
    kind: str  # builtin op name, e.g. CONV_2D
    scope: str  # the AI Edge Quantizer's scope of the op (its output tensor names joined by ';')
    weight_dtype: str  # TFLite type of the stored weight (filter), lower case: float32, int8, float16
    weight_shape: tuple[int, ...]  # TFLite filter layout: CONV_2D (O, kh, kw, I/g), DEPTHWISE (1, kh, kw, O)
    grouped: bool  # a CONV_2D whose filter sees fewer input channels than its input has
    tensor_names: tuple[str, ...]  # output, weight and bias tensor names


def read_graph(data: bytes) -> Any:
    """The flatbuffer model of a .tflite file's bytes (the AI Edge Quantizer's reader)."""
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils

    return tfl_flatbuffer_utils.read_model(data)


def compute_ops(graph: Any) -> list[ComputeOp]:
    """The compute ops of subgraph 0 of ``graph`` (:func:`read_graph`), in graph order."""
    from ai_edge_litert.schema_py_generated import BuiltinOperator
    from ai_edge_quantizer.utils import tfl_flatbuffer_utils as fb

    op_names = {code: name for name, code in vars(BuiltinOperator).items() if not name.startswith("_")}
    sub = graph.subgraphs[0]
    kinds = [op_names.get(graph.operatorCodes[op.opcodeIndex].builtinCode, "") for op in sub.operators]
    # fp16 weights reach their op through a DEQUANTIZE (to fp32) of the stored tensor
    dequantized = {int(op.outputs[0]): int(op.inputs[0]) for op, kind in zip(sub.operators, kinds)
                   if kind == "DEQUANTIZE"}
    found = []
    for i, (op, kind) in enumerate(zip(sub.operators, kinds)):
        if kind not in COMPUTE_OPS:
            continue
        inputs = [t for t in op.inputs if t >= 0]
        weight = sub.tensors[dequantized.get(inputs[1], inputs[1])] if len(inputs) > 1 else None
        dtype = fb.TENSOR_CODE_TO_TYPE[weight.type].lower() if weight is not None else "none"
        grouped = (kind == "CONV_2D" and weight is not None
                   and int(sub.tensors[inputs[0]].shape[-1]) != int(weight.shape[-1]))
        names = tuple(fb.get_tensor_name(sub.tensors[t]) for t in list(op.outputs) + inputs[1:] if t >= 0)
        shape = tuple(int(d) for d in weight.shape) if weight is not None else ()
        found.append(ComputeOp(i, kind, fb.get_op_scope(op, sub.tensors), dtype, shape, grouped, names))
    return found


def _path_pattern(net: nn.Module, layer: str) -> re.Pattern[str]:
    root = type(net)
    segments = "/".join(r"[^/;]*_" + re.escape(attr) for attr in layer.split("."))
    # A plain module's names start with its own class; a torch.fx GraphModule's do not.
    return re.compile(f"(?:{re.escape(root.__module__ + '.' + root.__qualname__)}/)?{segments}")


def layer_ops(net: nn.Module, ops: Iterable[ComputeOp], layers: Iterable[str],
              example: torch.Tensor | None = None) -> dict[str, list[ComputeOp]]:
    """Each of ``layers`` (module names of ``net``) -> the compute ops that carry its module path.

    A layer with no op (folded away, or not lowered to a compute op) maps to an empty list. When
    some layer's path is missing from the graph (litert-torch's channel-last I/O wrapper drops
    the paths) and ``example`` is given, the ops are matched to the layers in execution order
    instead (:func:`layers_in_run_order`) if every op's kind and filter shape fit its layer.
    """
    ops, layers = list(ops), list(layers)
    found: dict[str, list[ComputeOp]] = {}
    for layer in layers:
        pattern = _path_pattern(net, layer)
        found[layer] = [op for op in ops
                        if any(pattern.fullmatch(piece) for name in op.tensor_names for piece in name.split(";"))]
    if example is not None and not all(found.values()):
        by_order = dict(zip(layers_in_run_order(net, example), ops))
        if len(by_order) == len(ops) and all(_fits(net.get_submodule(name), op) for name, op in by_order.items()):
            found = {layer: [by_order[layer]] if layer in by_order else [] for layer in layers}
    return found


def layers_in_run_order(net: nn.Module, example: torch.Tensor) -> list[str]:
    """Names of ``net``'s Conv2d and Linear layers in the order one forward pass calls them
    (empty when a layer runs twice: then no order identifies it)."""
    calls = run_order(net, example)
    return calls if len(set(calls)) == len(calls) else []


def _fits(module: nn.Module, op: ComputeOp) -> bool:
    """Whether ``op``'s filter could hold ``module``'s weight (kind and shape)."""
    w = tuple(module.weight.shape)
    if isinstance(module, nn.Linear):
        return op.kind == "FULLY_CONNECTED" and op.weight_shape == w
    if op.kind == "DEPTHWISE_CONV_2D":
        return w[1] == 1 and op.weight_shape == (1, w[2], w[3], w[0])
    return op.kind == "CONV_2D" and op.weight_shape == (w[0], w[2], w[3], w[1])


@dataclass(frozen=True)
class Delegation:
    """How LiteRT (default delegates: XNNPACK) runs a .tflite file."""

    partitions: int  # delegate kernels in the execution plan
    outside: dict[str, int]  # op name -> count of ops that run on LiteRT's builtin kernels
    outside_indices: tuple[int, ...]  # their node indices (= op indices of subgraph 0)

    def facts(self) -> dict[str, Any]:
        """The counts for a manifest."""
        return {"delegate": "XNNPACK", "delegate_partitions": self.partitions,
                "ops_outside_delegate": dict(self.outside)}


def delegation(path: Path) -> Delegation:
    """Which ops of ``path`` run inside the default XNNPACK delegate (one thread).

    The interpreter keeps the replaced nodes in its node list; the executed ones are found
    backwards from the graph outputs: a tensor a delegate kernel produces comes from that kernel
    (delegate nodes come after the original nodes), any other from its original op.
    """
    interp = tflite_interpreter(path)
    producer: dict[int, dict] = {}
    for op in interp._get_ops_details():
        for tensor in op["outputs"]:
            producer[int(tensor)] = op
    pending = [int(d["index"]) for d in interp.get_output_details()]
    seen: set[int] = set()
    executed: dict[int, dict] = {}
    while pending:
        tensor = pending.pop()
        if tensor in seen:
            continue
        seen.add(tensor)
        op = producer.get(tensor)
        if op is not None and op["index"] not in executed:
            executed[op["index"]] = op
            pending.extend(int(t) for t in op["inputs"] if int(t) >= 0)
    outside = [op for op in executed.values() if op["op_name"] != "DELEGATE"]
    return Delegation(
        partitions=sum(op["op_name"] == "DELEGATE" for op in executed.values()),
        outside=dict(Counter(op["op_name"] for op in outside).most_common()),
        outside_indices=tuple(sorted(int(op["index"]) for op in outside)),
    )


def strip_tensor_names(data: bytes) -> bytes:
    """The .tflite ``data`` with every tensor name emptied except the subgraphs' inputs and outputs
    (LiteRT runs tensors by index; the names, module paths from the converter, are a tenth of an
    int8 SSC-Net file). Signatures keep their own names."""
    from ai_edge_litert.tools import flatbuffer_utils

    model = read_graph(data)
    for sub in model.subgraphs:
        io = {int(i) for i in sub.inputs} | {int(i) for i in sub.outputs}
        for i, tensor in enumerate(sub.tensors):
            if i not in io:
                tensor.name = b""
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))
