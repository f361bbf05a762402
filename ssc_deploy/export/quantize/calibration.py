"""The calibration images of a static int8 export: N training images of the weights' own data.

The images are drawn by a fixed-seed permutation of the training split and go through the eval
transforms (scale, resize, normalise: :func:`ssc_deploy.data.normalize`), so every export of the
same checkpoint calibrates on the same images. The manifest's ``quantization.calibration`` is
:meth:`CalibrationSet.facts`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ssc_deploy.errors import SscDeployError

CALIB_SEED = 0
MAX_CALIB = 100_000  # batch-1 calibration calls; beyond this an export takes hours


@dataclass(frozen=True)
class CalibrationSet:
    """Normalised NCHW float32 calibration images and where they came from."""

    images: np.ndarray  # (N, 3, S, S) float32
    data: str
    seed: int

    def facts(self) -> dict[str, Any]:
        """The manifest's ``quantization.calibration`` object."""
        return {"data": self.data, "split": "train", "n": int(len(self.images)), "seed": self.seed,
                "transforms": "eval"}


def check_calib(n: int) -> int:
    """``n`` as a calibration image count; one-line error outside 1..MAX_CALIB."""
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_CALIB:
        raise SscDeployError(f"--calib must be an image count from 1 to {MAX_CALIB}, got {n}")
    return n


def calibration_images(data: str, n: int, mean: Sequence[float], std: Sequence[float], in_size: int,
                       seed: int = CALIB_SEED) -> CalibrationSet:
    """``n`` training images of ``data`` (all of them when the split is smaller), fixed-seed order.

    ``data`` is a data spec (``digits``, ``cifar10:PATH``, ...): the one the export verifies on,
    which is the checkpoint's own data unless ``--data`` says otherwise.
    """
    from ssc_deploy.data import load_dataset, normalize

    train = load_dataset(data, "train", size=in_size)
    if len(train) == 0:
        raise SscDeployError(f"{data}: the training split has no images to calibrate on")
    order = np.random.default_rng(seed).permutation(len(train))[: check_calib(n)]
    images = normalize(train.images[order], mean, std, in_size, source="calibration")
    return CalibrationSet(images=images, data=data, seed=seed)
