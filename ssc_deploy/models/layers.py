"""Building blocks shared by the model families and understood by the export rewrite.

The export rewrite (``ssc_deploy.export``) recognises :class:`Shift` and
:class:`ChannelShuffle` by type and lowers them to plain graph ops, so every model
family must use these classes rather than its own copies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def ssc_offsets(channels: int, kernel_size: int = 3) -> list[tuple[int, int]]:
    """Per-channel (dy, dx) shifts of the SSC kernel (paper Eq. 1-3).

    Channel p of each group of C = k*k channels keeps the one non-zero position
    (i_p, j_p) = ((p mod C) // k, (p mod C) % k); it is shifted by (i_p - k//2, j_p - k//2).
    """
    c = kernel_size * kernel_size
    half = kernel_size // 2
    return [((p % c) // kernel_size - half, (p % c) % kernel_size - half) for p in range(channels)]


def shiftnet_offsets(channels: int, kernel_size: int = 3) -> list[tuple[int, int]]:
    """Per-channel shifts of Shift-Net (Wu et al. 2017): k*k contiguous blocks of channels,
    one direction each; the centre block (no shift) takes the remainder."""
    c = kernel_size * kernel_size
    half = kernel_size // 2
    per = channels // c
    dirs = [(i // kernel_size - half, i % kernel_size - half) for i in range(c)]
    centre = c // 2
    counts = [per] * c
    counts[centre] += channels - per * c
    offsets: list[tuple[int, int]] = []
    for d, n in zip(dirs, counts):
        offsets.extend([d] * n)
    return offsets


class Shift(nn.Module):
    """Zero-filled per-channel spatial shift: ``out[c, y, x] = in[c, y + dy_c, x + dx_c]``.

    Has no parameters. ``offsets[c] = (dy_c, dx_c)``; pixels shifted in from outside the
    map are zero, exactly like a k x k convolution with padding k//2 whose kernel is a
    one-hot at (dy + k//2, dx + k//2).
    """

    def __init__(self, offsets: list[tuple[int, int]], kernel_size: int = 3) -> None:
        super().__init__()
        self.offsets = [(int(dy), int(dx)) for dy, dx in offsets]
        self.kernel_size = kernel_size
        self.pad = max((max(abs(dy), abs(dx)) for dy, dx in self.offsets), default=0)
        # Channels grouped by direction, so training does one slice per direction.
        groups: dict[tuple[int, int], list[int]] = {}
        for ch, off in enumerate(self.offsets):
            groups.setdefault(off, []).append(ch)
        self._dirs = list(groups)
        order = [ch for d in self._dirs for ch in groups[d]]
        self.register_buffer("_gather", torch.tensor(order, dtype=torch.long), persistent=False)
        inverse = torch.empty(len(order), dtype=torch.long)
        inverse[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        self.register_buffer("_scatter", inverse, persistent=False)
        self._sizes = [len(groups[d]) for d in self._dirs]

    @property
    def channels(self) -> int:
        return len(self.offsets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        # Pad each direction's channels on their own: one pad of the whole tensor with nine
        # slices of it makes backward zero-fill the full padded tensor nine times.
        chunks = torch.split(x.index_select(1, self._gather), self._sizes, 1)
        parts = []
        for (dy, dx), chunk in zip(self._dirs, chunks):
            shifted = F.pad(chunk, (max(-dx, 0), max(dx, 0), max(-dy, 0), max(dy, 0)))
            parts.append(shifted[:, :, max(dy, 0) : max(dy, 0) + h, max(dx, 0) : max(dx, 0) + w])
        return torch.cat(parts, 1).index_select(1, self._scatter)

    def extra_repr(self) -> str:
        return f"channels={self.channels}, kernel_size={self.kernel_size}"


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle: (N, g*c, H, W) -> view (N, g, c) -> transpose -> (N, c*g)."""

    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)

    def extra_repr(self) -> str:
        return f"groups={self.groups}"


def conv_bn(
    cin: int, cout: int, kernel_size: int = 1, stride: int = 1, groups: int = 1, relu: bool = True
) -> nn.Sequential:
    """Conv (no bias) + BatchNorm (+ ReLU): the unit the export rewrite folds into one conv."""
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


def random_channel_mask(
    out_channels: int, in_channels: int, density: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """A fixed random (out, in) 0/1 mask keeping ``round(density * in)`` (at least one) input
    channels for every output channel, as in Changpinyo et al. 2017's channel-wise sparsity."""
    if not 0.0 < density <= 1.0:
        raise ValueError(f"density must be in (0, 1], got {density}")
    keep = max(1, round(density * in_channels))
    scores = torch.rand(out_channels, in_channels, generator=generator)
    chosen = scores.argsort(dim=1)[:, :keep]
    mask = torch.zeros(out_channels, in_channels)
    mask.scatter_(1, chosen, 1.0)
    return mask


class MaskedConv2d(nn.Conv2d):
    """A convolution whose weight is multiplied by a fixed 0/1 ``mask`` buffer in forward.

    ``mask`` has the weight's shape and is saved in the state dict. The export folds
    ``weight * mask`` into a plain convolution; complexity counts only the kept weights.
    """

    def __init__(self, *args, mask: torch.Tensor, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if mask.dim() == 2:  # channel mask (out, in/groups): the same for every kernel tap
            mask = mask[:, :, None, None].expand_as(self.weight)
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.register_buffer("mask", mask.to(self.weight.dtype).contiguous())

    @property
    def density(self) -> float:
        """Fraction of the weights the mask keeps."""
        return float(self.mask.mean())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)
