"""MobileNetV2 for CIFAR (Sandler et al. 2018), the main net SSC-Nets are judged against.

The CIFAR variant used by the SSC-Net and IGCV3 papers' comparisons: the ImageNet network
with a stride-1 stem and stride 1 in the 24-channel stage, so a 32 px input reaches the
head at 4 x 4. Blocks (t expansion, c channels, n blocks, s stride of the first)::

    3x3 conv 32, stride 1
    (1, 16, 1, 1) (6, 24, 2, 1) (6, 32, 3, 2) (6, 64, 4, 2) (6, 96, 3, 1) (6, 160, 3, 2) (6, 320, 1, 1)
    1x1 conv 1280, global average pool, linear

Inverted residual block: 1x1 expand + BN + ReLU6 (left out when t = 1), 3x3 depthwise +
BN + ReLU6, 1x1 linear projection + BN; identity shortcut only when stride is 1 and the
width is unchanged, as in the paper. 2.24 M parameters and 88.0 M MACs at 10 classes, 32 px.
(The widely copied kuangliu/pytorch-cifar version keeps a 1x1 expand conv at t = 1 and adds
1x1 projection shortcuts in four blocks: 2.30 M parameters, 91.2 M MACs; the paper's
block has neither.)
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import nn

from .layers import conv_bn
from .registry import register_model

# (expansion t, output channels c, blocks n, stride s of the first block)
CIFAR_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def conv_bn_relu6(cin: int, cout: int, kernel_size: int = 1, stride: int = 1, groups: int = 1) -> nn.Sequential:
    """Conv (no bias) + BN + ReLU6, the MobileNet unit."""
    return nn.Sequential(*conv_bn(cin, cout, kernel_size, stride, groups, relu=False), nn.ReLU6(inplace=True))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: expand 1x1, depthwise 3x3, linear 1x1, identity when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_relu6(cin, hidden, 1))
        layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden), conv_bn(hidden, cout, 1, relu=False)]
        self.conv = nn.Sequential(*layers)
        self.use_residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv(x)
        return x + out if self.use_residual else out


BlockFactory = Callable[[int, int, int, int], nn.Module]


class InvertedResidualNet(nn.Module):
    """Stem, stages of inverted-residual-style blocks, 1x1 head conv, pool, linear.

    Shared by MobileNetV2 and IGCV3, which differ only in the block and the stage depths.
    """

    def __init__(
        self,
        block: BlockFactory,
        settings: Sequence[tuple[int, int, int, int]],
        num_classes: int = 10,
        in_size: int = 32,
        stem_channels: int = STEM_CHANNELS,
        last_channels: int = LAST_CHANNELS,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_size = in_size
        layers: list[nn.Module] = [conv_bn_relu6(3, stem_channels, 3, 1)]
        cin = stem_channels
        for t, c, n, s in settings:
            for i in range(n):
                layers.append(block(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(conv_bn_relu6(cin, last_channels, 1))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(last_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


def mobilenetv2(num_classes: int = 10, in_size: int = 32) -> InvertedResidualNet:
    """MobileNetV2 for CIFAR-sized inputs (stride-1 stem and 24-channel stage)."""
    return InvertedResidualNet(InvertedResidual, CIFAR_SETTINGS, num_classes=num_classes, in_size=in_size)


@register_model(
    "mobilenetv2",
    family="mobilenetv2",
    description="MobileNetV2 for CIFAR (Sandler et al. 2018)",
)
def _build(num_classes: int = 10, in_size: int = 32) -> InvertedResidualNet:
    return mobilenetv2(num_classes=num_classes, in_size=in_size)
