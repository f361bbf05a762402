"""TFLite int8 and fp16: the fp32 .tflite of the TFLite target, then Google's AI Edge Quantizer.

int8 (:func:`export_int8`): the ``static_wi8_ai8`` recipe (int8 weights per output channel, int8
activations per tensor, min-max ranges from batch-1 calibration calls), with the graph's INPUT and
OUTPUT left unquantized so the file takes and returns float32 (one QUANTIZE in, one DEQUANTIZE out).
``keep_float`` layers stay in float: the quantizer's recipe gets NO_QUANTIZE for exactly the ops
:func:`~ssc_deploy.export.targets.tflite.graph.layer_ops` maps them to.

fp16 (:func:`export_fp16`): float casting of the compute ops' weights to fp16, float32 I/O and
arithmetic (XNNPACK turns the weights back into fp32 when it loads the file: half the bytes, the
fp32 speed).

Both check the file LiteRT will run: it loads and runs with the XNNPACK delegate, and every op sits
inside the delegate (an op left on LiteRT's builtin kernels, above all a grouped int8 CONV_2D on the
reference kernel, is an error with ``strict``, a warning otherwise).
"""

from __future__ import annotations

import re
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ssc_deploy.atomic import write_bytes_atomic
from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.export.targets.tflite.session import tflite_interpreter

from ssc_deploy.export.targets.common import TargetExport, version_of
from ssc_deploy.export.quantize.layers import check_keep_float, quantizable_layers
from ssc_deploy.export.targets.tflite.options import TfliteOptions
from ssc_deploy.export.targets.tflite.graph import ComputeOp, compute_ops, delegation, layer_ops, read_graph, strip_tensor_names

SCHEME = "static_wi8_ai8"
WEIGHTS = "int8 per-channel (symmetric)"
ACTIVATIONS = "int8 per-tensor"
SIGNATURE = "serving_default"
FP16_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")  # the compute ops SSC-Nets and the baselines become


def _fp32_export(net: nn.Module, example: torch.Tensor, work: Path, nhwc: bool) -> tuple[TargetExport, bytes]:
    from ssc_deploy.export.targets.tflite import target as tflite_target

    fp32 = work / "fp32.tflite"
    info = tflite_target.export(net, example, fp32, TfliteOptions(nhwc=nhwc))
    return info, fp32.read_bytes()


def _feed(images: Any, nhwc: bool) -> np.ndarray:
    x = np.asarray(images.detach().cpu() if isinstance(images, torch.Tensor) else images, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1) if nhwc else x)


def _input_key(data: bytes) -> str:
    from ai_edge_litert.interpreter import Interpreter

    return Interpreter(model_content=data).get_signature_list()[SIGNATURE]["inputs"][0]


def float_layers(net: nn.Module, example: torch.Tensor, data: bytes, names: Sequence[str]) -> dict[str, list[ComputeOp]]:
    """``names`` (checked layer names) -> their compute ops in the .tflite ``data``; one-line error
    for a layer the converter left no compute op of its own for."""
    ops = compute_ops(read_graph(data))
    found = layer_ops(net, ops, names, example)
    scopes = Counter(op.scope for op in ops)
    for name, mine in found.items():
        if not mine or any(scopes[op.scope] > 1 for op in mine):
            raise SscDeployError(f"--keep-float: layer '{name}' has no compute op of its own in the .tflite graph "
                                 "(the converter fused, removed or renamed it), so it cannot be kept in float")
    return found


def quantize_int8(data: bytes, calib: np.ndarray, keep: dict[str, list[ComputeOp]],
                  per_tensor: dict[str, list[ComputeOp]] | None = None) -> bytes:
    """``static_wi8_ai8`` int8 of the fp32 .tflite ``data``, float32 I/O, ``keep``'s ops left float,
    ``per_tensor``'s ops with per-tensor weights, calibrated with one call per image of ``calib``
    (already in the file's input layout)."""
    from ai_edge_quantizer import quantizer, recipe
    from ai_edge_quantizer.qtyping import QuantGranularity, TFLOperationName

    q = quantizer.Quantizer(data)
    q.load_quantization_recipe(recipe.static_wi8_ai8())
    no_quantize = quantizer.AlgorithmName.NO_QUANTIZE
    for op in (TFLOperationName.INPUT, TFLOperationName.OUTPUT):
        q.update_quantization_recipe(regex=".*", operation_name=op, algorithm_key=no_quantize)
    for ops in (per_tensor or {}).values():
        for op in ops:
            q.add_static_config(regex=f"^{re.escape(op.scope)}$", operation_name=TFLOperationName(op.kind),
                                activation_num_bits=8, weight_num_bits=8,
                                weight_granularity=QuantGranularity.TENSORWISE)
    for ops in keep.values():
        for op in ops:  # the recipe's later entries win: this exact scope stays float
            q.update_quantization_recipe(regex=f"^{re.escape(op.scope)}$", operation_name=TFLOperationName(op.kind),
                                         algorithm_key=no_quantize)
    key = _input_key(data)
    stats = q.calibrate({SIGNATURE: [{key: calib[i : i + 1]} for i in range(len(calib))]}, num_threads=1)
    return bytes(q.quantize(stats, enable_progress_report=False).quantized_model)


def quantize_fp16(data: bytes) -> bytes:
    """The fp32 .tflite ``data`` with its compute ops' weights cast to fp16 (float32 I/O and math)."""
    from ai_edge_quantizer import quantizer
    from ai_edge_quantizer.qtyping import TFLOperationName

    q = quantizer.Quantizer(data)
    for kind in FP16_OPS:
        q.add_weight_only_config(regex=".*", operation_name=TFLOperationName(kind), num_bits=16,
                                 algorithm_key=quantizer.AlgorithmName.FLOAT_CASTING)
    return bytes(q.quantize(enable_progress_report=False).quantized_model)


def check_runs(path: Path, example: np.ndarray, strict: bool, what: str) -> tuple[dict[str, Any], list[str]]:
    """Load ``path`` with XNNPACK, run ``example`` once and find the ops outside the delegate.

    Returns the delegation facts (with the grouped CONV_2D counts) and the warnings; with
    ``strict`` an op outside the delegate is a one-line error.
    """
    try:
        interp = tflite_interpreter(path)
        interp.set_tensor(interp.get_input_details()[0]["index"], example[:1])
        interp.invoke()
    except (RuntimeError, ValueError) as err:
        raise SscDeployError(f"the {what} .tflite does not run in LiteRT: {one_line(err)}") from None
    report = delegation(path)
    ops = compute_ops(read_graph(path.read_bytes()))
    grouped = [op for op in ops if op.grouped]
    outside = set(report.outside_indices)
    facts = {**report.facts(),
             "grouped_conv2d": len(grouped),
             "grouped_conv2d_outside_delegate": sum(op.index in outside for op in grouped)}
    warnings = []
    if report.outside or report.partitions != 1:
        shown = ", ".join(f"{n} {name}" for name, n in report.outside.items()) or "none"
        message = (f"the {what} .tflite is not one XNNPACK partition ({report.partitions} partitions; ops on "
                   f"LiteRT's builtin kernels: {shown}): those run on the slow reference kernels")
        if strict:
            raise SscDeployError(message)
        warnings.append(message)
    return facts, warnings


def _stripped(staged: Path, example: np.ndarray) -> Path:
    """``staged`` with its tensor names stripped, beside it; one-line error if its outputs changed."""
    out = staged.with_name("stripped.tflite")
    out.write_bytes(strip_tensor_names(staged.read_bytes()))
    before, after = (_invoke(p, example) for p in (staged, out))
    if not np.array_equal(before, after):
        raise SscDeployError("tflite int8: stripping the tensor names changed the outputs; no artifact was written")
    return out


def _invoke(path: Path, example: np.ndarray) -> np.ndarray:
    interp = tflite_interpreter(path)
    interp.set_tensor(interp.get_input_details()[0]["index"], example[:1])
    interp.invoke()
    return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()


def _commit(fp32: TargetExport, staged: Path, path: Path, quant: dict[str, Any], warnings: list[str],
            metadata: dict | None = None) -> TargetExport:
    """Write the checked ``staged`` file to ``path`` (atomically) with TFLite Metadata from the
    export's ``metadata`` facts, and describe it like the fp32 target."""
    from ssc_deploy.export.targets.tflite.target import embed_metadata, op_histogram

    app_facts, app_warnings = embed_metadata(staged, metadata, fp32.layout)
    interp = tflite_interpreter(staged, delegates=False)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    result = TargetExport(
        input_name=inp["name"], output_name=out["name"], input_shape=[int(v) for v in inp["shape"]],
        layout=fp32.layout, op_histogram=op_histogram(staged),
        exporter={**fp32.exporter, "ai-edge-quantizer": version_of("ai-edge-quantizer"), **app_facts},
        extra={"quantization": quant}, warnings=warnings + app_warnings)
    write_bytes_atomic(path, staged.read_bytes())
    return result


def _io_dtypes(path: Path) -> list[str]:
    interp = tflite_interpreter(path, delegates=False)
    return [np.dtype(d["dtype"]).name for d in (interp.get_input_details()[0], interp.get_output_details()[0])]


def export_int8(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, path: Path,
                options: TfliteOptions | None = None, *, keep_float: Sequence[str] = (),
                metadata: dict | None = None, per_tensor: Sequence[str] = ()) -> TargetExport:
    """Write the int8 ``.tflite`` of the deployment ``net`` to ``path`` (float32 input and output).

    ``calib``: (N, 3, S, S) normalised calibration images, fed one at a time (channel-last with
    ``options.nhwc``, the file's input layout then); ``keep_float``: layer names
    (:func:`~ssc_deploy.export.quantize.layers.quantizable_layers`) left in float, ``per_tensor``
    layers with per-tensor weights; ``options.strip_names``: the tensor names emptied once every
    check has run (:func:`~ssc_deploy.export.targets.tflite.graph.strip_tensor_names`; the stripped
    file must give the same outputs); ``options.strict``: an op outside XNNPACK is an error.
    ``metadata``: the export's facts, written as TFLite Metadata once the file is checked.
    """
    options = options or TfliteOptions()
    nhwc, strict, strip_names = options.nhwc, options.strict, options.strip_names
    scheme = SCHEME
    keep = check_keep_float(net, keep_float)
    with tempfile.TemporaryDirectory(prefix="ssc-tflite-int8.") as tmp:
        info, fp32 = _fp32_export(net, example, Path(tmp), nhwc)
        staged = Path(tmp) / "int8.tflite"
        per_op = layer_ops(net, compute_ops(read_graph(fp32)), check_keep_float(net, per_tensor), example)
        staged.write_bytes(quantize_int8(fp32, _feed(calib, nhwc), float_layers(net, example, fp32, keep), per_op))
        facts, warnings = check_runs(staged, _feed(example, nhwc), strict, "int8")
        ops = layer_ops(net, compute_ops(read_graph(staged.read_bytes())), quantizable_layers(net), example)
        float_left = [name for name, found in ops.items() if any(op.weight_dtype != "int8" for op in found)]
        unexpected = [name for name in float_left if name not in keep]
        if unexpected:
            message = (f"the int8 .tflite left {len(unexpected)} layer(s) in float that --keep-float did not "
                       "name: " + ", ".join(unexpected[:3]))
            if strict:
                raise SscDeployError(message)
            warnings.append(message)
        quant = {"scheme": scheme, "weights": WEIGHTS, "activations": ACTIVATIONS, "io": "float32",
                 "keep_float": keep, "quantizer": "ai-edge-quantizer", "calibration_ranges": "min-max",
                 "int8_layers": sum(bool(found) for found in ops.values()) - len(float_left),
                 "float_layers": float_left, "io_dtypes": _io_dtypes(staged), **facts}
        if strip_names:
            staged = _stripped(staged, _feed(example, nhwc))
            quant["tensor_names"] = "stripped (input and output kept)"
        return _commit(info, staged, Path(path), quant, warnings, metadata)


def export_fp16(net: nn.Module, example: torch.Tensor, path: Path, options: TfliteOptions | None = None, *,
                metadata: dict | None = None) -> TargetExport:
    """Write the fp16-weight ``.tflite`` of the deployment ``net`` to ``path`` (float32 I/O and math).

    The file must load and run in LiteRT with every op inside XNNPACK (a warning otherwise).
    ``options.nhwc``: channel-last input; ``metadata``: as for :func:`export_int8`.
    """
    nhwc = (options or TfliteOptions()).nhwc
    with tempfile.TemporaryDirectory(prefix="ssc-tflite-fp16.") as tmp:
        info, fp32 = _fp32_export(net, example, Path(tmp), nhwc)
        staged = Path(tmp) / "fp16.tflite"
        staged.write_bytes(quantize_fp16(fp32))
        facts, warnings = check_runs(staged, _feed(example, nhwc), False, "fp16")
        weights = sorted({op.weight_dtype for op in compute_ops(read_graph(staged.read_bytes()))})
        quant = {"scheme": "float_casting", "weights": "fp16", "activations": "float32", "io": "float32",
                 "keep_float": [], "quantizer": "ai-edge-quantizer", "weight_dtypes": weights,
                 "io_dtypes": _io_dtypes(staged), **facts}
        return _commit(info, staged, Path(path), quant, warnings, metadata)
