"""Small real file systems for tests: a tmpfs that is full, or read-only (needs root and mount rights)."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path
from typing import Iterator

import pytest


@contextlib.contextmanager
def tmpfs(where: Path, size: str = "2m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` mounted at ``where`` (skips the test when mounting is not allowed)."""
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if done.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip() or 'needs root'})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(fs: Path) -> None:
    """Fill the file system ``fs`` up to the last byte (a filler file in it)."""
    with open(fs / "filler", "wb", buffering=0) as f:
        for size in (1 << 16, 1 << 12, 1):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * size)


def remount_read_only(fs: Path) -> None:
    """Make the tmpfs at ``fs`` read-only (skips when remounting is not allowed)."""
    if subprocess.run(["mount", "-o", "remount,ro", str(fs)], capture_output=True).returncode:
        pytest.skip("cannot remount the tmpfs read-only")


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every file under ``directory`` (hidden ones too) -> its bytes; directories as b'<dir>'."""
    return {str(p.relative_to(directory)): (b"<dir>" if p.is_dir() else p.read_bytes())
            for p in sorted(directory.rglob("*"))}
