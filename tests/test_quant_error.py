"""The per-layer int8 error table (`layer_errors`) and `ssc-deploy inspect --quant-error`, on real digits images."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ssc_deploy.cli import main
from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
from ssc_deploy.export.quantize.calibration import calibration_images
from ssc_deploy.export.quantize.layer_error import LayerError, format_worst, layer_errors
from ssc_deploy.export.quantize.layers import quantizable_layers
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.models import create_model

CORRUPT = "stage1.0.conv2.0"  # 1x1 grouped conv right after stage1.0.conv1.0's ReLU
KEEP = "stage2.0.conv1.0"


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _corrupt(net: torch.nn.Module) -> None:
    """Huge weights on an input channel that is always 0: no effect in fp32, every int8 weight scale ruined.

    Channel 0 of each of stage1.0.conv2.0's 9 groups is made dead (its producer's weights 0, bias
    -1, then ReLU); every output channel of the conv gets a 1e4 weight on it, so per-channel int8
    rounds all its real weights to 0.
    """
    producer, conv = net.get_submodule("stage1.0.conv1.0"), net.get_submodule(CORRUPT)
    per_group = conv.in_channels // conv.groups
    with torch.no_grad():
        dead = torch.arange(0, producer.out_channels, per_group)
        producer.weight[dead] = 0.0
        producer.bias[dead] = -1.0
        conv.weight[:, 0] = 1e4


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    net = deployment_rewrite(create_model("ssc-net-1-9").eval(), "dwconv")
    calib = torch.from_numpy(calibration_images("digits", 8, DEFAULT_MEAN, DEFAULT_STD, 32).images)
    clean_out = net(calib).detach()
    _corrupt(net)
    assert torch.allclose(net(calib), clean_out, atol=1e-4)  # the corruption is invisible in fp32
    return net, calib, layer_errors(net, calib[:1], calib, keep_float=[KEEP])


def test_table_has_every_layer_worst_first(setup):
    net, _, errors = setup
    assert sorted(e.name for e in errors) == sorted(quantizable_layers(net))
    own = [e.sqnr_db for e in errors]
    assert own == sorted(own)
    assert {e.kind for e in errors} >= {"conv 3x3", "dwconv 3x3", "conv 1x1 g9", "linear"}
    for e in errors:
        assert -1.0 <= e.cosine <= 1.0 + 1e-9 and not math.isnan(e.chain_sqnr_db)


def test_corrupted_layer_ranks_worst(setup):
    _, _, errors = setup
    worst, rest = errors[0], [e for e in errors[1:] if not e.float_kept]
    assert worst.name == CORRUPT and worst.sqnr_db < 10.0, worst
    assert worst.chain_sqnr_db < 10.0 and min(e.sqnr_db for e in rest) > 15.0
    assert format_worst(errors, 2).startswith(f"{CORRUPT} ({worst.sqnr_db:.1f} dB), ")


def test_keep_float_layer_is_float(setup):
    _, _, errors = setup
    (kept,) = [e for e in errors if e.name == KEEP]
    assert kept.float_kept and kept.sqnr_db == math.inf and kept.cosine == 1.0
    assert math.isfinite(kept.chain_sqnr_db)  # its input still carries the int8 layers' error
    assert errors[-1] is kept and KEEP not in format_worst(errors, len(errors))
    assert kept.as_dict()["sqnr_db"] == "inf" and json.dumps(kept.as_dict())


def test_in_place_activation_leaves_the_measure():
    """ReLU6(inplace=True) after a conv (MobileNetV2): each tap keeps the op's output, not the clamped tensor."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU6(inplace=True),
                              torch.nn.Conv2d(8, 8, 1), torch.nn.ReLU6(inplace=True), torch.nn.AdaptiveAvgPool2d(1),
                              torch.nn.Flatten(), torch.nn.Linear(8, 10)).eval()
    x = torch.randn(8, 3, 16, 16)
    errors = layer_errors(net, x[:1], x)
    assert [e.name for e in errors if e.sqnr_db < 30.0 or e.cosine < 0.999] == []


def test_format_worst():
    rows = [LayerError("a", "linear", 12.06, 0.9), LayerError("b", "conv 1x1", 14.0, 0.95)]
    assert format_worst(rows) == "a (12.1 dB), b (14.0 dB)"
    assert format_worst(rows, 1) == "a (12.1 dB)"
    assert format_worst([LayerError("a", "linear", math.inf, 1.0, float_kept=True)]) == "no int8 layers"


def test_bad_keep_float_is_one_line(setup):
    net, calib, _ = setup
    with pytest.raises(Exception, match="'nosuch' is not a conv or linear layer"):
        layer_errors(net, calib[:1], calib, keep_float=["nosuch"])


def test_cli_table(capsys):
    rc = main(["inspect", "--model", "ssc-net-1-9", "--quant-error", "--calib", "4"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "Per-layer int8 error of ssc-net-1-9 (29 layers, worst first)" in out
    for name in quantizable_layers(deployment_rewrite(create_model("ssc-net-1-9").eval(), "dwconv")):
        assert f" {name} " in out
    assert "calibrated on 4 digits train images" in out and "untrained net" in out


@pytest.mark.parametrize("args, message", [
    (["/nonexistent/ckpt.pt", "--quant-error"], "/nonexistent/ckpt.pt"),
    (["--model", "ssc-net-1-9", "--quant-error", "--keep-float", "fc,nosuch"], "--keep-float: 'nosuch'"),
    (["--model", "ssc-net-1-9", "--quant-error", "--calib", "0"], "--calib must be"),
    (["--model", "ssc-net-1-9", "--quant-error", "--lowering", "nosuch"], "nosuch"),
    (["--quant-error"], "give a CHECKPOINT or --model"),
    ([], "nothing to inspect"),
], ids=["missing-checkpoint", "unknown-keep-float", "calib-0", "unknown-lowering", "no-source", "no-artifact"])
def test_cli_bad_input_is_one_line(args, message, capsys):
    assert main(["inspect", *args]) != 0
    assert message in _one_error_line(capsys)
