"""ShiftResNet-B-e (Shift-Net) for CIFAR (Wu et al. 2017, "Shift: A Zero FLOP, Zero
Parameter Alternative to Spatial Convolutions").

ResNet-56 layout (see :mod:`ssc_deploy.models.resnet`) whose basic block is replaced by
the CSC module: 1x1 conv in -> e*out + BN + ReLU, a zero-filled shift with the 3x3
directions in 9 contiguous channel blocks (:func:`~ssc_deploy.models.layers.shiftnet_offsets`),
1x1 conv e*out -> out (carrying the stage's stride) + BN, add the shortcut (1x1 conv +
BN where the shape changes, else the identity), ReLU. ShiftResNet-9-e is the 56-layer
one: 0.10/0.29/0.58/0.87 M at e = 1/3/6/9 (Shift-Net's table: the same).
"""

from __future__ import annotations

import torch
from torch import nn

from .layers import Shift, conv_bn, shiftnet_offsets
from .registry import register_model
from .resnet import CifarResNet, expanded_resnet


class ShiftBlock(nn.Module):
    """Shift-Net's conv-shift-conv (CSC) residual block with expansion ``expansion``."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        mid = cout * expansion
        self.conv1 = conv_bn(cin, mid, 1)
        self.shift = Shift(shiftnet_offsets(mid))
        self.conv2 = conv_bn(mid, cout, 1, stride, relu=False)
        self.shortcut = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.shift(self.conv1(x))) + self.shortcut(x))


def shift_resnet(blocks: int, expansion: int, num_classes: int = 10, in_size: int = 32) -> CifarResNet:
    """ShiftResNet-``blocks``-``expansion`` (ShiftResNet-9-e is ShiftResNet-56)."""
    return expanded_resnet("ShiftResNet", lambda cin, cout, stride: ShiftBlock(cin, cout, stride, expansion),
                           blocks, expansion, num_classes, in_size)


@register_model(
    "shift-resnet-B-e",
    family="shift-resnet",
    description="ShiftResNet-B-e / Shift-Net (Wu et al. 2017)",
    pattern=r"shift-(?:resnet|net)-(?P<blocks>\d+)-(?P<expansion>\d+)",
    examples=("shift-resnet-9-1", "shift-resnet-9-3", "shift-resnet-9-6", "shift-resnet-9-9"),
)
def _build(blocks: str, expansion: str, num_classes: int = 10, in_size: int = 32) -> CifarResNet:
    return shift_resnet(int(blocks), int(expansion), num_classes=num_classes, in_size=in_size)
