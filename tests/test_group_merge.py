"""Group merge of grouped 1x1 convs (issue 22): exact on SSC-Net-1-9 and 3-9 under the int8
lowerings, the option through the int8 export with its int8 chain checks and manifest facts,
and bad values refused in one line."""

from __future__ import annotations


import pytest
import torch
from torch import nn

from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export import (ExecutorchOptions, OnnxOptions, QuantOptions, TfliteOptions, VerifyOptions,
                               export_model, resolve_targets)
from ssc_deploy.export.lowerings.group_merge import (format_spec, is_mergeable, k_for, merge_grouped_convs,
                                                      merge_groups, parse_spec)
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.models import create_model


def _randomized(name: str) -> nn.Module:
    """An untrained net whose BatchNorms have non-trivial statistics (so folded biases are not zero)."""
    torch.manual_seed(0)
    net = create_model(name, num_classes=10, in_size=32)
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)
    return net.eval()


def _grouped(net: nn.Module) -> dict[str, int]:
    return {n: m.groups for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and m.groups > 1}


def test_merge_groups_is_the_block_diagonal_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(12, 18, 1, stride=2, groups=6, bias=True).eval()
    merged = merge_groups(conv, 3)
    assert merged.groups == 2 and merged.weight.shape == (18, 6, 1, 1) and merged.stride == (2, 2)
    # output block j of merged group 0 reads only its own input block
    w = merged.weight[:, :, 0, 0]
    assert torch.equal(w[0:3, 2:6], torch.zeros(3, 4)) and torch.equal(w[0:3, 0:2], conv.weight[0:3, :, 0, 0])
    x = torch.randn(2, 12, 8, 8)
    torch.testing.assert_close(merged(x), conv(x), rtol=0, atol=1e-6)


def test_depthwise_and_non_dividing_convs_are_not_mergeable():
    assert not is_mergeable(nn.Conv2d(9, 9, 1, groups=9), 3)  # depthwise
    assert not is_mergeable(nn.Conv2d(18, 18, 3, padding=1, groups=9), 3)  # not 1x1
    assert not is_mergeable(nn.Conv2d(81, 81, 1, groups=9), 2)  # 2 does not divide 9
    assert not is_mergeable(nn.Conv2d(81, 81, 1, groups=9), 1)
    assert is_mergeable(nn.Conv2d(81, 81, 1, groups=9), 3)


@pytest.mark.parametrize("name", ["ssc-net-1-9", "ssc-net-3-9"])
@pytest.mark.parametrize("lowering", ["dwconv", "dwconv-nhwc"])  # the int8 lowerings of the runtime table
def test_merge_is_exact_on_ssc_nets(name, lowering):
    original = _randomized(name)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        ref = original(x)
    for k in (2, 3, 4):
        net = deployment_rewrite(original, lowering)
        before = _grouped(net)
        report = merge_grouped_convs(net, parse_spec(k))
        after = _grouped(net)
        expected = {n: g // k for n, g in before.items() if g % k == 0
                    and net.get_submodule(n).kernel_size == (1, 1) and g != net.get_submodule(n).in_channels}
        assert {n: b for n, (a, b) in report.merged.items()} == expected and expected, k
        assert all(after[n] == g for n, g in expected.items())
        assert all(after[n] == g for n, g in before.items() if n not in expected)  # depthwise, non-dividing
        with torch.no_grad():
            diff = (net(x) - ref).abs().max().item()
        assert diff < 1e-4, (name, lowering, k, diff)
        assert report.weights_added == sum((k - 1) * net.get_submodule(n).weight.numel() // k for n in expected)


def test_per_stage_spec_takes_the_longest_prefix():
    spec = parse_spec("3,stage2=2,stage2.0.conv3=1")
    assert spec == (("", 3), ("stage2", 2), ("stage2.0.conv3", 1))
    assert k_for("stage1.0.conv2.0", spec) == 3 and k_for("stage2.0.conv2.0", spec) == 2
    assert k_for("stage2.0.conv3.0", spec) == 1 and k_for("stage20.x", spec) == 3
    assert format_spec(spec) == "3,stage2=2,stage2.0.conv3=1" and format_spec(parse_spec(1)) == "1"
    net = deployment_rewrite(_randomized("ssc-net-1-9"), "dwconv")
    report = merge_grouped_convs(net, spec)
    assert report.merged["stage1.0.conv2.0"] == (9, 3) and report.merged["stage2.0.conv2.0"] == (18, 9)
    assert "stage2.0.conv3.0" not in report.merged and report.merged["stage3.0.conv3.0"] == (9, 3)


@pytest.mark.parametrize("value, message", [
    ("x", "'x' is not a whole number"), ("stage1=-2", "between 1 and 64"), ("stage1=2,stage1=3", "given twice"),
    (2.5, "expected K or PREFIX=K"),
])
def test_bad_group_merge_values_are_one_line(value, message):
    with pytest.raises(SscDeployError, match=message):
        parse_spec(value)


def test_group_merge_without_int8_is_refused_before_any_work(tmp_path):
    with pytest.raises(SscDeployError, match="--group-merge applies to int8 exports only"):
        export_model(None, model_name="ssc-net-1-9", targets="onnx", out_dir=tmp_path,
                     quant=QuantOptions(int8_group_merge=3), progress=False)
    assert not any(tmp_path.iterdir())


def _export(tmp_path, targets: str, merge) -> dict:
    # strict: a broken int8 chain or an op outside XNNPACK is an error
    strict = {"onnx": OnnxOptions(strict=True), "tflite": TfliteOptions(strict=True),
              "executorch": ExecutorchOptions(strict=True)}
    results = export_model(None, model_name="ssc-net-1-9", targets=[strict[t] for t in resolve_targets(targets)],
                           out_dir=tmp_path, precisions="int8", quant=QuantOptions(int8_group_merge=merge, calib=4),
                           verify=VerifyOptions(n_verify=4), progress=False, force=True)
    return {r.target: r.manifest for r in results}


def test_onnx_int8_with_group_merge_keeps_the_chain_and_records_the_merge(tmp_path):
    plain = _export(tmp_path / "k1", "onnx", None)["onnx"]
    m = _export(tmp_path / "k3", "onnx", 3)["onnx"]
    quant = m["quantization"]
    assert "group_merge" not in plain["quantization"]
    assert quant["group_merge"]["k"] == "3" and quant["group_merge"]["merged_layers"] == 15
    assert quant["group_merge"]["groups"]["stage3.0.conv2.0"] == "36->12"
    chain = quant["optimized_graph"]
    assert chain["float_compute_ops"] == 0 and chain["int8_compute_ops"] == plain["quantization"]["optimized_graph"][
        "int8_compute_ops"]
    assert m["rewrite"]["max_abs_diff"] < 1e-4 and not m["warnings"][1:], m["warnings"]
    assert m["bytes"] > plain["bytes"]  # the zeros are stored


@pytest.mark.slow
def test_tflite_and_executorch_int8_with_group_merge_stay_delegated(tmp_path):
    ms = _export(tmp_path, "tflite,executorch", "stage1=3,stage2=2,stage3=4")
    for target, m in ms.items():
        gm = m["quantization"]["group_merge"]
        assert gm["k"] == "stage1=3,stage2=2,stage3=4" and gm["groups"]["stage3.0.conv2.0"] == "36->9", target
        assert gm["groups"]["stage1.0.conv2.0"] == "9->3" and "stage2.0.conv3.0" not in gm["groups"], target
        assert gm["merged_layers"] == 11 and m["rewrite"]["max_abs_diff"] < 1e-4, target


def test_cli_group_merge_needs_int8(tmp_path, capsys):
    code = main(["export", "--model", "ssc-net-1-9", "--target", "onnx", "--out", str(tmp_path / "o"),
                 "--group-merge", "3", "--no-progress"])
    err = capsys.readouterr().err
    assert code != 0 and err.strip().splitlines() == ["error: --group-merge applies to int8 exports only "
                                                      "(add --precision int8)"]
    assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
