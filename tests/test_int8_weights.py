"""Per-tensor int8 weights for the grouped convs (issue 22, size): which layers, the files' own
quantization parameters (ONNX DequantizeLinear scales, TFLite tensor scales), smaller files, and
bad values refused in one line. Untrained SSC-Net-1-9, 4 calibration images."""

from __future__ import annotations

import onnx
import pytest
from onnx import numpy_helper
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.export import (ExecutorchOptions, OnnxOptions, QuantOptions, TfliteOptions, VerifyOptions,
                               export_model, resolve_targets)
from ssc_deploy.export.quantize.layers import check_weights_mode, per_tensor_layers
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.models import create_model


def _export(out, targets: str, weights: str | None, strip_names: bool = False):
    strict = {"onnx": OnnxOptions(strict=True), "tflite": TfliteOptions(strict=True, strip_names=strip_names),
              "executorch": ExecutorchOptions(strict=True)}
    results = export_model(None, model_name="ssc-net-1-9", targets=[strict[t] for t in resolve_targets(targets)],
                           out_dir=out, precisions="int8", quant=QuantOptions(int8_weights=weights, calib=4),
                           verify=VerifyOptions(n_verify=4), progress=False, force=True)
    return {r.target: r for r in results}


def test_per_tensor_grouped_selects_the_grouped_convs_only():
    net = deployment_rewrite(create_model("ssc-net-1-9", num_classes=10, in_size=32).eval(), "dwconv")
    grouped = {n for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1}
    chosen = per_tensor_layers(net, "per-tensor-grouped", keep_float=["stage1.0.conv2.0"])
    assert set(chosen) == grouped - {"stage1.0.conv2.0"} and "stage1.0.conv1.0" not in chosen and "fc" not in chosen
    assert per_tensor_layers(net, "per-channel") == [] and "fc" in per_tensor_layers(net, "per-tensor")


def _weight_scales(path) -> dict[int, list[int]]:
    """Conv group -> the scale sizes of its weights' DequantizeLinear nodes in an int8 QDQ .onnx."""
    model = onnx.load(str(path))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    dq = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits}
    sizes: dict[int, list[int]] = {}
    for node in model.graph.node:
        if node.op_type == "Conv" and node.input[1] in dq:
            group = next((a.i for a in node.attribute if a.name == "group"), 1)
            sizes.setdefault(group, []).append(int(inits[dq[node.input[1]].input[1]].size))
    return sizes


def test_onnx_grouped_conv_weights_get_one_scale_and_the_file_shrinks(tmp_path):
    r = _export(tmp_path, "onnx", "per-tensor-grouped")["onnx"]
    sizes = _weight_scales(r.artifact)
    assert all(s == 1 for g, ss in sizes.items() if g > 1 for s in ss) and sum(len(v) for g, v in sizes.items() if g > 1)
    assert all(s > 1 for s in sizes[1])  # dense convs stay per channel
    q = r.manifest["quantization"]
    assert q["weights"] == "int8 per-tensor for grouped convs, per-channel elsewhere (symmetric)"
    assert q["per_tensor_layers"] == 21 and q["optimized_graph"]["float_compute_ops"] == 0
    # per-channel scales of the 21 grouped convs (2835 + 1134 channels: 4 bytes scale + 1 zero point each)
    assert r.manifest["bytes"] < 0.40 * 4 * r.manifest["model"]["params"]


@pytest.mark.slow
def test_tflite_per_tensor_grouped_and_stripped_names_are_smaller_and_executorch_stays_per_channel(tmp_path):
    from ssc_deploy.export.targets.tflite.graph import compute_ops, read_graph

    base = _export(tmp_path / "pc", "tflite", None)["tflite"]
    small = _export(tmp_path / "pt", "tflite,executorch", "per-tensor-grouped", strip_names=True)
    assert small["tflite"].manifest["bytes"] < 0.75 * base.manifest["bytes"]  # measured 0.71
    assert small["tflite"].manifest["quantization"]["tensor_names"] == "stripped (input and output kept)"
    et = small["executorch"].manifest
    assert et["quantization"]["weights"] == "int8 per-channel (symmetric)" and et["quantization"]["per_tensor_layers"] == 0
    assert any(w.startswith("--int8-weights per-tensor-grouped: executorch per-tensor conv weights made the .pte larger")
               for w in et["warnings"]), et["warnings"]
    graph = read_graph(small["tflite"].artifact.read_bytes())
    sub = graph.subgraphs[0]
    for op in compute_ops(graph):
        weight = sub.tensors[int(sub.operators[op.index].inputs[1])]
        n_scales = len(weight.quantization.scale)
        assert n_scales == 1 if (op.grouped or op.kind == "DEPTHWISE_CONV_2D") else n_scales > 1, op
    io = {int(i) for i in sub.inputs} | {int(i) for i in sub.outputs}
    assert all(not t.name for i, t in enumerate(sub.tensors) if i not in io) and all(sub.tensors[i].name for i in io)


@pytest.mark.parametrize("targets, precisions, quant, message", [
    ("onnx", "int8", QuantOptions(int8_weights="per-row"), "--int8-weights: unknown mode 'per-row'"),
    ("onnx", "fp32", QuantOptions(int8_weights="per-tensor"), "--int8-weights applies to int8 exports only"),
    (TfliteOptions(strip_names=True), "fp32", None, "--strip-names applies to tflite int8 exports only"),
])
def test_bad_int8_weights_are_refused_before_any_work(tmp_path, targets, precisions, quant, message):
    with pytest.raises(SscDeployError, match=message):
        export_model(None, model_name="ssc-net-1-9", targets=targets, precisions=precisions, quant=quant,
                     out_dir=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()
    assert check_weights_mode(None) == "per-channel"
