"""The default, offline data set: scikit-learn's bundled handwritten digits (real scans).

1797 grey 8x8 images of 10 classes, scaled to 32x32x3; a fixed, stratified split
(seed 0) keeps 1437 for training and 360 for testing.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ssc_deploy.errors import missing_package

from .image_set import ImageSet
from .resize import resize_bilinear

TEST_FRACTION = 0.2
SPLIT_SEED = 0


@lru_cache(maxsize=1)
def _all() -> tuple[np.ndarray, np.ndarray]:
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise missing_package("scikit-learn", "train") from None
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[..., None]  # (N, 8, 8, 1) in [0, 1]
    x = resize_bilinear(x, 32)
    x = np.repeat(np.clip(np.rint(x * 255.0), 0, 255).astype(np.uint8), 3, axis=3)
    return x, d.target.astype(np.int64)


def load(split: str) -> ImageSet:
    """The train or test split of the digits data at 32x32x3."""
    from sklearn.model_selection import train_test_split

    x, y = _all()
    idx = np.arange(len(y))
    tr, te = train_test_split(idx, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    sel = tr if split == "train" else te
    return ImageSet(images=x[sel], labels=y[sel], classes=[str(i) for i in range(10)], name="digits")
