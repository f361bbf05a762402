"""The model zoo: SSC-Net structure (paper Table 1), parameter counts against the papers,
forward shapes, the complexity counters and the `ssc-deploy models` command."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.models import create_model, list_models, model_family, registry_entries
from ssc_deploy.models.complexity import count_macs, count_params, output_shapes
from ssc_deploy.models.registry import model_summary
from ssc_deploy.models.layers import ChannelShuffle, MaskedConv2d, Shift, random_channel_mask
from ssc_deploy.models.ssc_net import C, SSCModule


def params_of(name: str, num_classes: int = 10) -> int:
    return count_params(create_model(name, num_classes=num_classes))


def rel(count: int, paper_millions: float) -> float:
    return count / (paper_millions * 1e6) - 1.0


# ---------------------------------------------------------------- SSC module (Table 1)


def test_ssc_module_follows_table_1():
    net = create_model("ssc-net-1-9")
    m = 81
    module = net.stage1[0]
    assert isinstance(module, SSCModule)
    convs = [
        ("conv1", module.conv1[0], 1),
        ("conv2", module.conv2[0], 9),
        ("ssc1", module.ssc1[1][0], 9),
        ("conv3", module.conv3[0], C),
        ("ssc2", module.ssc2[1][0], 9),
        ("conv4", module.conv4[0], C),
    ]
    for label, conv, groups in convs:
        assert conv.kernel_size == (1, 1), label
        assert conv.groups == groups, label
        assert conv.out_channels == m, label
    assert isinstance(module.ssc1[0], Shift) and isinstance(module.ssc2[0], Shift)
    assert module.ssc1[0].offsets[:9] == module.ssc1[0].offsets[9:18]  # channel p shifts by p mod 9
    assert isinstance(module.shuffle, ChannelShuffle) and module.shuffle.groups == 9
    order = [name for name, _ in module.named_children()]
    assert order[:7] == ["conv1", "conv2", "ssc1", "shuffle", "conv3", "ssc2", "conv4"]
    # every conv is followed by a BN (foldable at export), then a ReLU except the module's last
    units = [module.conv1, module.conv2, module.ssc1[1], module.conv3, module.ssc2[1], module.conv4]
    assert all(isinstance(u[1], nn.BatchNorm2d) for u in units)
    assert all(isinstance(u[2], nn.ReLU) for u in units[:-1]) and len(units[-1]) == 2
    # the stem has 16 channels, so the first module's shortcut is a 1x1 projection to 81
    assert isinstance(module.shortcut[0], nn.Conv2d) and module.shortcut[0].in_channels == 16


@pytest.mark.parametrize("groups", [9, 18])
def test_module_weights_follow_eq_7(groups):
    """A module inside a stage has M^2 + 3MC + 2M^2/C conv weights (paper Eq. 7)."""
    net = create_model(f"ssc-net-2-{groups}")
    for stage, m in zip((net.stage1, net.stage2, net.stage3), net.widths, strict=True):
        module = stage[1]
        conv_weights = sum(p.numel() for n, p in module.named_parameters() if p.dim() == 4)
        assert conv_weights == m * m + 3 * m * C + 2 * m * m // C
        assert isinstance(module.shortcut, nn.Identity)


def test_stage_widths_groups_and_resolutions():
    net = create_model("ssc-net-1-9")
    assert net.widths == (81, 162, 324)
    assert [s[0].groups for s in (net.stage1, net.stage2, net.stage3)] == [9, 18, 36]
    shapes = output_shapes(net, 32)
    assert shapes["stage1.0.conv4.0"][1:] == (81, 32, 32)
    assert shapes["stage2.0.conv4.0"][1:] == (162, 16, 16)
    assert shapes["stage3.0.conv4.0"][1:] == (324, 8, 8)
    # the stride sits on the first SSC's 1x1 conv, after the shift
    assert shapes["stage2.0.conv2.0"][2:] == (32, 32) and shapes["stage2.0.ssc1.1.0"][2:] == (16, 16)


# ---------------------------------------------------------------- parameter counts

SSC_PAPER = [
    ("ssc-net-1-9", 10, 0.19),
    ("ssc-net-3-9", 10, 0.56),
    ("ssc-net-6-9", 10, 1.15),
    ("ssc-net-9-9", 10, 1.71),
    ("ssc-net-3-18", 10, 2.1),
    ("ssc-net-4-18", 10, 2.8),
    ("ssc-net-6-9", 1000, 1.4),
    ("ssc-net-4-18", 1000, 3.5),
]


@pytest.mark.parametrize(("name", "classes", "paper"), SSC_PAPER)
def test_ssc_net_params_within_5_percent_of_paper(name, classes, paper):
    assert abs(rel(params_of(name, classes), paper)) <= 0.05


def test_ssc_net_documented_deviations():
    """SSC-Net-2-9 (0.34 M) and SSC-Net-4-9 at 1000 classes (1.0 M) are pinned, with the reason."""
    assert params_of("ssc-net-2-9") == 381_903  # +12.3 % of 0.34 M
    assert params_of("ssc-net-4-9", 1000) == 1_084_677  # +8.5 % of 1.0 M
    # Why no consistent rule meets them: B=1..2 and the 10 -> 1000-class head differ by a fixed
    # one-module-a-stage set (Eq. 7 conv weights; BN only adds to it) and a fixed head delta.
    module_set = sum(w * w + 3 * w * C + 2 * w * w // C for w in (81, 162, 324))
    assert module_set == 183_708
    # 1-9 >= 0.95*0.19 M and 2-9 <= 1.05*0.34 M would need module_set <= 176.5 k
    assert module_set > 1.05 * 340_000 - 0.95 * 190_000
    # 1-9 >= 0.95*0.19 M and 4-9@1000 <= 1.05*1.0 M would need 3*module_set <= 547.75 k
    head_delta = 990 * (324 + 1)
    assert 3 * module_set > 1.05 * 1_000_000 - head_delta - 0.95 * 190_000


BASELINES = [
    ("mobilenetv2", 2.3),
    ("igcv3-d-0.5x", 1.2),
    ("igcv3-d-0.7x", 1.7),
    ("shift-resnet-9-1", 0.10),
    ("shift-resnet-9-3", 0.29),
    ("shift-resnet-9-6", 0.58),
    ("shift-resnet-9-9", 0.87),
    ("shift-net-18-6", 1.18),
    ("shift-net-18-9", 1.76),
    ("shift-net-3-6", 0.19),
    ("resnet-9-6", 0.58),
    ("resnet-9-9", 0.85),
    ("resnet-18-9", 1.72),
    ("resnet-3-6", 0.19),
]


@pytest.mark.parametrize(("name", "paper"), BASELINES)
def test_baseline_params_within_5_percent(name, paper):
    assert abs(rel(params_of(name), paper)) <= 0.05


def test_igcv3_d_1x_documented_deviation():
    """The authors' CIFAR table says 2.4 M; their ImageNet IGCV3-D (3.5 M) is what this structure meets."""
    assert params_of("igcv3-d-1.0x") == 2_223_498  # -7.4 % of 2.4 M
    assert abs(rel(params_of("igcv3-d-1.0x", 1000), 3.5)) <= 0.05


def test_channel_sparse_matches_dense_resnet_size_while_wider():
    dense = params_of("resnet-9-9")
    for rho in ("0.5", "0.25"):
        net = create_model(f"channel-sparse-resnet-9-{rho}")
        assert abs(count_params(net) / dense - 1) <= 0.05
        stored = sum(p.numel() for p in net.parameters())
        assert stored > 1.5 * count_params(net)  # masked-out weights are not counted
        assert net.stage3[0].conv1[0].out_channels == round(64 / float(rho) ** 0.5)


# ---------------------------------------------------------------- masked conv


def test_masked_conv_keeps_round_rho_inputs_per_output_and_equals_masked_dense_conv():
    g = torch.Generator().manual_seed(1)
    mask = random_channel_mask(8, 10, 0.3, g)
    assert mask.sum(1).tolist() == [3.0] * 8
    conv = MaskedConv2d(10, 8, 3, 1, 1, bias=False, mask=mask)
    x = torch.randn(1, 10, 6, 6)
    expected = torch.nn.functional.conv2d(x, conv.weight * mask[:, :, None, None], padding=1)
    torch.testing.assert_close(conv(x), expected)
    assert "mask" in conv.state_dict()
    assert count_macs(nn.Sequential(conv), in_size=6, in_channels=10) == 6 * 6 * 8 * 3 * 9


def test_channel_sparse_masks_are_reproducible():
    a = create_model("channel-sparse-resnet-1-0.5").state_dict()
    b = create_model("channel-sparse-resnet-1-0.5").state_dict()
    masks = [k for k in a if k.endswith("mask")]
    assert masks and all(torch.equal(a[k], b[k]) for k in masks)


# ---------------------------------------------------------------- MAC counter


def test_count_macs_by_hand():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # 32*32*8 * 3*9
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=4),  # 16*16*8 * 2*9
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),  # 40
    )
    assert count_macs(net, 32) == 32 * 32 * 8 * 27 + 16 * 16 * 8 * 18 + 40
    assert count_params(net) == sum(p.numel() for p in net.parameters())


def test_macs_of_reference_nets():
    """The stack note measured ~91 M MACs for kuangliu's MobileNetV2 (which adds 1x1 shortcuts
    and a t=1 expand conv) and ~108 M for a quick SSC-Net-3-9."""
    mbv2 = count_macs(create_model("mobilenetv2"))
    assert mbv2 == 87_976_448
    kuangliu_extra = 32 * 32 * (32 * 32 + 32 * 16 + 16 * 24) + 8 * 8 * 64 * 96 + 4 * 4 * 160 * 320
    assert abs((mbv2 + kuangliu_extra) / 91e6 - 1) < 0.01
    assert abs(count_macs(create_model("ssc-net-3-9")) / 108e6 - 1) < 0.05


# ---------------------------------------------------------------- registry and shapes


def test_every_example_registered_and_builds_with_attributes():
    names = list_models()
    for expected in ("ssc-net-3-9", "mobilenetv2", "igcv3-d-0.5x", "igcv3-d-0.7x", "igcv3-d-1.0x",
                     "shift-resnet-9-6", "resnet-9-6", "channel-sparse-resnet-9-0.5"):
        assert expected in names
    assert model_family("shift-net-9-6") == "shift-resnet"
    for name in names:
        net = create_model(name, num_classes=7, in_size=32)
        assert net.model_name == name and net.num_classes == 7 and net.in_size == 32
        last = [s for s in output_shapes(net, 32).values()][-1]
        assert last == (1, 7), name


@pytest.mark.parametrize(
    "name",
    ["ssc-net-1-9", "mobilenetv2", "igcv3-d-0.5x", "resnet-9-1", "shift-resnet-9-1", "channel-sparse-resnet-1-0.5"],
)
def test_real_forward_at_32px(name):
    net = create_model(name, num_classes=10).eval()
    with torch.no_grad():
        out = net(torch.randn(1, 3, 32, 32))
    assert out.shape == (1, 10) and torch.isfinite(out).all()


def test_bad_names_and_sizes_raise_one_clear_error():
    for name, match in [("ssc-net-3-10", "G = d"), ("ssc-net-0-9", "at least 1 module"),
                        ("igcv3-d-1.5x", "multiplier"), ("channel-sparse-resnet-9-1.5", "density"),
                        ("resnet-9-0", "expansion"), ("no-such-net", "unknown model")]:
        with pytest.raises(SscDeployError, match=match):
            create_model(name)
    with pytest.raises(SscDeployError, match="num_classes"):
        create_model("mobilenetv2", num_classes=0)
    with pytest.raises(SscDeployError, match="in_size"):
        create_model("ssc-net-1-9", in_size=2)


@pytest.mark.parametrize("entry", registry_entries(), ids=lambda e: e.family)
def test_create_model_checks_size_for_every_family(entry):
    name = entry.examples[0] if entry.pattern is not None else entry.name
    with pytest.raises(SscDeployError, match="num_classes must be at least 1"):
        create_model(name, num_classes=0)
    with pytest.raises(SscDeployError, match="in_size must be at least 4"):
        create_model(name, in_size=3)


@pytest.mark.slow
def test_small_configs_export_with_torch_export_and_onnx(tmp_path):
    x = torch.randn(1, 3, 32, 32)
    for name in ["ssc-net-1-9", "shift-resnet-1-1", "resnet-1-1", "channel-sparse-resnet-1-0.5"]:
        net = create_model(name).eval()
        ep = torch.export.export(net, (x,))
        with torch.no_grad():
            torch.testing.assert_close(ep.module()(x), net(x))
    torch.onnx.export(create_model("ssc-net-1-9").eval(), (x,), str(tmp_path / "ssc.onnx"), dynamo=False)
    assert (tmp_path / "ssc.onnx").stat().st_size > 100_000


# ---------------------------------------------------------------- CLI


def test_cli_models_json(capsys):
    rc = main(["models", "--json", "ssc-net-1-9", "resnet-9-1", "--num-classes", "100"])
    assert rc == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["ssc-net-1-9", "resnet-9-1"]
    assert rows[0]["params"] == params_of("ssc-net-1-9", 100)
    assert rows[0]["macs"] == count_macs(create_model("ssc-net-1-9", 100))
    assert rows[0]["family"] == "ssc-net" and rows[1]["num_classes"] == 100


def test_cli_models_table(capsys):
    rc = main(["models", "shift-net-9-1", "--in-size", "16"])
    assert rc == 0
    out = capsys.readouterr().out
    summary = model_summary("shift-net-9-1", in_size=16)
    assert "shift-net-9-1" in out and "params (M)" in out and "16 px" in out
    assert f"{summary['params'] / 1e6:.3f}" in out and f"{summary['macs'] / 1e6:.1f}" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["models", "no-such-net"], "unknown model 'no-such-net'"),
        (["models", "ssc-net-3-10"], "G = d*9"),
        (["models", "--num-classes", "0"], "num_classes must be at least 1"),
        (["models", "--in-size", "2"], "in_size must be at least 4"),
    ],
)
def test_cli_models_bad_input_is_one_line(capsys, args, message):
    rc = main(args)
    captured = capsys.readouterr()
    assert rc != 0
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0]
    assert "Traceback" not in captured.err and captured.out == ""


@pytest.mark.slow
def test_cli_models_lists_the_whole_zoo(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list_models()
    assert all(r["params"] > 0 and r["macs"] > 0 for r in rows)
