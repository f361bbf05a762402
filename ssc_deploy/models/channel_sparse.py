"""Channel-sparse ResNet-B-rho: channel-wise sparse convolutions after Changpinyo et al. 2017
("The Power of Sparsity in Convolutional Neural Networks"), a further sparse family.

Each 3x3 convolution of a ResNet-B-9 (ResNet-56 layout at B = 9, see
:mod:`ssc_deploy.models.resnet`) connects every output channel to a fixed random subset of
round(rho * in) input channels (:class:`~ssc_deploy.models.layers.MaskedConv2d`; the mask is
drawn from a seeded generator and saved with the weights). As in Changpinyo et al., the
sparse net is made wider to spend the saved weights: the stem and stage widths 16/32/64 are
scaled by 1/sqrt(rho), so channel-sparse-resnet-B-rho has about the parameters (counting
kept weights only) of the dense ResNet-B-9 while being 1/sqrt(rho) times wider. The 3-channel
stem conv, the 1x1 projection shortcuts and the classifier stay dense.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError

from .layers import MaskedConv2d, conv_bn, random_channel_mask
from .registry import register_model
from .resnet import STAGE_WIDTHS, STEM_CHANNELS, CifarResNet, check_blocks_expansion

MASK_SEED = 20170101


def masked_conv_bn(
    cin: int, cout: int, stride: int, density: float, generator: torch.Generator, relu: bool = True
) -> nn.Sequential:
    """3x3 channel-sparse conv (no bias) + BN (+ ReLU)."""
    mask = random_channel_mask(cout, cin, density, generator)
    layers: list[nn.Module] = [
        MaskedConv2d(cin, cout, 3, stride, 1, bias=False, mask=mask),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class SparseBasicBlock(nn.Module):
    """ResNet basic block whose two 3x3 convs are channel-sparse at ``density``."""

    def __init__(self, cin: int, cout: int, stride: int, density: float, generator: torch.Generator) -> None:
        super().__init__()
        self.conv1 = masked_conv_bn(cin, cout, stride, density, generator)
        self.conv2 = masked_conv_bn(cout, cout, 1, density, generator, relu=False)
        self.shortcut = conv_bn(cin, cout, 1, stride, relu=False) if stride != 1 or cin != cout else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv2(self.conv1(x)) + self.shortcut(x))


def channel_sparse_resnet(
    blocks: int, density: float, num_classes: int = 10, in_size: int = 32, seed: int = MASK_SEED
) -> CifarResNet:
    """Channel-sparse ResNet with ``blocks`` blocks a stage at connection density ``density``."""
    check_blocks_expansion("channel-sparse ResNet", blocks, 1)
    if not 0.0 < density <= 1.0:
        raise SscDeployError(f"channel-sparse density rho must be in (0, 1], got {density}")
    scale = 1.0 / math.sqrt(density)
    widths = tuple(int(round(w * scale)) for w in STAGE_WIDTHS)
    generator = torch.Generator().manual_seed(seed)

    def block(cin: int, cout: int, stride: int) -> SparseBasicBlock:
        return SparseBasicBlock(cin, cout, stride, density, generator)

    net = CifarResNet(
        block, blocks, widths=widths, num_classes=num_classes, in_size=in_size,  # type: ignore[arg-type]
        stem_channels=int(round(STEM_CHANNELS * scale)),
    )
    net.density = density
    return net


@register_model(
    "channel-sparse-resnet-B-rho",
    family="channel-sparse",
    description="channel-sparse ResNet, density rho (Changpinyo et al. 2017)",
    pattern=r"channel-sparse-resnet-(?P<blocks>\d+)-(?P<density>\d*\.?\d+)",
    examples=("channel-sparse-resnet-9-0.5", "channel-sparse-resnet-9-0.25"),
)
def _build(blocks: str, density: str, num_classes: int = 10, in_size: int = 32) -> CifarResNet:
    return channel_sparse_resnet(int(blocks), float(density), num_classes=num_classes, in_size=in_size)
