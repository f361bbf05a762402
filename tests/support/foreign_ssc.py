"""An SSC-Net written the way many researchers will have: masked 3x3 grouped convs, own names.

The layout follows SSC-Net-B-G (``create_model("ssc-net-B-G")`` is the reference for shapes),
but nothing here uses the zoo's layers: the SSC kernel is a 3x3 grouped conv whose weight is
multiplied in ``forward`` by a fixed one-hot mask per input channel, the channel shuffle is a
reshape / transpose, and BatchNorm follows every conv as modules named by this code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

K = 3
C = K * K


def onehot_mask(out_ch: int, per_group: int) -> torch.Tensor:
    """(out, in/groups, 3, 3): input channel i of each group keeps position ((i % 9) // 3, (i % 9) % 3)."""
    mask = torch.zeros(out_ch, per_group, K, K)
    for i in range(per_group):
        mask[:, i, (i % C) // K, (i % C) % K] = 1.0
    return mask


class OneHotConv(nn.Module):
    """A 3x3 grouped conv whose kernel keeps one tap per input channel (the mask is a buffer)."""

    def __init__(self, channels: int, groups: int, stride: int = 1) -> None:
        super().__init__()
        self.stride, self.groups = stride, groups
        self.kernel = nn.Parameter(torch.randn(channels, channels // groups, K, K) * (2.0 / C) ** 0.5)
        self.register_buffer("onehot", onehot_mask(channels, channels // groups))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel * self.onehot, None, self.stride, 1, 1, self.groups)


def unit(conv: nn.Module, channels: int, relu: bool = True) -> nn.Sequential:
    parts = [conv, nn.BatchNorm2d(channels)]
    return nn.Sequential(*parts, nn.ReLU()) if relu else nn.Sequential(*parts)


class Block(nn.Module):
    def __init__(self, cin: int, width: int, groups: int, stride: int) -> None:
        super().__init__()
        self.groups = groups
        self.reduce = unit(nn.Conv2d(cin, width, 1, bias=False), width)
        self.gpw = unit(nn.Conv2d(width, width, 1, groups=groups, bias=False), width)
        self.sparse_a = unit(OneHotConv(width, groups, stride), width)
        self.mix = unit(nn.Conv2d(width, width, 1, groups=C, bias=False), width)
        self.sparse_b = unit(OneHotConv(width, groups), width)
        self.expand = unit(nn.Conv2d(width, width, 1, groups=C, bias=False), width, relu=False)
        self.skip = (unit(nn.Conv2d(cin, width, 1, stride, bias=False), width, relu=False)
                     if stride != 1 or cin != width else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.sparse_a(self.gpw(self.reduce(x)))
        n, c, h, w = y.shape
        y = y.reshape(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
        y = self.expand(self.sparse_b(self.mix(y)))
        return F.relu(y + self.skip(x))


class ForeignSSCNet(nn.Module):
    """SSC-Net-B-G of this file's own code: 3x3 stem, 3 stages (fewer for quick tests), pooling, linear head."""

    def __init__(self, blocks: int = 3, groups: int = 9, num_classes: int = 10, stages: int = 3) -> None:
        super().__init__()
        self.head_in = unit(nn.Conv2d(3, 16, 3, padding=1, bias=False), 16)
        layers, cin = [], 16
        for s in range(stages):
            g = groups * 2**s
            for b in range(blocks):
                layers.append(Block(cin, g * C, g, 2 if s > 0 and b == 0 else 1))
                cin = g * C
        self.body = nn.Sequential(*layers)
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(F.adaptive_avg_pool2d(self.body(self.head_in(x)), 1).flatten(1))


def randomized(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics (so folding them can go wrong), eval mode."""
    from tests.support.models import randomize_bn

    return randomize_bn(model, seed)


DIRECTIONS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]


def roll_mask(channels: int, size: int, per: int) -> torch.Tensor:
    """(1, C, S, S): 1 where channel c's shift by DIRECTIONS[c // per] reads inside the map."""
    mask = torch.zeros(1, channels, size, size)
    for c in range(channels):
        dy, dx = DIRECTIONS[c // per]
        mask[0, c, max(-dy, 0) : size - max(dy, 0), max(-dx, 0) : size - max(dx, 0)] = 1.0
    return mask


class WrittenOutShifts(nn.Module):
    """Two shifts written by hand: ``torch.roll`` per direction + a border mask, then pad + slice + concat.

    ``masked=False`` leaves the rolled border wrapped (not a shift); ``mask_value`` other than 1
    scales the kept pixels (not a shift either).
    """

    def __init__(self, size: int = 16, per: int = 2, masked: bool = True, mask_value: float = 1.0) -> None:
        super().__init__()
        c = per * len(DIRECTIONS)
        self.per, self.masked = per, masked
        self.inp = nn.Conv2d(3, c, 1)
        self.mid = nn.Conv2d(c, c, 1)
        self.out = nn.Linear(c, 10)
        self.register_buffer("border", roll_mask(c, size, per) * mask_value)

    def rolled(self, x: torch.Tensor) -> torch.Tensor:
        parts = [torch.roll(x[:, k * self.per : (k + 1) * self.per], shifts=(-dy, -dx), dims=(2, 3))
                 for k, (dy, dx) in enumerate(DIRECTIONS)]
        y = torch.cat(parts, 1)
        return y * self.border if self.masked else y

    def padded(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        p = F.pad(x, (1, 1, 1, 1))
        return torch.cat([p[:, k * self.per : (k + 1) * self.per, 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                          for k, (dy, dx) in enumerate(DIRECTIONS)], 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.padded(F.relu(self.mid(self.rolled(F.relu(self.inp(x))))))
        return self.out(y.mean((2, 3)))


class PlainCNN(nn.Module):
    """No SSC kernel, no shift: dense 3x3 convs with BN."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(unit(nn.Conv2d(3, 8, 3, padding=1, bias=False), 8),
                                      unit(nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), 16))
        self.fc = nn.Linear(16, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(F.adaptive_avg_pool2d(self.features(x), 1).flatten(1))
