"""Per-channel normalisation statistics, checked once where they are read (torch-free)."""

from __future__ import annotations

import math
from typing import Any

from ssc_deploy.errors import SscDeployError


def _numbers(values: Any, name: str, channels: int, source: str) -> list[float]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__len__"):
        raise SscDeployError(f"{source}: '{name}' must be {channels} numbers, not {values!r}")
    try:
        out = [float(v) for v in values]
    except (TypeError, ValueError):
        raise SscDeployError(f"{source}: '{name}' must be {channels} numbers, not {list(values)!r}") from None
    if len(out) != channels:
        raise SscDeployError(f"{source}: '{name}' has {len(out)} values but the input has {channels} channels")
    return out


def check_mean_std(mean: Any, std: Any, channels: int, source: str) -> tuple[list[float], list[float]]:
    """``mean`` and ``std`` as float lists of ``channels`` values each (std positive, all finite),
    or a one-line :class:`SscDeployError` naming ``source`` and the field."""
    m = _numbers(mean, "mean", channels, source)
    s = _numbers(std, "std", channels, source)
    if not all(math.isfinite(v) for v in m):
        raise SscDeployError(f"{source}: 'mean' must be finite, not {m}")
    if not all(math.isfinite(v) and v > 0 for v in s):
        raise SscDeployError(f"{source}: 'std' must be positive and finite, not {s} (dividing by it gives inf or NaN)")
    return m, s
