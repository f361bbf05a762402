"""The fast training forms (CNHW layout, copy-only shift, GEMM 1x1 convs, row-wise BatchNorm)
compute what the reference layer forms compute: outputs, gradients and BatchNorm buffers."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import fx

from ssc_deploy.models import create_model
from ssc_deploy.models.layers import (
    ChannelShuffle, ConvBN, Shift, conv_bn, is_cnhw, set_fast_forms, shiftnet_offsets, ssc_offsets, to_cnhw,
)

NETS = ("ssc-net-1-9", "ssc-net-2-9", "ssc-net-3-18", "shift-resnet-9-1")
SHIFTS = {
    "ssc-81": ssc_offsets(81),
    "ssc-20 (tail)": ssc_offsets(20),
    "shiftnet-40": shiftnet_offsets(40),
    "wide offsets": [(2, -3), (0, 1), (7, 0), (0, -6), (1, 1)],
}


def _pair(name: str, dtype: torch.dtype) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(0)
    fast = create_model(name, in_size=16).to(dtype)
    return fast, set_fast_forms(copy.deepcopy(fast), False)


def _run(model: torch.nn.Module, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
    model.train(train)
    out = model(x)
    grads = torch.autograd.grad(out.square().sum(), list(model.parameters()))
    return out.detach(), list(grads)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / (b.norm() + 1e-30))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", NETS)
def test_fast_forms_equal_reference_in_float64(name: str, train: bool) -> None:
    fast, ref = _pair(name, torch.float64)
    x = torch.randn(3, 3, 16, 16, dtype=torch.float64)
    for _ in range(2):  # the second step also sees the running statistics the first one updated
        out_f, grads_f = _run(fast, x, train)
        out_r, grads_r = _run(ref, x, train)
        assert _rel(out_f, out_r) < 1e-12
        assert max(_rel(a, b) for a, b in zip(grads_f, grads_r)) < 1e-10
        for (key, a), b in zip(fast.state_dict().items(), ref.state_dict().values()):
            assert torch.allclose(a.double(), b.double(), rtol=1e-12, atol=1e-14), key


@pytest.mark.parametrize("name", ["ssc-net-1-9", "ssc-net-3-18"])
def test_fast_forms_as_accurate_as_reference_in_float32(name: str) -> None:
    """float32 gradients of a BN net are ill-conditioned; the fast forms must stay as close to
    the float64 result as the reference forms are."""
    fast, ref = _pair(name, torch.float32)
    exact = copy.deepcopy(ref).double()
    x = torch.randn(4, 3, 16, 16)
    out_f, grads_f = _run(fast, x, True)
    out_r, grads_r = _run(ref, x, True)
    out_e, grads_e = _run(exact, x.double(), True)
    assert _rel(out_f.double(), out_e) < 3 * _rel(out_r.double(), out_e) + 1e-6
    err_f = max(_rel(a.double(), e) for a, e in zip(grads_f, grads_e))
    err_r = max(_rel(a.double(), e) for a, e in zip(grads_r, grads_e))
    assert err_f < 3 * err_r + 1e-6


@pytest.mark.parametrize("layout", ["nchw", "cnhw"])
@pytest.mark.parametrize("offsets", list(SHIFTS.values()), ids=list(SHIFTS))
def test_shift_fast_form_is_exact(offsets: list[tuple[int, int]], layout: str) -> None:
    shift = Shift(offsets)
    x = torch.randn(3, len(offsets), 6, 5, dtype=torch.float64)
    x = (to_cnhw(x) if layout == "cnhw" else x).requires_grad_()
    g = torch.randn(3, len(offsets), 6, 5, dtype=torch.float64)
    out = shift(x)
    (grad,) = torch.autograd.grad(out, x, g)
    shift.fast = False
    ref = shift(x)
    (ref_grad,) = torch.autograd.grad(ref, x, g)
    assert torch.equal(out, ref) and torch.equal(grad, ref_grad)
    assert is_cnhw(out) == (layout == "cnhw")


def test_channel_shuffle_keeps_cnhw_and_values() -> None:
    shuffle = ChannelShuffle(3)
    x = torch.randn(4, 12, 5, 5)
    out = shuffle(to_cnhw(x))
    assert is_cnhw(out) and not out.is_contiguous()
    assert torch.equal(out, shuffle(x))


@pytest.mark.parametrize("stride,groups", [(1, 9), (2, 9), (1, 1), (2, 3)])
def test_conv_bn_fast_form_on_cnhw(stride: int, groups: int) -> None:
    torch.manual_seed(0)
    fast = conv_bn(27, 27, 1, stride=stride, groups=groups).double().train()
    ref = set_fast_forms(copy.deepcopy(fast), False)
    x = torch.randn(4, 27, 7, 7, dtype=torch.float64)
    out = fast(to_cnhw(x))
    assert is_cnhw(out)
    torch.testing.assert_close(out, ref(x), rtol=1e-12, atol=1e-12)
    for a, b in zip(fast.state_dict().values(), ref.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=0)


def test_fast_forms_run_in_training_and_not_when_traced() -> None:
    net = create_model("ssc-net-1-9", in_size=16).train()
    seen: list[bool] = []
    net.stage1[0].conv2.register_forward_hook(lambda _m, inputs, _o: seen.append(is_cnhw(inputs[0])))
    net(torch.randn(2, 3, 16, 16))
    assert seen == [True]  # the stages ran in the CNHW layout
    traced = fx.symbolic_trace(net.stage1[0].conv2)  # a ConvBN: traced as plain conv -> BN -> ReLU
    assert [n.target for n in traced.graph.nodes if n.op == "call_module"] == ["0", "1", "2"]
    assert isinstance(net.stage1[0].conv2, ConvBN) and isinstance(net.stage1[0].conv2, torch.nn.Sequential)


def test_state_dict_keys_unchanged() -> None:
    fast, ref = _pair("ssc-net-1-9", torch.float32)
    assert list(fast.state_dict()) == list(ref.state_dict())
    assert "stage1.0.conv2.0.weight" in fast.state_dict() and "stage1.0.conv2.1.running_var" in fast.state_dict()
