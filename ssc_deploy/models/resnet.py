"""ResNet-B-e for CIFAR, the dense baseline of the SSC-Net and Shift-Net papers.

ResNet-56 layout (He et al. 2016): a 3x3 conv stem with 16 channels, three stages of B
basic blocks at widths 16/32/64 (stride 2 at the first block of stages 2 and 3), global
average pooling and a linear classifier. ResNet-56 is ResNet-9-9. Basic block: 3x3 conv +
BN + ReLU, 3x3 conv + BN, add the shortcut, ReLU; the shortcut is a 1x1 conv (stride) +
BN where the shape changes (option B), else the identity.

The expansion e follows Wu et al. 2017 (Shift-Net), who compare ResNet-B-e against
ShiftResNet-B-e of the same size: the block's inner width (the first 3x3 conv's outputs)
is round(e * w / 9), so a block has as many weights as ShiftResNet-B-e's (18 w m = 2 e w^2).
Counts at 10 classes: ResNet-9-1/3/6/9 0.10/0.29/0.57/0.86 M (Shift-Net's table: 0.10/
0.29/0.58/0.86; the SSC-Net paper: ResNet-9-6 0.58, ResNet-9-9 0.85).

The SSC-Net paper's ImageNet-32 rows (ResNet-4-2/4/8 at 1.0/1.6/3.5 M) are wide ResNets
of another layout and are not modelled here.
"""

from __future__ import annotations

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError

from .layers import conv_bn
from .registry import register_model

STAGE_WIDTHS = (16, 32, 64)
STEM_CHANNELS = 16


class BasicBlock(nn.Module):
    """ResNet basic block with inner width ``mid`` (3x3 in->mid, 3x3 mid->out)."""

    def __init__(self, cin: int, cout: int, stride: int, mid: int) -> None:
        super().__init__()
        self.conv1 = conv_bn(cin, mid, 3, stride)
        self.conv2 = conv_bn(mid, cout, 3, relu=False)
        self.shortcut = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


class CifarResNet(nn.Module):
    """Stem + 3 stages of ``blocks`` blocks built by ``block(cin, cout, stride)`` + pool + linear."""

    def __init__(
        self,
        block,
        blocks: int,
        widths: tuple[int, int, int] = STAGE_WIDTHS,
        num_classes: int = 10,
        in_size: int = 32,
        stem_channels: int = STEM_CHANNELS,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.in_size = in_size
        self.blocks = blocks
        self.stem = conv_bn(3, stem_channels, 3)
        cin = stem_channels
        stages = []
        for s, w in enumerate(widths):
            layers = []
            for b in range(blocks):
                layers.append(block(cin, w, 2 if (s > 0 and b == 0) else 1))
                cin = w
            stages.append(nn.Sequential(*layers))
        self.stage1, self.stage2, self.stage3 = stages
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stage3(self.stage2(self.stage1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


def check_blocks_expansion(family: str, blocks: int, expansion: int) -> None:
    """One clear line for a block count or expansion below 1."""
    if blocks < 1:
        raise SscDeployError(f"{family} needs at least 1 block a stage, got B={blocks}")
    if expansion < 1:
        raise SscDeployError(f"{family} needs an expansion of at least 1, got e={expansion}")


def expanded_resnet(family: str, block, blocks: int, expansion: int, num_classes: int, in_size: int) -> CifarResNet:
    """The CIFAR ResNet layout with ``block(cin, cout, stride)`` as its blocks, ``blocks`` a stage,
    tagged with its ``expansion`` (checked first, one-line error naming ``family``)."""
    check_blocks_expansion(family, blocks, expansion)
    net = CifarResNet(block, blocks, num_classes=num_classes, in_size=in_size)
    net.expansion = expansion
    return net


def resnet(blocks: int, expansion: int = 9, num_classes: int = 10, in_size: int = 32) -> CifarResNet:
    """ResNet-``blocks``-``expansion``: inner width round(e*w/9); ResNet-9-9 is ResNet-56."""
    def block(cin: int, cout: int, stride: int) -> BasicBlock:
        return BasicBlock(cin, cout, stride, max(1, round(expansion * cout / 9)))

    return expanded_resnet("ResNet", block, blocks, expansion, num_classes, in_size)


@register_model(
    "resnet-B-e",
    family="resnet",
    description="ResNet-B-e, as sized against Shift-Net (Wu et al. 2017)",
    pattern=r"resnet-(?P<blocks>\d+)-(?P<expansion>\d+)",
    examples=("resnet-9-1", "resnet-9-3", "resnet-9-6", "resnet-9-9"),
)
def _build(blocks: str, expansion: str, num_classes: int = 10, in_size: int = 32) -> CifarResNet:
    return resnet(int(blocks), int(expansion), num_classes=num_classes, in_size=in_size)
