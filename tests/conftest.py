"""Shared fixtures: tiny data sets written in each format's real on-disk layout."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

# `--lowering fast` (the CLI default) would time lowerings once per machine into the user cache;
# tests (and the CLI subprocesses they start) use the known-fastest table instead. The tests of
# that measurement set it back and point the cache at a temporary directory.
os.environ.setdefault("SSC_DEPLOY_MEASURE_LOWERINGS", "0")

CIFAR10_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_rows(n: int, seed: int, side: int = 32) -> np.ndarray:
    """``(n, 3*side*side)`` uint8 rows laid out like the real batches (R plane, G plane, B plane)."""
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3 * side * side), dtype=np.uint8)


def write_cifar10(root: Path, per_batch: int = 4) -> Path:
    """``root/cifar-10-batches-py`` as in the official tarball (protocol-2 pickles, bytes keys)."""
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    for i in range(1, 6):
        batch = {
            b"batch_label": f"training batch {i} of 5".encode(),
            b"labels": [(i + j) % 10 for j in range(per_batch)],
            b"data": cifar_rows(per_batch, seed=i),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(per_batch)],
        }
        (d / f"data_batch_{i}").write_bytes(pickle.dumps(batch, protocol=2))
    test = {b"batch_label": b"testing batch 1 of 1", b"labels": [j % 10 for j in range(per_batch)],
            b"data": cifar_rows(per_batch, seed=99), b"filenames": [b"t.png"] * per_batch}
    (d / "test_batch").write_bytes(pickle.dumps(test, protocol=2))
    meta = {b"num_cases_per_batch": per_batch, b"label_names": CIFAR10_NAMES, b"num_vis": 3072}
    (d / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return d


def write_cifar100(root: Path, n: int = 6) -> Path:
    """``root/cifar-100-python`` with ``train``, ``test`` and ``meta`` (fine and coarse labels)."""
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    for name, count, seed in (("train", n, 1), ("test", n // 2, 2)):
        batch = {b"filenames": [b"x.png"] * count, b"batch_label": name.encode(),
                 b"fine_labels": [(7 * j) % 100 for j in range(count)],
                 b"coarse_labels": [j % 20 for j in range(count)], b"data": cifar_rows(count, seed)}
        (d / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {b"fine_label_names": [f"fine{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"coarse{i}".encode() for i in range(20)]}
    (d / "meta").write_bytes(pickle.dumps(meta, protocol=2))
    return d


def write_imagenet32(root: Path, batches: int = 2, per_batch: int = 5, nested: bool = False) -> Path:
    """Downsampled-ImageNet batch files (``data`` (N, 3072) uint8, ``labels`` 1..1000)."""
    train_dir = root / "Imagenet32_train" if nested else root
    val_dir = root / "Imagenet32_val" if nested else root
    train_dir.mkdir(parents=True, exist_ok=True)
    val_dir.mkdir(parents=True, exist_ok=True)
    for i in range(1, batches + 1):
        data = cifar_rows(per_batch, seed=i)
        batch = {"data": data, "labels": [1 + (i * 100 + j) % 1000 for j in range(per_batch)], "mean": data.mean(0)}
        (train_dir / f"train_data_batch_{i}").write_bytes(pickle.dumps(batch))
    val = {"data": cifar_rows(per_batch, seed=50), "labels": [1000 - j for j in range(per_batch)]}
    (val_dir / "val_data").write_bytes(pickle.dumps(val))
    return root


def write_image_folder(root: Path, classes=("cat", "dog"), per_class: int = 3, size: tuple[int, int] = (40, 30)) -> Path:
    """``root/train/<class>/*.png`` and ``root/test/<class>/*.jpg`` written with Pillow."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, ext in (("train", ".png"), ("test", ".jpg")):
        for c, name in enumerate(classes):
            d = root / split / name
            d.mkdir(parents=True)
            for j in range(per_class):
                arr = np.full((size[1], size[0], 3), 40 + 100 * c, np.uint8)
                arr[..., 2] = rng.integers(0, 256, dtype=np.uint8)
                Image.fromarray(arr).save(d / f"{j}{ext}")
    return root


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path)


@pytest.fixture
def cifar100_dir(tmp_path: Path) -> Path:
    return write_cifar100(tmp_path)


@pytest.fixture
def imagenet32_dir(tmp_path: Path) -> Path:
    return write_imagenet32(tmp_path / "imagenet32")


@pytest.fixture
def image_folder_dir(tmp_path: Path) -> Path:
    return write_image_folder(tmp_path / "pets")
