"""The fused lowerings (issue 6): exact on real images, plain ops only, exportable to all runtimes,
and ``--lowering auto`` picking a measured winner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD, eval_batch
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.lowerings import available_lowerings
from ssc_deploy.export.lowerings import conv_algebra as alg
from ssc_deploy.export.lowerings import graph_passes as gp
from ssc_deploy.export.lowerings.pad_slice import PadSliceShift, ReshapeShuffle
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.models import create_model
from ssc_deploy.models.layers import ChannelShuffle, Shift, ssc_offsets

NEW_LOWERINGS = ["shift-conv", "shift-conv-foldshuffle", "dwconv", "dwconv-foldshuffle", "dwconv-nhwc", "dwconv-aligned",
                 "pad-slice-foldshuffle"]
PLAIN_MODULES = (nn.Conv2d, nn.ReLU, nn.Linear, nn.AdaptiveAvgPool2d, nn.Identity, nn.Sequential,
                 PadSliceShift, ReshapeShuffle, gp.ChannelLastShuffle, nn.Module)


def _randomise_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BatchNorm statistics, so folding and the lowerings see real biases."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.bias.data.copy_(torch.rand(m.num_features, generator=g) * 0.4 - 0.2)
    return model.eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    x, _ = eval_batch("digits", 8, DEFAULT_MEAN, DEFAULT_STD, 32)
    return torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))


@pytest.fixture(scope="module")
def ssc_net() -> nn.Module:
    torch.manual_seed(0)
    return _randomise_bn(create_model("ssc-net-2-9"))


def test_new_lowerings_are_registered():
    names = available_lowerings()
    for name in NEW_LOWERINGS:
        assert name in names and names[name].description


@pytest.mark.parametrize("name", NEW_LOWERINGS)
def test_lowering_is_exact_on_real_images(name, ssc_net, images):
    with torch.no_grad():
        ref = ssc_net(images)
        net = deployment_rewrite(ssc_net, name)
        out = net(images)
    assert float((out - ref).abs().max()) <= 1e-5 * max(1.0, float(ref.abs().max()))
    leftovers = [type(m).__name__ for m in net.modules() if isinstance(m, (Shift, ChannelShuffle))]
    assert leftovers == []
    assert all(type(m) in PLAIN_MODULES or isinstance(m, torch.fx.GraphModule) for m in net.modules()), {type(m).__name__ for m in net.modules()}


def test_lowerings_remove_the_data_movement_they_promise(ssc_net):
    def kinds(name):
        net = deployment_rewrite(ssc_net, name)
        convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
        return net, convs

    net, convs = kinds("shift-conv")
    assert not any(isinstance(m, PadSliceShift) for m in net.modules())
    assert sum(c.kernel_size == (3, 3) and 1 < c.groups < c.in_channels for c in convs) == 12  # 2 per module
    net, convs = kinds("dwconv")
    assert sum(c.groups == c.in_channels and c.kernel_size == (3, 3) for c in convs) == 12
    net, _ = kinds("dwconv-foldshuffle")
    assert not any(isinstance(m, (ReshapeShuffle, gp.ChannelLastShuffle)) for m in net.modules())


@pytest.mark.parametrize("stride", [1, 2])
def test_shift_into_conv_equals_shift_then_conv(stride):
    torch.manual_seed(1)
    offsets = ssc_offsets(36)
    conv = nn.Conv2d(36, 36, 1, stride, groups=4, bias=True).eval()
    x = torch.randn(2, 36, 9, 9)
    with torch.no_grad():
        ref = conv(Shift(offsets)(x))
        fused = alg.shift_into_conv(offsets, conv)
        assert fused.kernel_size == (3, 3) and fused.groups == 4
        assert torch.allclose(fused(x), ref, atol=1e-6)
        # the check can fail: mirrored offsets give a different function
        wrong = alg.shift_into_conv([(-dy, -dx) for dy, dx in offsets], conv)
        assert float((wrong(x) - ref).abs().max()) > 1e-2


def test_shift_as_depthwise_equals_shift():
    x = torch.randn(1, 18, 7, 7)
    offsets = ssc_offsets(18)
    with torch.no_grad():
        assert torch.equal(alg.shift_as_depthwise(offsets)(x), Shift(offsets)(x))


def test_merge_convs_through_a_shuffle_and_regroups():
    torch.manual_seed(2)
    first = nn.Conv2d(8, 12, 3, 1, 1, groups=4).eval()
    second = nn.Conv2d(12, 6, 1, groups=3).eval()
    x = torch.randn(1, 8, 6, 6)
    perm = alg.shuffle_permutation(12, 3)
    with torch.no_grad():
        ref = second(ChannelShuffle(3)(first(x)))
        merged = alg.merge_convs(first, perm, second)
        assert torch.allclose(merged(x), ref, atol=1e-5)
        # without the shuffle the block structure survives and is found again
        plain = alg.merge_convs(first, None, nn.Conv2d(12, 8, 1, groups=4).eval())
    assert plain.groups == 4


class _LinearChain(nn.Module):
    """conv -> shuffle -> 1x1 conv (mergeable), then ReLU -> shuffle -> dense 1x1 (foldable)."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(6, 12, 1)
        self.shuffle = ChannelShuffle(3)
        self.b = nn.Conv2d(12, 12, 1, groups=1)
        self.relu = nn.ReLU()
        self.shuffle2 = ChannelShuffle(4)
        self.c = nn.Conv2d(12, 5, 3, padding=1)

    def forward(self, x):
        return self.c(self.shuffle2(self.relu(self.b(self.shuffle(self.a(x))))))


def test_graph_passes_merge_and_fold_exactly():
    torch.manual_seed(3)
    model = _LinearChain().eval()
    x = torch.randn(2, 6, 5, 5)
    with torch.no_grad():
        ref = model(x)
        gm = gp.merge_pointwise(gp.trace(model))
        convs = [m for m in gm.modules() if isinstance(m, nn.Conv2d)]
        assert len(convs) == 2
        gm = gp.fold_shuffles(gm)
        assert not any(isinstance(m, ChannelShuffle) for m in gm.modules())
        assert torch.allclose(gm(x), ref, atol=1e-5)


def test_fold_shuffles_respects_the_mac_budget():
    model = nn.Sequential(nn.Conv2d(9, 9, 1, groups=3), nn.ReLU(), ChannelShuffle(3), nn.Conv2d(9, 9, 1, groups=3))
    gm = gp.fold_shuffles(gp.trace(model.eval()), max_mac_ratio=1.0)
    assert any(isinstance(m, ChannelShuffle) for m in gm.modules())
    gm = gp.fold_shuffles(gp.trace(model.eval()), max_mac_ratio=3.0)
    assert not any(isinstance(m, ChannelShuffle) for m in gm.modules())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["dwconv", "dwconv-nhwc"])
def test_lowering_exports_and_matches_on_every_runtime(name, tmp_path, images):
    from ssc_deploy.export.targets.executorch import target as executorch_target
    from ssc_deploy.export.lowerings.selection.autotune import export_to
    from ssc_deploy.quiet import quiet_native
    from ssc_deploy.runtimes import TARGET_NAMES
    from ssc_deploy.sessions import load_runner, run_each

    torch.manual_seed(0)
    model = _randomise_bn(create_model("ssc-net-1-9", in_size=16))
    x = torch.nn.functional.interpolate(images[:2], size=16)
    with torch.no_grad():
        ref = model(x).numpy()
        net = deployment_rewrite(model, name)
    meant_for = available_lowerings()[name].runtimes or TARGET_NAMES
    for runtime in TARGET_NAMES:  # exact on every runtime, even those it is not meant for
        with quiet_native():
            path = export_to(runtime, net, x[:1], tmp_path / f"{name}-{runtime}")
            out = run_each(load_runner(runtime, path), x.numpy())
        assert np.abs(out - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), runtime
    if "executorch" not in meant_for:
        return
    ep = torch.export.export(net, (x[:1],), strict=False)
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    with quiet_native():
        edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    summary = executorch_target.delegation_summary(edge.exported_program().graph_module)
    assert summary["portable_compute_ops"] == [] and summary["not_delegated_nodes"] == 0, summary


def test_autotune_times_candidates_and_keeps_the_fastest(images):
    from ssc_deploy.export.lowerings.selection.autotune import autotune
    from ssc_deploy.quiet import quiet_native

    torch.manual_seed(0)
    model = _randomise_bn(create_model("ssc-net-1-9", in_size=16))
    x = torch.nn.functional.interpolate(images[:2], size=16).numpy()
    with quiet_native():
        result = autotune(model, "onnx", x, candidates=["pad-slice", "dwconv"], rounds=3)
    assert {c.lowering for c in result.candidates} == {"pad-slice", "dwconv"}
    assert all(c.ok and c.median_ms > 0 and c.max_abs_diff < 1e-3 for c in result.candidates)
    fastest = min(result.candidates, key=lambda c: c.median_ms)
    assert result.best == fastest.lowering
    assert result.to_dict()["best"] == result.best


def test_autotune_skips_a_failing_candidate_and_rejects_bad_input(images):
    from ssc_deploy.export.lowerings.selection.autotune import autotune
    from ssc_deploy.quiet import quiet_native

    model = create_model("ssc-net-1-9", in_size=16).eval()
    x = torch.nn.functional.interpolate(images[:1], size=16).numpy()
    with pytest.raises(SscDeployError, match="unknown runtime 'tensorrt'"):
        autotune(model, "tensorrt", x)
    with quiet_native():
        result = autotune(model, "onnx", x, candidates=["no-such-lowering", "dwconv"], rounds=2)
    assert result.best == "dwconv"
    bad = next(c for c in result.candidates if c.lowering == "no-such-lowering")
    assert not bad.ok and "unknown lowering" in bad.error


def test_cli_export_with_auto_lowering_records_the_winner(tmp_path):
    import json

    from ssc_deploy.cli import main

    rc = main(["export", "--model", "ssc-net-1-9", "--in-size", "16", "--target", "onnx", "--lowering", "auto",
               "--out", str(tmp_path), "--n-verify", "2", "--no-progress"])
    assert rc == 0
    manifest = json.loads(next(tmp_path.glob("*.json")).read_text())
    from ssc_deploy.export.lowerings.selection.autotune import candidate_lowerings

    # whichever candidate measured fastest: dwconv-nhwc is one of onnx's candidates too
    assert manifest["model"]["lowering"] in candidate_lowerings("onnx")
    assert "pad-slice-foldshuffle" not in candidate_lowerings("onnx") and manifest["parity"]


def test_cli_rejects_an_unknown_lowering_in_one_line(tmp_path, capsys):
    from ssc_deploy.cli import main

    rc = main(["export", "--model", "ssc-net-1-9", "--target", "onnx", "--lowering", "fastest-please",
               "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.startswith("error: unknown lowering 'fastest-please'") and "\n" not in err
    assert "dwconv" in err
    out = tmp_path / "out"
    assert not out.exists() or not any(out.iterdir())
