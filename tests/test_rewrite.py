"""The deployment rewrite: BN folding, training parts removed, shift/shuffle lowered - same outputs."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD, eval_batch
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export import apply_lowering, available_lowerings, deployment_rewrite, register_lowering
from ssc_deploy.export.lowerings.pad_slice import PadSliceShift, ReshapeShuffle
from ssc_deploy.models import create_model, list_models
from ssc_deploy.models import layers
from ssc_deploy.models.layers import ChannelShuffle, Shift, conv_bn, shiftnet_offsets, ssc_offsets
from support.models import randomize_bn


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    x, _ = eval_batch(None, 4, DEFAULT_MEAN, DEFAULT_STD, 32)
    return torch.from_numpy(x)


class _Toy(nn.Module):
    """Every pattern the rewrite has to handle: Sequential conv+BN, conv/BN wired in forward,
    a BN with no conv before it, Dropout, MaskedConv2d, Shift and ChannelShuffle."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = conv_bn(3, 18, 3)
        self.shift = Shift(ssc_offsets(18))
        self.pw = conv_bn(18, 18, 1, groups=2)
        self.shuffle = ChannelShuffle(2)
        self.conv = nn.Conv2d(18, 24, 1, bias=False)
        self.bn = nn.BatchNorm2d(24)
        self.pre_bn = nn.BatchNorm2d(24)
        mask = layers.random_channel_mask(24, 24, 0.5, torch.Generator().manual_seed(1))
        self.masked = layers.MaskedConv2d(24, 24, 1, mask=mask)
        self.shift2 = Shift(shiftnet_offsets(24))
        self.drop = nn.Dropout(0.5)
        self.fc = nn.Linear(24, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.shuffle(self.pw(self.shift(self.stem(x))))
        x = torch.relu(self.bn(self.conv(x)))
        x = self.masked(torch.relu(self.pre_bn(x)))
        x = self.shift2(x)
        return self.fc(self.drop(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)))


def _leftovers(net: nn.Module) -> list[str]:
    banned = (nn.BatchNorm2d, nn.Dropout, Shift, ChannelShuffle, layers.MaskedConv2d)
    return [type(m).__name__ for m in net.modules() if isinstance(m, banned)]


def test_toy_rewrite_removes_training_parts_and_keeps_outputs(images):
    model = randomize_bn(_Toy(), seed=3)
    net = deployment_rewrite(model)
    assert _leftovers(net) == []
    assert any(isinstance(m, PadSliceShift) for m in net.modules())
    assert any(type(m) is ReshapeShuffle for m in net.modules())  # the NCHW form, not ChannelLastShuffle
    with torch.no_grad():
        diff = (model(images) - net(images)).abs().max().item()
    assert diff < 1e-5
    # The original is untouched.
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 4


@pytest.mark.parametrize(
    "offsets",
    [ssc_offsets(81), ssc_offsets(20), shiftnet_offsets(40), [(0, 0)] * 4, [(2, -1)] * 3 + [(0, 2)] * 2 + [(-1, 1)]],
    ids=["ssc-81", "ssc-20", "shiftnet-40", "no-shift", "irregular-pad-2"],
)
def test_pad_slice_shift_equals_shift(offsets):
    x = torch.randn(2, len(offsets), 7, 5)
    assert torch.equal(PadSliceShift(offsets)(x), Shift(offsets)(x))


def test_reshape_shuffle_equals_channel_shuffle():
    x = torch.randn(2, 12, 3, 3)
    for g in (2, 3, 4):
        assert torch.equal(ReshapeShuffle(g)(x), ChannelShuffle(g)(x))


@pytest.mark.parametrize("name", list_models())
def test_rewrite_matches_original_on_real_images(name, images):
    model = randomize_bn(create_model(name, num_classes=10, in_size=32), seed=1)
    net = deployment_rewrite(model)
    assert _leftovers(net) == [], f"{name}: left in the deployment net"
    with torch.no_grad():
        ref, out = model(images), net(images)
    assert (ref - out).abs().max().item() < 1e-5


def test_pad_slice_graph_has_no_gather_roll_or_custom_ops():
    net = deployment_rewrite(create_model("ssc-net-1-9"))
    ep = torch.export.export(net, (torch.randn(1, 3, 32, 32),))
    ops = {str(n.target) for n in ep.graph.nodes if n.op == "call_function"}
    bad = [op for op in ops if any(k in op for k in ("index", "gather", "roll", "scatter"))]
    assert bad == []
    assert any("pad" in op for op in ops) and any("slice" in op for op in ops)


def test_lowering_registry():
    lowerings = available_lowerings()
    assert "pad-slice" in lowerings
    with pytest.raises(SscDeployError, match="unknown lowering 'nope'"):
        apply_lowering(nn.Identity(), "nope")
    with pytest.raises(ValueError, match="registered twice"):
        register_lowering("pad-slice", "again")(lambda m: m)
