"""Data loaders on tiny fixtures in each format's real layout, plus augmentation."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import write_cifar10, write_imagenet32
from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD, load_dataset, parse_spec
from ssc_deploy.data.cifar import download
from ssc_deploy.data.transforms import Augment, augmentation_for, resize_uint8, to_normalized_float
from ssc_deploy.errors import SscDeployError


class _Payload:
    """Unpickling this calls os.system: a stand-in for a tampered data file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# ---- digits -------------------------------------------------------------------------

def test_digits_fixed_split_and_stats():
    train, test = load_dataset("digits", "train"), load_dataset("digits", "test")
    assert train.images.shape == (1437, 32, 32, 3) and train.images.dtype == np.uint8
    assert test.images.shape == (360, 32, 32, 3)
    assert sorted(set(test.labels.tolist())) == list(range(10))
    again = load_dataset("digits", "test")
    assert np.array_equal(again.images, test.images) and np.array_equal(again.labels, test.labels)
    mean, std = train.channel_stats()
    assert np.allclose(mean, DEFAULT_MEAN, atol=1e-4) and np.allclose(std, DEFAULT_STD, atol=1e-4)


# ---- CIFAR --------------------------------------------------------------------------

def test_cifar10_reads_official_layout_pixel_exact(cifar10_dir: Path):
    for path in (cifar10_dir, cifar10_dir.parent):  # the batch folder or its parent
        train = load_dataset(f"cifar10:{path}", "train")
        assert train.images.shape == (20, 32, 32, 3) and train.labels.shape == (20,)
        assert train.classes[0] == "airplane" and train.classes[9] == "truck"
    raw = pickle.loads((cifar10_dir / "data_batch_1").read_bytes(), encoding="bytes")
    row = raw[b"data"][2]
    img = train.images[2]
    # red plane first, then green, then blue; each plane row-major
    assert img[0, 0, 0] == row[0] and img[0, 1, 0] == row[1] and img[1, 0, 0] == row[32]
    assert img[0, 0, 1] == row[1024] and img[31, 31, 2] == row[3071]
    assert train.labels.tolist()[:4] == raw[b"labels"]
    test = load_dataset(f"cifar10:{cifar10_dir}", "test")
    assert len(test) == 4 and test.name == "cifar10"


def test_cifar100_uses_fine_labels(cifar100_dir: Path):
    train = load_dataset(f"cifar100:{cifar100_dir.parent}", "train")
    assert len(train.classes) == 100 and train.classes[7] == "fine7"
    assert train.labels.tolist() == [(7 * j) % 100 for j in range(6)]
    assert len(load_dataset(f"cifar100:{cifar100_dir}", "test")) == 3


def test_cifar_bad_inputs_are_one_line(tmp_path: Path):
    with pytest.raises(SscDeployError, match="does not exist"):
        load_dataset(f"cifar10:{tmp_path / 'nope'}", "train")
    with pytest.raises(SscDeployError, match="no 'batches.meta'"):
        load_dataset(f"cifar10:{tmp_path}", "train")
    d = write_cifar10(tmp_path / "a")
    (d / "data_batch_3").unlink()
    with pytest.raises(SscDeployError, match="missing batch file .*data_batch_3"):
        load_dataset(f"cifar10:{d}", "train")
    d = write_cifar10(tmp_path / "b")
    blob = (d / "data_batch_2").read_bytes()
    (d / "data_batch_2").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SscDeployError, match="data_batch_2: .*truncated"):
        load_dataset(f"cifar10:{d}", "train")
    with pytest.raises(SscDeployError, match="needs a path"):
        load_dataset("cifar10", "train")
    with pytest.raises(SscDeployError, match="unknown data set"):
        load_dataset("mnist:/x", "train")


def test_tampered_cifar_pickle_is_refused_and_never_runs(tmp_path: Path):
    d = write_cifar10(tmp_path)
    marker = tmp_path / "pwned"
    (d / "test_batch").write_bytes(pickle.dumps({b"data": _Payload(marker), b"labels": [0]}, protocol=2))
    with pytest.raises(SscDeployError, match="refused: .*posix.system|refused: .*os.system"):
        load_dataset(f"cifar10:{d}", "test")
    assert not marker.exists()


def test_download_checks_md5_and_unpacks(tmp_path: Path, monkeypatch):
    """The real fetch/verify/unpack path, fed from a local tarball through a file:// URL."""
    import dataclasses
    import hashlib
    import tarfile

    from ssc_deploy.data import cifar

    src = write_cifar10(tmp_path / "src")
    tarball = tmp_path / "cifar-10-python.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    good = hashlib.md5(tarball.read_bytes()).hexdigest()
    url = tarball.as_uri()
    monkeypatch.setitem(cifar.VARIANTS, "cifar10", dataclasses.replace(cifar.CIFAR10, url=url, md5="0" * 32))
    with pytest.raises(SscDeployError, match="md5 .* does not match the published"):
        download(tmp_path / "bad", "cifar10")
    assert not (tmp_path / "bad").exists()  # nothing half-written
    monkeypatch.setitem(cifar.VARIANTS, "cifar10", dataclasses.replace(cifar.CIFAR10, url=url, md5=good))
    got = download(tmp_path / "good", "cifar10")
    assert got == tmp_path / "good" / "cifar-10-batches-py"
    assert len(load_dataset(f"cifar10:{got}", "train")) == 20


def test_download_rejects_other_sets_and_skips_present_data(tmp_path: Path):
    with pytest.raises(SscDeployError, match="only cifar10, cifar100"):
        download(tmp_path, "imagenet32")
    d = write_cifar10(tmp_path)  # already present: no network touched
    assert download(tmp_path, "cifar10") == d


# ---- ImageNet32 -----------------------------------------------------------------------

@pytest.mark.parametrize("nested", [False, True])
def test_imagenet32_labels_become_zero_based(tmp_path: Path, nested: bool):
    root = write_imagenet32(tmp_path / "in32", batches=3, per_batch=4, nested=nested)
    train = load_dataset(f"imagenet32:{root}", "train")
    assert train.images.shape == (12, 32, 32, 3) and len(train.classes) == 1000
    assert train.labels[:4].tolist() == [100, 101, 102, 103]  # file labels 101..104
    val = load_dataset(f"imagenet32:{root}", "test")
    assert val.labels.tolist() == [999, 998, 997, 996]


def test_imagenet32_batches_in_numeric_order_and_class_map(tmp_path: Path):
    root = write_imagenet32(tmp_path / "in32", batches=10, per_batch=1)
    (root / "map_clsloc.txt").write_text("n01440764 1 tench\nn01443537 2 goldfish\n")
    train = load_dataset(f"imagenet32:{root}", "train")
    # batch 10 after batch 9, not after batch 1
    assert train.labels.tolist() == [(i * 100) % 1000 for i in range(1, 11)]
    assert train.classes[:3] == ["tench", "goldfish", "3"]


def test_imagenet32_bad_labels_and_missing_files(tmp_path: Path):
    with pytest.raises(SscDeployError, match="no train_data_batch_N"):
        load_dataset(f"imagenet32:{tmp_path}", "train")
    root = write_imagenet32(tmp_path / "in32", batches=1)
    (root / "val_data").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 1]}))
    with pytest.raises(SscDeployError, match="labels must be 1..1000"):
        load_dataset(f"imagenet32:{root}", "test")
    (root / "val_data").write_bytes(pickle.dumps({"data": np.zeros((2, 303), np.uint8), "labels": [1, 1]}))
    with pytest.raises(SscDeployError, match="not 3\\*S\\*S"):
        load_dataset(f"imagenet32:{root}", "test")
    (root / "val_data").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8), "labels": ["cat", "dog"]}))
    with pytest.raises(SscDeployError, match="val_data: the labels are not integers"):
        load_dataset(f"imagenet32:{root}", "test")
    (root / "val_data").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.float32), "labels": [1, 2]}))
    with pytest.raises(SscDeployError, match="val_data: 'data' holds float32 values"):
        load_dataset(f"imagenet32:{root}", "test")


# ---- image folder --------------------------------------------------------------------

def test_image_folder_reads_and_resizes(image_folder_dir: Path):
    train = load_dataset(f"folder:{image_folder_dir}", "train")
    assert train.classes == ["cat", "dog"] and train.images.shape == (6, 32, 32, 3)
    assert train.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert train.images[0, 5, 5, 0] == 40 and train.images[3, 5, 5, 0] == 140
    test = load_dataset(f"folder:{image_folder_dir}", "test", size=24)
    assert test.images.shape == (6, 24, 24, 3)


def test_image_folder_bad_inputs(tmp_path: Path, image_folder_dir: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SscDeployError, match="train is not a directory"):
        load_dataset(f"folder:{tmp_path / 'empty'}", "train")
    (image_folder_dir / "test" / "bird").mkdir()
    with pytest.raises(SscDeployError, match="class 'bird'"):
        load_dataset(f"folder:{image_folder_dir}", "test")
    (image_folder_dir / "test" / "bird").rmdir()
    bad = image_folder_dir / "train" / "dog" / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(SscDeployError, match="cannot read image .*broken.png"):
        load_dataset(f"folder:{image_folder_dir}", "train")
    bad.unlink()
    (image_folder_dir / "train" / "dog" / "notes.txt").write_text("skipped: not an image extension")
    assert len(load_dataset(f"folder:{image_folder_dir}", "train")) == 6


def test_parse_spec():
    assert parse_spec("digits") == ("digits", None)
    assert parse_spec("CIFAR10:/a:b") == ("cifar10", "/a:b")


# ---- augmentation --------------------------------------------------------------------

def test_augment_crop_moves_content_and_pads_with_zeros():
    x = torch.full((64, 1, 8, 8), 200, dtype=torch.uint8)
    out = Augment(pad=4, flip=False)(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert set(out.unique().tolist()) <= {0, 200}
    zeros = (out == 0).flatten(1).sum(1)
    assert (zeros > 0).any() and (zeros == 0).any()  # some crops shifted, some centred


def test_augment_is_reproducible_and_flip_is_a_mirror():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).reshape(2, 3, 4, 4)
    a = Augment(pad=2)(x, torch.Generator().manual_seed(5))
    b = Augment(pad=2)(x, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)
    flips = [Augment(pad=0, flip=True)(x, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(torch.equal(f[0], x[0].flip(-1)) for f in flips) and any(torch.equal(f[0], x[0]) for f in flips)
    assert augmentation_for("digits").flip is False and augmentation_for("cifar10").flip is True


def test_normalize_and_resize():
    x = torch.full((2, 3, 8, 8), 255, dtype=torch.uint8)
    y = to_normalized_float(x, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert torch.allclose(y, torch.full_like(y, 2.0))
    assert resize_uint8(x, 4).shape == (2, 3, 4, 4) and resize_uint8(x, 4).max() == 255
