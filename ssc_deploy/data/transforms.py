"""Training-time augmentation and normalisation on whole batches of uint8 NCHW tensors.

The paper's recipe (the common CIFAR practice of He et al. 2016): pad 4 pixels with zeros
(black, before normalisation), take a random crop of the original size, and flip
horizontally with probability 1/2. For the digits data the flip is left out: a mirrored
digit is a different symbol (or none). Randomness comes from an explicit
``torch.Generator`` so a batch's augmentation is reproducible from (seed, epoch, batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from .normalization import check_mean_std


@dataclass(frozen=True)
class Augment:
    """Random crop with zero padding, then an optional random horizontal flip."""

    pad: int = 4
    flip: bool = True

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment ``x`` ``(B, C, H, W)`` (any dtype); returns a new tensor of the same shape."""
        b, _, h, w = x.shape
        if self.pad > 0:
            p = self.pad
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            oy = torch.randint(0, 2 * p + 1, (b,), generator=generator)
            ox = torch.randint(0, 2 * p + 1, (b,), generator=generator)
            rows = (oy[:, None] + torch.arange(h))[:, None, :, None]  # (B, 1, H, 1)
            cols = (ox[:, None] + torch.arange(w))[:, None, None, :]  # (B, 1, 1, W)
            batch = torch.arange(b)[:, None, None, None]
            chans = torch.arange(x.shape[1])[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        if self.flip:
            mask = torch.rand(b, generator=generator) < 0.5
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return x


def augmentation_for(data_kind: str) -> Augment:
    """The recipe's augmentation for a data set kind (``digits`` gets crop only)."""
    return Augment(pad=4, flip=data_kind != "digits")


def to_normalized_float(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 ``(B, 3, H, W)`` -> float32 scaled to [0, 1] and normalised per channel.

    Statistics that do not fit the channels, or a zero std, raise one :class:`SscDeployError` line.
    """
    mean, std = check_mean_std(mean, std, x.shape[1], "normalisation")
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return (x.to(torch.float32) / 255.0 - m) / s


def resize_uint8(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Resize uint8 ``(N, C, H, W)`` to ``size`` x ``size`` (bilinear, antialiased), in chunks."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    out = []
    for start in range(0, x.shape[0], chunk):
        part = x[start : start + chunk].to(torch.float32)
        part = torch.nn.functional.interpolate(part, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        out.append(part.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out) if out else x.new_zeros((0, x.shape[1], size, size))
