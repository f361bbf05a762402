"""CIFAR-10 and CIFAR-100 from the official "python version" pickle batches.

``cifar10:PATH`` takes the ``cifar-10-batches-py`` directory (``data_batch_1`` ..
``data_batch_5``, ``test_batch``, ``batches.meta``) or its parent; ``cifar100:PATH`` the
``cifar-100-python`` directory (``train``, ``test``, ``meta``; the 100 fine labels) or its
parent. :func:`download` fetches the official tarball and checks its published md5.
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ssc_deploy.atomic import atomic_path
from ssc_deploy.errors import SscDeployError

from .image_set import ImageSet
from .safe_pickle import as_str, get_key, load_pickle


@dataclass(frozen=True)
class CifarVariant:
    """Where one CIFAR variant lives on disk and online."""

    name: str
    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    label_key: str
    names_key: str
    url: str
    md5: str


CIFAR10 = CifarVariant(
    name="cifar10",
    folder="cifar-10-batches-py",
    train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
    test_file="test_batch",
    meta_file="batches.meta",
    label_key="labels",
    names_key="label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    md5="c58f30108f718f92721af3b95e74349a",
)
CIFAR100 = CifarVariant(
    name="cifar100",
    folder="cifar-100-python",
    train_files=("train",),
    test_file="test",
    meta_file="meta",
    label_key="fine_labels",
    names_key="fine_label_names",
    url="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
    md5="eb9058c3a382ffc7106e4002c42a8d85",
)
VARIANTS = {v.name: v for v in (CIFAR10, CIFAR100)}


def rows_to_nhwc(data: np.ndarray, path: Path) -> np.ndarray:
    """Batch rows ``(N, 3*S*S)`` (all red, then green, then blue, each row-major) -> ``(N, S, S, 3)`` uint8."""
    try:
        data = np.asarray(data)
    except ValueError:
        data = np.asarray([])
    if data.dtype.kind not in "ui":
        raise SscDeployError(f"{path}: 'data' holds {data.dtype} values, expected uint8 pixels")
    if data.ndim != 2 or data.shape[1] % 3:
        raise SscDeployError(f"{path}: 'data' has shape {data.shape}, expected (N, 3*S*S)")
    side = int(round((data.shape[1] // 3) ** 0.5))
    if 3 * side * side != data.shape[1]:
        raise SscDeployError(f"{path}: 'data' rows have {data.shape[1]} values, not 3*S*S for a square image")
    return np.ascontiguousarray(data.astype(np.uint8, copy=False).reshape(-1, 3, side, side).transpose(0, 2, 3, 1))


def labels_array(value, path: Path) -> np.ndarray:
    """A batch file's labels as int64; one line when they are not integers."""
    try:
        labels = np.asarray(value, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise SscDeployError(f"{path}: the labels are not integers") from None
    if labels.ndim != 1:
        raise SscDeployError(f"{path}: the labels have shape {labels.shape}, expected one per image")
    return labels


def find_root(path: str | Path, variant: CifarVariant) -> Path:
    """The directory holding the batch files: ``path`` itself or ``path/<official folder>``."""
    p = Path(path).expanduser()
    for cand in (p, p / variant.folder):
        if (cand / variant.meta_file).is_file():
            return cand
    if not p.exists():
        raise SscDeployError(f"{variant.name}: {p} does not exist (pass the '{variant.folder}' directory, or use --download)")
    raise SscDeployError(
        f"{variant.name}: no '{variant.meta_file}' in {p} or {p / variant.folder}: "
        f"pass the '{variant.folder}' directory of the python version"
    )


def _read_batch(file: Path, variant: CifarVariant) -> tuple[np.ndarray, np.ndarray]:
    if not file.is_file():
        raise SscDeployError(f"{variant.name}: missing batch file {file}")
    d = load_pickle(file)
    images = rows_to_nhwc(get_key(d, "data", file), file)
    labels = labels_array(get_key(d, variant.label_key, file), file)
    if labels.shape != (images.shape[0],):
        raise SscDeployError(f"{file}: {labels.shape[0]} labels for {images.shape[0]} images")
    return images, labels


def load_variant(variant: CifarVariant, path: str | Path, split: str) -> ImageSet:
    """One split of a CIFAR variant read from its pickle batches."""
    root = find_root(path, variant)
    meta_path = root / variant.meta_file
    classes = [as_str(c) for c in get_key(load_pickle(meta_path), variant.names_key, meta_path)]
    files = variant.train_files if split == "train" else (variant.test_file,)
    parts = [_read_batch(root / f, variant) for f in files]
    images = np.concatenate([p[0] for p in parts])
    labels = np.concatenate([p[1] for p in parts])
    if labels.size and (labels.min() < 0 or labels.max() >= len(classes)):
        raise SscDeployError(f"{variant.name}: labels outside 0..{len(classes) - 1} in {root}")
    return ImageSet(images=images, labels=labels, classes=classes, name=variant.name)


def load_cifar10(path: str, split: str) -> ImageSet:
    """CIFAR-10 train (50,000) or test (10,000) split."""
    return load_variant(CIFAR10, path, split)


def load_cifar100(path: str, split: str) -> ImageSet:
    """CIFAR-100 train or test split with the 100 fine labels."""
    return load_variant(CIFAR100, path, split)


def _md5(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download(root: str | Path, name: str = "cifar10", timeout: float = 60.0) -> Path:
    """Fetch and unpack the official tarball into ``root`` (md5-checked); return the batch directory.

    Does nothing when the batches are already there. Any network or checksum failure is one
    :class:`SscDeployError` line and leaves nothing half-written.
    """
    variant = VARIANTS.get(name)
    if variant is None:
        raise SscDeployError(f"cannot download '{name}': only {', '.join(VARIANTS)} can be downloaded")
    root = Path(root).expanduser()
    target = root / variant.folder
    if (target / variant.meta_file).is_file():
        return target
    created = not root.exists()
    try:
        return _fetch(variant, root, target, timeout)
    except BaseException:
        if created and root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        raise


def _fetch(variant: CifarVariant, root: Path, target: Path, timeout: float) -> Path:
    import urllib.error
    import urllib.request

    with atomic_path(root / Path(variant.url).name) as tmp:
        try:
            with urllib.request.urlopen(variant.url, timeout=timeout) as resp, open(tmp, "wb") as out:
                for chunk in iter(lambda: resp.read(1 << 20), b""):
                    out.write(chunk)
        except (urllib.error.URLError, OSError, TimeoutError) as err:
            reason = getattr(err, "reason", err)
            raise SscDeployError(f"could not download {variant.url} ({reason}); fetch it by hand and pass its folder") from None
        digest = _md5(tmp)
        if digest != variant.md5:
            raise SscDeployError(f"{variant.url}: md5 {digest} does not match the published {variant.md5}; not unpacked")
        staging = root / f".{variant.folder}.partial"
        try:
            with tarfile.open(tmp, "r:gz") as tar:
                tar.extractall(staging, filter="data")
            (staging / variant.folder).rename(target)
        except (tarfile.TarError, OSError) as err:
            raise SscDeployError(f"{variant.url}: could not unpack ({err})") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return target
