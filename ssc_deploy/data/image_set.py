"""One split of a data set: uint8 NHWC images, integer labels, class names."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ImageSet:
    """Images ``(N, H, W, 3)`` uint8 and labels ``(N,)`` int64, with class names."""

    images: np.ndarray
    labels: np.ndarray
    classes: list[str]
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def size(self) -> int:
        return int(self.images.shape[1])

    def channel_stats(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the images scaled to [0, 1]."""
        # Summed in chunks so a large set (ImageNet32: 1.28 M images) never becomes one float array.
        flat = self.images.reshape(-1, 3)
        total = np.zeros(3)
        total_sq = np.zeros(3)
        step = 1 << 22
        for start in range(0, flat.shape[0], step):
            chunk = flat[start : start + step].astype(np.float64) / 255.0
            total += chunk.sum(0)
            total_sq += np.square(chunk).sum(0)
        n = max(flat.shape[0], 1)
        mean = total / n
        std = np.sqrt(np.maximum(total_sq / n - np.square(mean), 0.0))
        return tuple(float(v) for v in mean), tuple(float(v) for v in std)
