"""Data sets, all as uint8 NHWC image arrays with integer labels.

``load_dataset(spec, split)`` takes a spec string:

- ``digits`` (default, offline): scikit-learn's bundled 8x8 handwritten digits, resized
  to 32x32x3, fixed train/test split;
- ``cifar10:PATH`` / ``cifar100:PATH``: the python pickle batches;
- ``imagenet32:PATH``: the downsampled-ImageNet 32x32 batch files;
- ``folder:PATH``: ``PATH/train/<class>/*`` and ``PATH/test/<class>/*`` (any image format
  Pillow reads; centre-cropped square and resized).

Pickled batch files (CIFAR, ImageNet32) are read with a restricted unpickler
(:mod:`ssc_deploy.data.safe_pickle`): a tampered file cannot run code.
"""

from __future__ import annotations

import numpy as np

from ssc_deploy.errors import SscDeployError

from .image_set import ImageSet
from .resize import resize_bilinear

DEFAULT_DATA = "digits"
# Statistics of the default data; other data sets compute their own.
DEFAULT_MEAN = (0.3054, 0.3054, 0.3054)
DEFAULT_STD = (0.3237, 0.3237, 0.3237)

__all__ = ["DEFAULT_DATA", "DEFAULT_MEAN", "DEFAULT_STD", "ImageSet", "eval_batch", "load_dataset", "normalize",
           "parse_spec", "resize_bilinear"]


def _loaders():
    from . import cifar, digits, image_folder, imagenet32

    return {
        "digits": digits.load,
        "cifar10": cifar.load_cifar10,
        "cifar100": cifar.load_cifar100,
        "imagenet32": imagenet32.load,
        "folder": image_folder.load,
    }


def parse_spec(spec: str) -> tuple[str, str | None]:
    """Split ``kind:PATH`` into its parts (``digits`` has no path)."""
    kind, _, path = spec.partition(":")
    kind = kind.strip().lower()
    return kind, (path or None)


def load_dataset(spec: str = DEFAULT_DATA, split: str = "train", size: int | None = None) -> ImageSet:
    """Load one split (``train`` or ``test``) of the data set named by ``spec``.

    ``size`` is the side image folders are resized to (default 32); the fixed-size
    formats ignore it (``normalize(..., in_size)`` resizes them when a model wants another size).
    """
    if split not in ("train", "test"):
        raise SscDeployError(f"unknown split '{split}' (use train or test)")
    kind, path = parse_spec(spec)
    loaders = _loaders()
    if kind not in loaders:
        raise SscDeployError(f"unknown data set '{spec}' (use one of: digits, cifar10:PATH, cifar100:PATH, imagenet32:PATH, folder:PATH)")
    if kind != "digits" and not path:
        raise SscDeployError(f"data set '{kind}' needs a path: {kind}:PATH")
    if kind == "folder":
        return loaders[kind](path, split, size)
    return loaders[kind](path, split) if path else loaders[kind](split)


def normalize(images: np.ndarray, mean, std, in_size: int | None = None, source: str = "normalisation") -> np.ndarray:
    """uint8 NHWC -> float32 NCHW normalized with ``mean``/``std`` (resized to ``in_size`` if given).

    ``mean`` and ``std`` may come from any file (a manifest, a checkpoint): they are checked
    first, one-line error naming ``source``, so no division by zero or broadcast error follows.
    """
    from .normalization import check_mean_std

    mean, std = check_mean_std(mean, std, images.shape[-1], source)
    x = images.astype(np.float32) / 255.0
    if in_size is not None and x.shape[1] != in_size:
        x = resize_bilinear(x, in_size)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def eval_batch(spec: str | None, n: int, mean, std, in_size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """The first ``n`` test images of ``spec`` (default data when None), normalized NCHW float32,
    with their labels: the real inputs exports are verified and benchmarked on."""
    ds = load_dataset(spec or DEFAULT_DATA, "test")
    n = min(n, len(ds)) if n > 0 else len(ds)
    return normalize(ds.images[:n], mean, std, in_size), ds.labels[:n].astype(np.int64)
