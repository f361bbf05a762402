"""TFLite int8 / fp16 export (AI Edge Quantizer): float I/O, one XNNPACK partition, --keep-float by name.

An untrained SSC-Net-1-9 with the int8 lowering (dwconv-nhwc) and a few digits calibration images:
accuracy is meaningless here; the graph, its delegation and its dtypes are what is checked.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.targets.tflite import target as tflite_target
from ssc_deploy.export.targets.tflite import quantized as tflite_int8
from ssc_deploy.export.targets.tflite.options import TfliteOptions
from ssc_deploy.export.quantize.calibration import calibration_images
from ssc_deploy.export.quantize.layers import quantizable_layers
from ssc_deploy.export.targets.tflite.graph import (compute_ops, delegation, layer_ops, layers_in_run_order,
                                                    read_graph)
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.models import create_model
from ssc_deploy.export.targets.tflite.session import tflite_interpreter

pytestmark = pytest.mark.slow

KEPT = "stage1.0.ssc1.1.0"  # a grouped 1x1 conv inside the first SSC layer


@pytest.fixture(scope="module")
def subject():
    torch.manual_seed(0)
    net = deployment_rewrite(create_model("ssc-net-1-9", num_classes=10, in_size=32).eval(), "dwconv-nhwc").eval()
    calib = torch.from_numpy(calibration_images("digits", 8, [0.5] * 3, [0.25] * 3, 32).images)
    return net, calib[:1], calib


@pytest.fixture(scope="module")
def int8(subject, tmp_path_factory):
    net, example, calib = subject
    path = tmp_path_factory.mktemp("int8") / "ssc-net-1-9.int8.tflite"
    info = tflite_int8.export_int8(net, example, calib, path, TfliteOptions(nhwc=False, strict=True), keep_float=[KEPT])
    return net, example, path, info


def _layer_dtypes(net, path):
    return {name: [op.weight_dtype for op in ops]
            for name, ops in layer_ops(net, compute_ops(read_graph(path.read_bytes())), quantizable_layers(net)).items()}


def test_int8_file_has_float_io_and_runs_in_one_xnnpack_partition(int8):
    net, example, path, info = int8
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # no intermediate beside it
    interp = tflite_interpreter(path)
    assert [np.dtype(d["dtype"]) for d in (interp.get_input_details()[0], interp.get_output_details()[0])] \
        == [np.float32, np.float32]
    q = info.extra["quantization"]
    assert q["scheme"] == "static_wi8_ai8" and q["io"] == "float32" and q["keep_float"] == [KEPT]
    assert q["delegate_partitions"] == 1 and q["ops_outside_delegate"] == {}
    assert q["grouped_conv2d"] > 0 and q["grouped_conv2d_outside_delegate"] == 0
    assert info.warnings == []
    assert info.input_name == "serving_default_args_0" and info.input_shape == [1, 3, 32, 32]
    assert info.layout == "NCHW" and info.op_histogram == tflite_target.op_histogram(path)
    assert info.op_histogram["QUANTIZE"] >= 1 and info.op_histogram["DEQUANTIZE"] >= 1
    out = tflite_target.run(path, example.numpy())
    assert out.shape == (1, 10) and np.isfinite(out).all()


def test_keep_float_layer_stays_float_and_every_other_layer_is_int8(int8):
    net, _, path, info = int8
    dtypes = _layer_dtypes(net, path)
    assert dtypes[KEPT] == ["float32"]
    assert all(d == ["int8"] for name, d in dtypes.items() if name != KEPT)
    assert info.extra["quantization"]["float_layers"] == [KEPT]
    assert info.extra["quantization"]["int8_layers"] == len(dtypes) - 1


def test_layers_found_by_module_path_are_the_layers_in_run_order(int8):
    net, example, path, _ = int8  # the pairing channel-last files fall back to, checked on named ops
    ops = compute_ops(read_graph(path.read_bytes()))
    by_path = layer_ops(net, ops, quantizable_layers(net))
    assert {name: [op.index for op in found] for name, found in by_path.items()} \
        == {name: [op.index] for name, op in zip(layers_in_run_order(net, example), ops)}


def test_fp16_channel_last_weights_float_io_all_in_xnnpack(subject, tmp_path):
    net, example, _ = subject
    path = tmp_path / "ssc-net-1-9.fp16.tflite"
    info = tflite_int8.export_fp16(net, example, path, TfliteOptions(nhwc=True))
    q = info.extra["quantization"]
    assert q["weights"] == "fp16" and q["io"] == "float32" and q["weight_dtypes"] == ["float16"]
    assert q["delegate_partitions"] == 1 and q["ops_outside_delegate"] == {} and info.warnings == []
    assert info.layout == "NHWC" and info.input_shape == [1, 32, 32, 3]
    with torch.no_grad():
        ref = net(example).numpy()
    assert np.abs(tflite_target.run(path, example.numpy(), nhwc=True) - ref).max() < 0.05 * (np.abs(ref).max() + 1)
    # the channel-last wrapper drops the module paths: every layer is still found, in run order
    found = layer_ops(net, compute_ops(read_graph(path.read_bytes())), quantizable_layers(net), example)
    assert all(len(ops) == 1 and ops[0].weight_dtype == "float16" for ops in found.values())


def test_an_op_outside_xnnpack_is_an_error_with_strict_and_a_warning_without(tmp_path):
    class NineWayConcat(nn.Module):  # a pad-slice shift: XNNPACK's TFLite delegate leaves its concat out
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 9, 1)

        def forward(self, x):
            y = nn.functional.pad(self.conv(x), (1, 1, 1, 1))
            return torch.cat([y[:, i : i + 1, i // 3 : i // 3 + 8, i % 3 : i % 3 + 8] for i in range(9)], 1)

    path = tmp_path / "concat.int8.tflite"
    calib = torch.randn(4, 3, 8, 8)
    info = tflite_int8.export_int8(NineWayConcat().eval(), calib[:1], calib, path, TfliteOptions.nchw())
    assert delegation(path).outside.get("CONCATENATION") == 1
    assert info.extra["quantization"]["ops_outside_delegate"] == {"CONCATENATION": 1}
    assert len(info.warnings) == 1 and "CONCATENATION" in info.warnings[0]
    with pytest.raises(SscDeployError, match="not one XNNPACK partition"):
        tflite_int8.check_runs(path, calib[:1].numpy(), True, "int8")


def test_unknown_keep_float_name_fails_before_converting(subject, tmp_path):
    net, example, calib = subject
    with pytest.raises(SscDeployError, match="--keep-float: 'nope'"):
        tflite_int8.export_int8(net, example, calib, tmp_path / "a.tflite", keep_float=["nope"])
    assert list(tmp_path.iterdir()) == []
