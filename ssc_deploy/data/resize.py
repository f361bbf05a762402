"""Image resizing in numpy (no Pillow or torch needed)."""

from __future__ import annotations

import numpy as np


def resize_bilinear(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear resize of ``(N, H, W, C)`` float images to ``size`` x ``size`` (half-pixel centres)."""
    n, h, w, c = x.shape

    def axis(src: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(size) + 0.5) * src / size - 0.5
        pos = np.clip(pos, 0, src - 1)
        lo = np.floor(pos).astype(int)
        hi = np.minimum(lo + 1, src - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    rows = x[:, y0] * (1 - fy)[None, :, None, None] + x[:, y1] * fy[None, :, None, None]
    return rows[:, :, x0] * (1 - fx)[None, None, :, None] + rows[:, :, x1] * fx[None, None, :, None]
