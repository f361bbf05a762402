"""The SSC kernel (paper Eq. 1-5): SSC shift + grouped 1x1 conv == dense k x k conv with the sparse kernel S."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from ssc_deploy.models.layers import Shift, ssc_offsets
from ssc_deploy.models.ssc_net import SSCLayer

K = 3
C = K * K


def paper_sparse_kernel(weight_1x1: torch.Tensor, k: int = K) -> torch.Tensor:
    """The paper's S: for input channel p of a group, the 1x1 weight sits at
    (i_p, j_p) = ((p mod C) // k, (p mod C) % k) of a k x k kernel, zeros elsewhere."""
    out_ch, in_per_group = weight_1x1.shape[:2]
    c = k * k
    s = torch.zeros(out_ch, in_per_group, k, k, dtype=weight_1x1.dtype)
    for p in range(in_per_group):
        i_p, j_p = (p % c) // k, (p % c) % k
        s[:, p, i_p, j_p] = weight_1x1[:, p, 0, 0]
    return s


@pytest.mark.parametrize(
    ("channels", "groups", "stride", "size"),
    [(9, 1, 1, 6), (18, 2, 1, 5), (81, 9, 1, 8), (36, 4, 2, 7), (162, 18, 2, 8)],
)
def test_ssc_layer_equals_dense_conv_with_sparse_kernel(channels, groups, stride, size):
    torch.manual_seed(channels + stride)
    x = torch.randn(2, channels, size, size, dtype=torch.float64)
    w = torch.randn(channels, channels // groups, 1, 1, dtype=torch.float64)
    shifted = Shift(ssc_offsets(channels, K), K)(x)
    ssc = F.conv2d(shifted, w, stride=stride, groups=groups)
    dense = F.conv2d(x, paper_sparse_kernel(w), stride=stride, padding=K // 2, groups=groups)
    assert ssc.shape == dense.shape
    torch.testing.assert_close(ssc, dense, rtol=0, atol=1e-12)


def test_model_ssc_layer_is_the_paper_kernel():
    """The SSCLayer the nets use (its shift and its conv) computes the same sparse 3x3 conv."""
    torch.manual_seed(0)
    layer = SSCLayer(27, groups=3, stride=2)
    shift, conv = layer[0], layer[1][0]
    x = torch.randn(1, 27, 9, 9)
    dense = F.conv2d(x, paper_sparse_kernel(conv.weight.detach()), stride=2, padding=1, groups=3)
    torch.testing.assert_close(conv(shift(x)), dense, rtol=1e-5, atol=1e-5)


def test_each_group_of_c_channels_covers_every_kernel_position_once():
    offsets = ssc_offsets(81, K)
    for g in range(9):
        group = offsets[g * C : (g + 1) * C]
        assert sorted(group) == [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    assert offsets[4] == (0, 0) and offsets[0] == (-1, -1) and offsets[8] == (1, 1)


def test_shift_fills_borders_with_zeros():
    x = torch.ones(1, 9, 4, 4)
    y = Shift(ssc_offsets(9, K), K)(x)
    # channel 0 reads (y-1, x-1): its first row and column come from outside the map
    assert y[0, 0, 0].sum() == 0 and y[0, 0, :, 0].sum() == 0 and y[0, 0, 1:, 1:].min() == 1
    # channel 8 reads (y+1, x+1): its last row and column are zero
    assert y[0, 8, -1].sum() == 0 and y[0, 8, :, -1].sum() == 0
    assert torch.equal(y[0, 4], x[0, 4])
