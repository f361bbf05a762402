"""Write files so that a crash or a failed check never leaves half a file behind."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; on success it is renamed over ``dest``.

    On any exception the temporary file is removed and ``dest`` is left as it was.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=suffix or dest.suffix + ".tmp", dir=dest.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes_atomic(dest: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``dest`` atomically; a full disk or an unwritable place is the one-line error."""
    from ssc_deploy.errors import SscDeployError

    try:
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
    except OSError as err:
        raise SscDeployError(f"{dest}: cannot write ({err.strerror or err}); the file was left as it was") from None


def write_text_atomic(dest: str | os.PathLike, text: str, errors: str = "strict") -> None:
    """Write ``text`` to ``dest`` atomically (UTF-8; ``errors`` as for :meth:`str.encode`)."""
    write_bytes_atomic(dest, text.encode("utf-8", errors))


def check_writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """``path`` (a directory, created if missing) when files can be created in it; else one-line error.

    Meant for the start of a long command, so that a read-only file system or a file in the
    directory's place is found before the work, not after it. ``access(2)`` answers ``EROFS``
    even for root, whom permission bits do not stop.
    """
    from ssc_deploy.errors import SscDeployError

    path = Path(path)
    if path.exists() and not path.is_dir():
        raise SscDeployError(f"{path}: exists and is not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SscDeployError(f"{path}: cannot create the {what} ({err.strerror or err})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        readonly = bool(os.statvfs(path).f_flag & os.ST_RDONLY)
        raise SscDeployError(f"{path}: {what} is not writable ({'read-only file system' if readonly else 'permission denied'})")
    return path


def check_free_space(directory: str | os.PathLike, needed: int, what: str,
                     shown_as: str | os.PathLike | None = None) -> None:
    """One-line error unless ``directory``'s file system has ``needed`` bytes free for ``what``
    (the message names ``shown_as``, e.g. the output directory a scratch directory is in).

    Some writers cannot fail cleanly on a full disk (LLVM in the TFLite converter aborts the
    process): they are refused before they start.
    """
    import shutil

    from ssc_deploy.errors import SscDeployError

    free = shutil.disk_usage(directory).free
    if free < needed:
        raise SscDeployError(f"{shown_as or directory}: not enough free space for {what} "
                             f"({free / 2**20:.1f} MiB free, about {needed / 2**20:.1f} MiB needed)")
