"""Is a k x k kernel an SSC kernel (paper Eq. 1-5)? One non-zero per (out, in) slice, at a position fixed per input channel.

Exact zeros only: a weight of 1e-12 is a non-zero, so a kernel that is SSC only "up to
rounding" is left alone and the stray weight is named (no silent approximation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class KernelVerdict:
    """``offsets`` (dy, dx) per input channel and the ``pointwise`` (O, I/g, 1, 1) weight of an SSC
    kernel, or None and the ``reason`` it is not one."""

    offsets: list[tuple[int, int]] | None
    pointwise: torch.Tensor | None
    reason: str

    @property
    def is_ssc(self) -> bool:
        return self.offsets is not None


def _not(reason: str) -> KernelVerdict:
    return KernelVerdict(None, None, reason)


def ssc_kernel(weight: torch.Tensor, groups: int, padding: tuple[int, int], dilation: tuple[int, int]) -> KernelVerdict:
    """The verdict on a conv weight ``(O, I/groups, kh, kw)`` with zero ``padding`` and ``dilation``.

    An input channel's position is where most of its non-zeros sit; every non-zero elsewhere is
    a stray. A slice with no non-zero at all is a pruned connection (its 1x1 weight is zero).
    The shift of input channel c is ``(py * dh - ph, px * dw - pw)`` for its position (py, px),
    so the shift + 1x1 conv gives the same output size only with 'same' padding.
    """
    out_ch, per_group, kh, kw = (int(d) for d in weight.shape)
    if kh * kw == 1:
        return _not("already 1x1")
    if any(2 * p != d * (k - 1) for p, d, k in zip(padding, dilation, (kh, kw))):
        return _not(f"padding {tuple(padding)} is not 'same' for a {kh}x{kw} kernel (dilation {tuple(dilation)})")
    nonzero = weight.detach() != 0  # exact zeros only
    per_out = out_ch // groups
    # votes[g, i, ky, kx]: how many outputs of group g use input channel i of that group at (ky, kx)
    votes = nonzero.reshape(groups, per_out, per_group, kh * kw).sum(1)
    position = votes.argmax(-1)  # (groups, per_group); ties and all-zero channels take the first
    at_position = torch.nn.functional.one_hot(position, kh * kw).bool()  # (groups, per_group, kh*kw)
    at_position = at_position[:, None].expand(groups, per_out, per_group, kh * kw).reshape(out_ch, per_group, kh, kw)
    strays = (nonzero & ~at_position).nonzero()
    if len(strays):
        return _not(_stray_reason(weight, strays, position, per_out, per_group, kw))
    pointwise = (weight * at_position).sum((2, 3), keepdim=True)
    flat = position.reshape(-1)
    offsets = [(int(p) // kw * dilation[0] - padding[0], int(p) % kw * dilation[1] - padding[1]) for p in flat]
    return KernelVerdict(offsets, pointwise.contiguous(), "SSC kernel")


def _stray_reason(weight, strays: torch.Tensor, position: torch.Tensor, per_out: int, per_group: int, kw: int) -> str:
    o, i, ky, kx = (int(v) for v in strays[0])
    p = int(position[o // per_out, i])
    where = f"(out {o}, in {i}, {ky}, {kx}) = {float(weight[o, i, ky, kx]):.3g}, off input channel {i}'s position ({p // kw}, {p % kw})"
    if len(strays) == 1:
        return f"one stray non-zero at {where}"
    slices, total = int(((weight != 0).sum((2, 3)) > 1).sum()), weight.shape[0] * per_group
    if 2 * slices > total:
        return f"not sparse: {slices} of {total} (out, in) slices have more than one non-zero"
    return f"{len(strays)} stray non-zeros (first at {where}); {slices} of {total} slices have more than one"
