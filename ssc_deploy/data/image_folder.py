"""Custom data from a folder of images, one sub-folder per class.

``folder:PATH`` reads ``PATH/train/<class>/*`` and ``PATH/test/<class>/*``. Class names are
the sorted sub-folder names of ``train``; ``test`` may use a subset of them. Every image is
converted to RGB, centre-cropped to a square and resized (bilinear) to ``size`` x ``size``
with Pillow. Hidden files and files Pillow does not recognise by extension are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError, missing_package

from .image_set import ImageSet

DEFAULT_SIZE = 32


def _pil():
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise missing_package("pillow", "train") from None
    return Image, ImageOps


def _image_files(class_dir: Path, extensions: set[str]) -> list[Path]:
    return sorted(
        f for f in class_dir.iterdir() if f.is_file() and not f.name.startswith(".") and f.suffix.lower() in extensions
    )


def classes_of(root: Path) -> list[str]:
    """Sorted class names: the sub-folders of ``root/train``."""
    train = root / "train"
    if not train.is_dir():
        raise SscDeployError(f"folder data: {train} is not a directory (expected PATH/train/<class>/ and PATH/test/<class>/)")
    names = sorted(d.name for d in train.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not names:
        raise SscDeployError(f"folder data: {train} has no class sub-folders")
    return names


def load(path: str, split: str, size: int | None = None) -> ImageSet:
    """Read one split as ``size`` x ``size`` RGB uint8 images (default 32)."""
    Image, ImageOps = _pil()
    size = int(size or DEFAULT_SIZE)
    root = Path(path).expanduser()
    if not root.is_dir():
        raise SscDeployError(f"folder data: {root} is not a directory")
    classes = classes_of(root)
    split_dir = root / split
    if not split_dir.is_dir():
        raise SscDeployError(f"folder data: {split_dir} is not a directory")
    unknown = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith(".") and d.name not in classes)
    if unknown:
        raise SscDeployError(f"folder data: {split_dir} has class '{unknown[0]}' that {root / 'train'} lacks")
    extensions = {ext.lower() for ext in Image.registered_extensions()}
    images: list[np.ndarray] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        class_dir = split_dir / name
        if not class_dir.is_dir():
            continue
        files = _image_files(class_dir, extensions)
        if split == "train" and not files:
            raise SscDeployError(f"folder data: {class_dir} holds no images")
        for f in files:
            try:
                with Image.open(f) as im:
                    im = ImageOps.fit(im.convert("RGB"), (size, size), method=Image.BILINEAR)
                    images.append(np.asarray(im, dtype=np.uint8))
            except (OSError, ValueError, Image.DecompressionBombError) as err:
                raise SscDeployError(f"folder data: cannot read image {f} ({err})") from None
            labels.append(label)
    if not images:
        raise SscDeployError(f"folder data: {split_dir} holds no images")
    return ImageSet(
        images=np.stack(images),
        labels=np.asarray(labels, dtype=np.int64),
        classes=classes,
        name=f"folder:{root.name}",
    )
