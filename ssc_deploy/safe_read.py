"""Read a file we did not write without blocking on it: a FIFO, a device or a directory in its
place is refused in one line instead of hanging the command (``open`` on a FIFO waits for a
writer forever)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ssc_deploy.errors import SscDeployError


def _open_regular(p: Path, what: str) -> tuple[int, int]:
    """``(fd, size)`` of ``p`` opened read-only with ``O_NONBLOCK`` (a FIFO never blocks) and checked
    with ``fstat`` on the open descriptor (no window between the check and the read)."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except OSError as err:
        raise SscDeployError(f"{p}: cannot read the {what} ({err.strerror or err})") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode)
                else "not a regular file")
        raise SscDeployError(f"{p}: the {what} is {kind}; give a regular file")
    return fd, st.st_size


def _read_upto(fd: int, limit: int) -> bytes:
    chunks, left = [], limit
    while left > 0:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_regular_file(path: str | os.PathLike[str], max_bytes: int, what: str = "file") -> bytes:
    """The bytes of ``path`` when it is a regular file of at most ``max_bytes``; else one-line
    :class:`SscDeployError` (a missing file raises ``FileNotFoundError``, as ``open`` would)."""
    p = Path(path)
    fd, size = _open_regular(p, what)
    try:
        data = b"" if size > max_bytes else _read_upto(fd, max_bytes + 1)
    finally:
        os.close(fd)
    if size > max_bytes or len(data) > max_bytes:
        raise SscDeployError(f"{p}: the {what} is {max(size, len(data)):,} bytes or more, larger than the "
                             f"{max_bytes:,} it may be")
    return data


def read_head(path: str | os.PathLike[str], n: int, what: str = "file") -> bytes:
    """The first ``n`` bytes (fewer for a shorter file) of the regular file ``path``, checked as
    :func:`read_regular_file` checks it."""
    fd, _ = _open_regular(Path(path), what)
    try:
        return _read_upto(fd, n)
    finally:
        os.close(fd)
