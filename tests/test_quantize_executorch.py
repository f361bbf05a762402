"""ExecuTorch int8 (issue 13): PT2E + XNNPACK, the int8 chain whole (every op delegated) and the .pte
loading in ExecuTorch's runtime, for both lowerings that keep SSC-Nets int8 (dwconv, pad-slice)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("executorch.runtime")

from ssc_deploy.errors import SscDeployError  # noqa: E402
from ssc_deploy.export.targets.executorch import target as executorch_target  # noqa: E402
from ssc_deploy.export.targets.executorch import quantized as et8  # noqa: E402
from ssc_deploy.export.targets.executorch.options import ExecutorchOptions  # noqa: E402
from ssc_deploy.export.quantize.layers import quantizable_layers  # noqa: E402
from ssc_deploy.export.rewrite import deployment_rewrite  # noqa: E402
from ssc_deploy.export.verify import verification_images  # noqa: E402
from ssc_deploy.models import create_model  # noqa: E402
from ssc_deploy.models.ssc_net import C, SSCModule  # noqa: E402

MEAN, STD = [0.5, 0.5, 0.5], [0.25, 0.25, 0.25]


class OneSSCModule(nn.Module):
    """Stem, one SSC module (two groups: shifts and a shuffle), pool, classifier: SSC-Net in small."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 2 * C, 3, padding=1, bias=False), nn.BatchNorm2d(2 * C), nn.ReLU())
        self.block = SSCModule(2 * C, 2 * C, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * C, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.block(self.stem(x))), 1))


class Padded(nn.Module):
    """conv, zero pad, crop (a shift as the pad-slice lowering writes it), conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(nn.functional.pad(torch.relu(self.a(x)), (1, 1, 1, 1))[:, :, :-2, 2:])


class Flipped(nn.Module):
    """A conv, then an op XNNPACK does not take (flip), then a conv."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b = nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(torch.flip(torch.relu(self.a(x)), [3]))


def _images(n: int, size: int) -> torch.Tensor:
    images, _ = verification_images(MEAN, STD, size, n, "digits")
    return torch.from_numpy(images)


@pytest.fixture(scope="module")
def ssc19(tmp_path_factory):
    """SSC-Net-1-9 (untrained, seed 0), dwconv lowering (the int8 default), exported int8 once."""
    torch.manual_seed(0)
    net = deployment_rewrite(create_model("ssc-net-1-9").eval(), "dwconv")
    images = _images(8, 32)
    path = tmp_path_factory.mktemp("et8") / "ssc-net-1-9.int8.pte"
    info = et8.export_int8(net, images[:1], images[:8], path, ExecutorchOptions(strict=True))
    return net, images, path, info


@pytest.fixture(scope="module")
def one_module():
    """The one-SSC-module net after the pad-slice lowering (pads and slices, the hard case for int8)."""
    torch.manual_seed(0)
    net = deployment_rewrite(OneSSCModule().eval(), "pad-slice")
    return net, _images(8, 16)


def test_dwconv_ssc_net_is_int8_end_to_end(ssc19):
    net, images, path, info = ssc19
    q = info.extra["quantization"]
    assert q["not_delegated"] == {} and info.extra["delegation"]["not_delegated"] == {}
    assert q["delegated_subgraphs"] == 1 and q["loads"] is True
    assert q["dequantize_nodes"] > q["quantize_nodes"] > 20  # per-channel weights add dequantizes
    assert q["scheme"] == "s8s8" and q["io"] == "float32" and q["keep_float"] == [] and q["calibration_calls"] == 8
    assert info.op_histogram["quantized_decomposed_dequantize_per_channel_default"] == len(quantizable_layers(net))
    assert info.warnings == [] and info.layout == "NCHW" and info.input_shape == [1, 3, 32, 32]
    params = sum(p.numel() for p in net.parameters())
    assert path.stat().st_size < 0.5 * 4 * params  # int8 weights: well under half the float32 bytes


def test_dwconv_int8_logits_follow_fp32(ssc19):
    net, images, path, _ = ssc19
    with torch.no_grad():
        ref = net(images).numpy()
    out = executorch_target.run(path, images.numpy())
    assert out.shape == ref.shape
    assert np.abs(out - ref).max() <= 0.2 * np.abs(ref).max()


def test_pad_slice_int8_loads_with_pads_sharing_qparams_and_keeps_float(one_module, tmp_path):
    net, images = one_module
    layers = quantizable_layers(net)
    path = tmp_path / "one.int8.pte"
    info = et8.export_int8(net, images[:1], images, path, ExecutorchOptions(strict=True), keep_float=[layers[-1]])
    q = info.extra["quantization"]
    assert info.op_histogram.get("aten_constant_pad_nd_default", 0) > 0
    assert info.op_histogram.get("aten_slice_copy_tensor", 0) > 0
    assert q["not_delegated"] == {} and q["delegated_subgraphs"] == 1 and q["keep_float"] == [layers[-1]]
    assert info.op_histogram["quantized_decomposed_dequantize_per_channel_default"] == len(layers) - 1  # fc: float
    assert info.layout == "NCHW"  # a .pte's input is NCHW (--nhwc is TFLite's and never reaches it), as for fp32
    out = executorch_target.run(path, images.numpy())
    with torch.no_grad():
        ref = net(images).numpy()
    assert np.abs(out - ref).max() <= 0.2 * np.abs(ref).max()


def test_stock_quantizer_pad_is_refused_at_export_not_at_load(tmp_path):
    """XNNPACK's stock quantizer lets a pad's qparams differ; the .pte then fails to load. The export's
    load check turns that into the one-line error and writes nothing."""
    torch.manual_seed(0)
    net, images = Padded().eval(), torch.randn(4, 3, 8, 8)
    stock = et8.XNNPACKQuantizer().set_global(et8.get_symmetric_quantization_config(is_per_channel=True))
    program = et8.quantize(net, images[:1], images[:4], stock)
    path = tmp_path / "stock.int8.pte"
    with pytest.raises(SscDeployError, match="does not load in ExecuTorch's runtime") as err:
        et8.lower_checked(program, images[:1], path)
    assert "\n" not in str(err.value)
    assert list(tmp_path.iterdir()) == []


def test_op_outside_xnnpack_warns_or_fails_strict(tmp_path):
    torch.manual_seed(0)
    net, x = Flipped().eval(), torch.randn(4, 3, 8, 8)
    with pytest.raises(SscDeployError, match=r"leaves XNNPACK at: aten_flip_default x1.*--strict"):
        et8.export_int8(net, x[:1], x, tmp_path / "strict.pte", ExecutorchOptions(strict=True))
    assert not (tmp_path / "strict.pte").exists()
    info = et8.export_int8(net, x[:1], x, tmp_path / "lax.pte")
    assert "aten_flip_default" in info.extra["quantization"]["not_delegated"]
    assert any("aten_flip_default x1" in w for w in info.warnings)


@pytest.mark.parametrize("kwargs, message", [
    ({"keep_float": ["nope"]}, "'nope' is not a conv or linear layer"),
])
def test_bad_options_are_one_line_errors(tmp_path, kwargs, message):
    net = Flipped().eval()
    with pytest.raises(SscDeployError, match=message):
        et8.export_int8(net, torch.zeros(1, 3, 8, 8), torch.zeros(2, 3, 8, 8), tmp_path / "x.pte", **kwargs)
    with pytest.raises(SscDeployError, match="at least one calibration image"):
        et8.export_int8(net, torch.zeros(1, 3, 8, 8), torch.zeros(0, 3, 8, 8), tmp_path / "x.pte")
    assert list(tmp_path.iterdir()) == []
