"""ONNX int8: onnxruntime's static QDQ quantization of the fp32 ONNX export, per-channel weights.

Steps: the fp32 ``.onnx`` of the ONNX target (:func:`ssc_deploy.export.targets.onnx.target.export`),
``quant_pre_process`` (shape inference and graph cleanup), ``quantize_static`` in QDQ format with
per-channel int8 weights and per-tensor activations calibrated on batch-1 calls (MinMax), then a
check of the graph onnxruntime actually runs: after its optimizer no float Conv/Gemm/MatMul may be
left outside ``keep_float`` (a broken int8 chain runs float kernels between Quantize/Dequantize
pairs and gains nothing).

Schemes (activations x weights; ``--int8-scheme``):

- ``u8s8``: uint8 activations, int8 weights, full 8-bit range (default on x86 hosts with VNNI or
  AMX; what onnxruntime advises for them);
- ``u8s8-rr``: as ``u8s8`` with ``reduce_range`` (7-bit weights: avoids the int16 saturation of
  x86 hosts without VNNI, where it is the default: see ``options.default_scheme``);
- ``s8s8``: int8 both (default on ARM hosts; on x86 onnxruntime runs many of its convs in float).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.targets.common import TargetExport, histogram, version_of
from ssc_deploy.export.targets.onnx.options import OnnxOptions, check_scheme
from ssc_deploy.export.quantize.layers import check_keep_float, run_order

WEIGHTS = "int8 per-channel (symmetric)"
ACTIVATIONS = "int8 per-tensor"
COMPUTE_OPS = ("Conv", "Gemm", "MatMul")  # the nodes a layer of quantizable_layers becomes
# Float compute ops in onnxruntime's optimized graph (fused forms included); int8 ones are QLinear*/QGemm.
FLOAT_COMPUTE_OPS = ("Conv", "FusedConv", "Gemm", "FusedGemm", "MatMul", "FusedMatMul")


def export_int8(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, path: Path,
                options: OnnxOptions | None = None, *, keep_float: Sequence[str] = (),
                metadata: dict | None = None, per_tensor: Sequence[str] = ()) -> TargetExport:
    """Write the int8 QDQ ``.onnx`` of the deployment ``net`` to ``path`` (float32 input and output).

    ``calib``: (N, 3, S, S) normalised calibration images; ``options``: the opset and
    ``int8_scheme`` (None: this host's default); ``keep_float``: layer names
    (:func:`~ssc_deploy.export.quantize.layers.quantizable_layers`) left in float, ``per_tensor``
    layers with per-tensor weights (a tensor override of their weight initializer). A broken int8
    chain in onnxruntime's optimized graph is an error with ``options.strict``, a warning otherwise.
    """
    options = options or OnnxOptions()
    scheme, strict = options.int8_scheme, options.strict
    import onnx
    from onnxruntime.quantization import QuantFormat, quant_pre_process, quantize_static

    from ssc_deploy.export.targets.onnx import target as onnx_target

    scheme = check_scheme(scheme)
    keep = check_keep_float(net, keep_float)
    with tempfile.TemporaryDirectory(prefix="ssc-onnx-int8.") as tmp:
        work = Path(tmp)
        fp32 = work / "fp32.onnx"
        info = onnx_target.export(net, example, fp32, options, metadata=metadata)
        graph = onnx.load(str(fp32))
        excluded = layer_nodes(net, example, graph, keep)
        overrides = _per_tensor_overrides(graph, layer_nodes(net, example, graph, check_keep_float(net, per_tensor)))
        overrides.update(batched_matmul_overrides(graph))
        pre = work / "pre.onnx"
        quant_pre_process(str(fp32), str(pre))
        quantize_static(str(pre), str(work / "int8.onnx"), _Reader(info.input_name, calib),
                        quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=list(excluded.values()),
                        extra_options={"TensorQuantOverrides": overrides} if overrides else None,
                        **_scheme_types(scheme))
        model = onnx.load(str(work / "int8.onnx"))  # the quantizer keeps the fp32 file's metadata
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, str(path))
        chain = chain_check(path, work)
    warnings = []
    if chain["float_compute_ops"] > len(keep):
        problem = (f"the int8 chain is broken in onnxruntime's optimized graph: {chain['float_compute_ops']} "
                   f"float Conv/Gemm/MatMul left ({len(keep)} kept float by --keep-float)"
                   + (" (s8s8 on x86 runs these in float: use --int8-scheme u8s8)" if scheme == "s8s8" else ""))
        if strict:
            raise SscDeployError(f"onnx int8: {problem}; no artifact was written")
        warnings.append(problem)
    quantization: dict[str, Any] = {
        "scheme": scheme, "weights": WEIGHTS, "activations": ACTIVATIONS, "io": "float32", "keep_float": keep,
        "format": "QDQ", "calibration_method": "MinMax", "reduce_range": scheme == "u8s8-rr",
        "optimized_graph": chain,
    }
    exporter = {**info.exporter, "onnxruntime": version_of("onnxruntime"), "quantizer": "onnxruntime.quantization"}
    return TargetExport(input_name=info.input_name, output_name=info.output_name, input_shape=info.input_shape,
                        layout=info.layout, op_histogram=histogram(n.op_type for n in model.graph.node),
                        exporter=exporter, extra={"quantization": quantization}, warnings=warnings)


def layer_nodes(net: nn.Module, example: torch.Tensor, model, names: Sequence[str]) -> dict[str, str]:
    """The ONNX node each layer in ``names`` became in ``model`` (the fp32 export of ``net``).

    The TorchScript exporter names nodes after a shortened, de-duplicated module scope
    (``/conv4.0_2/Conv``), which cannot be mapped back reliably; so each layer is found by its
    weights instead: the node of the same op kind whose weight initializer equals the layer's,
    taken in execution order (layers with identical weights, like the one-hot shift kernels of
    the dwconv lowerings, get their nodes in the order the graph runs them).
    """
    if not names:
        return {}
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    free = [n for n in model.graph.node if n.op_type in COMPUTE_OPS and len(n.input) > 1 and n.input[1] in inits]
    weights = {n.name: numpy_helper.to_array(inits[n.input[1]]) for n in free}
    found: dict[str, str] = {}
    for layer in dict.fromkeys(run_order(net, example)):
        w = net.get_submodule(layer).weight.detach().numpy()
        match = next((n for n in free if _same_weight(w, weights[n.name], n)), None)
        if match is None:
            if layer in names:
                raise SscDeployError(f"--keep-float: layer '{layer}' has no node in the ONNX graph "
                                     "(folded away by the exporter)")
            continue
        free.remove(match)
        if layer in names:
            found[layer] = match.name
    return found


def _per_tensor_overrides(model, nodes: dict[str, str]) -> dict[str, list[dict]]:
    """onnxruntime's ``TensorQuantOverrides`` making the weights of ``nodes`` (layer -> node name) per
    tensor: an override without ``axis`` is per tensor; symmetric, as the per-channel weights are."""
    by_name = {n.name: n for n in model.graph.node}
    return {by_name[node].input[1]: [{"symmetric": True}] for node in nodes.values()}


def batched_matmul_overrides(model) -> dict[str, list[dict]]:
    """Per-tensor symmetric weights for MatMuls whose first input is a weight (the grouped 1x1 convs of the
    ``*-bmm`` lowerings): onnxruntime fuses DQ -> MatMul -> Q into QLinearMatMul only with a scalar A scale."""
    inits = {t.name for t in model.graph.initializer}
    from onnxruntime.quantization import QuantType

    return {n.input[0]: [{"quant_type": QuantType.QUInt8}] for n in model.graph.node
            if n.op_type == "MatMul" and n.input[0] in inits}


def chain_check(path: Path, work: Path) -> dict[str, int]:
    """Counts of the graph onnxruntime optimizes ``path`` into (1 thread, as the export runs it)."""
    import onnx

    from ssc_deploy.export.targets.onnx.session import OPTIMIZED_GRAPH
    from ssc_deploy.sessions import load_runner

    profile = work / "profile"
    profile.mkdir()
    load_runner("onnxruntime", path, profile_dir=profile).end_profile()
    ops = [n.op_type for n in onnx.load(str(profile / OPTIMIZED_GRAPH)).graph.node]
    return {"float_compute_ops": sum(op in FLOAT_COMPUTE_OPS for op in ops),
            "quantize_ops": ops.count("QuantizeLinear"), "dequantize_ops": ops.count("DequantizeLinear"),
            "int8_compute_ops": sum(op.startswith("QLinear") or op in ("QGemm", "ConvInteger", "MatMulInteger")
                                    for op in ops)}


def _same_weight(w: np.ndarray, onnx_w: np.ndarray, node) -> bool:
    if node.op_type == "Gemm" and any(a.name == "transB" and a.i == 0 for a in node.attribute):
        onnx_w = onnx_w.T
    return w.shape == onnx_w.shape and np.allclose(w, onnx_w, rtol=1e-6, atol=1e-7)


def _scheme_types(scheme: str) -> dict[str, Any]:
    from onnxruntime.quantization import QuantType

    activations = QuantType.QInt8 if scheme == "s8s8" else QuantType.QUInt8
    return {"activation_type": activations, "weight_type": QuantType.QInt8, "reduce_range": scheme == "u8s8-rr"}


class _Reader:
    """The calibration images one at a time (the exported graph's batch is 1)."""

    def __init__(self, input_name: str, calib: torch.Tensor) -> None:
        self._name = input_name
        self._images = np.ascontiguousarray(np.asarray(calib, dtype=np.float32))
        self._i = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._i >= len(self._images):
            return None
        self._i += 1
        return {self._name: self._images[self._i - 1:self._i]}

    def rewind(self) -> None:
        self._i = 0
