"""Downsampled ImageNet 32x32 (Chrabaszcz, Loshchilov and Hutter 2017) from its batch files.

``imagenet32:PATH`` takes a directory holding ``train_data_batch_1`` .. ``train_data_batch_10``
and ``val_data`` (or the official ``Imagenet32_train`` / ``Imagenet32_val`` folders inside
it). Each file is a pickled dict with ``data`` ``(N, 3072)`` uint8 (red, green, blue planes)
and ``labels`` numbered 1..1000; labels become 0..999 here. The test split is ``val_data``.
Class names come from ``map_clsloc.txt`` (``wnid index name`` lines) when it sits beside the
files, else they are the official 1-based indices.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError

from .image_set import ImageSet
from .cifar import labels_array, rows_to_nhwc
from .safe_pickle import get_key, load_pickle

NUM_CLASSES = 1000
_TRAIN_RE = re.compile(r"train_data_batch_(\d+)")


def _candidate_dirs(root: Path, split: str) -> list[Path]:
    sub = "Imagenet32_train" if split == "train" else "Imagenet32_val"
    return [root, root / sub]


def split_files(path: str | Path, split: str) -> list[Path]:
    """The batch files of one split, in order (``train_data_batch_1`` .. or ``val_data``)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SscDeployError(f"imagenet32: {root} is not a directory")
    for d in _candidate_dirs(root, split):
        if split == "train":
            found = [(int(m.group(1)), f) for f in d.glob("train_data_batch_*") if (m := _TRAIN_RE.fullmatch(f.name))]
            if found:
                return [f for _, f in sorted(found)]
        elif (d / "val_data").is_file():
            return [d / "val_data"]
    wanted = "train_data_batch_N files" if split == "train" else "a val_data file"
    raise SscDeployError(f"imagenet32: no {wanted} in {root} (or its Imagenet32_train / Imagenet32_val folders)")


def class_names(root: Path) -> list[str]:
    """Names from ``map_clsloc.txt`` if present, else ``"1"`` .. ``"1000"``."""
    for d in (root, root.parent):
        mapping = d / "map_clsloc.txt"
        if mapping.is_file():
            names = [str(i) for i in range(1, NUM_CLASSES + 1)]
            for line in mapping.read_text(encoding="utf-8", errors="replace").splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[1].isdigit() and 1 <= int(parts[1]) <= NUM_CLASSES:
                    names[int(parts[1]) - 1] = parts[2]
            return names
    return [str(i) for i in range(1, NUM_CLASSES + 1)]


def load(path: str, split: str) -> ImageSet:
    """The train (all ``train_data_batch_*``) or test (``val_data``) split, labels 0-based."""
    files = split_files(path, split)
    images, labels = [], []
    for f in files:
        d = load_pickle(f)
        x = rows_to_nhwc(get_key(d, "data", f), f)
        y = labels_array(get_key(d, "labels", f), f) - 1
        if y.shape != (x.shape[0],):
            raise SscDeployError(f"{f}: {y.shape[0]} labels for {x.shape[0]} images")
        if y.size and (y.min() < 0 or y.max() >= NUM_CLASSES):
            raise SscDeployError(f"{f}: labels must be 1..{NUM_CLASSES}, found {y.min() + 1}..{y.max() + 1}")
        images.append(x)
        labels.append(y)
    sizes = {x.shape[1] for x in images}
    if len(sizes) > 1:
        raise SscDeployError(f"imagenet32: batch files mix image sizes {sorted(sizes)}")
    return ImageSet(
        images=np.concatenate(images),
        labels=np.concatenate(labels),
        classes=class_names(files[0].parent),
        name="imagenet32",
    )
