"""An output is never one of the command's inputs: every command that writes files checks here first.

Files are compared as the file system sees them (``os.path.samefile``: same device and inode),
so a symlink or a hard link to an input is that input. A path that does not exist yet is
compared by its resolved name (a store about to be created is still the store).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

from ssc_deploy.errors import SscDeployError

# (path, what it is to the command, e.g. "the checkpoint given as SOURCE")
Named = tuple[str | os.PathLike, str]
# Bytes a file name may have on Linux file systems (ext4, xfs, btrfs, tmpfs) ...
NAME_MAX = 255
# ... less what a temporary name beside it adds (".NAME.XXXXXXXX.SUFFIX.tmp", ".NAME.export.XXXXXXXX").
TEMP_NAME_EXTRA = 32


def check_output_name(option: str, path: str | os.PathLike[str]) -> None:
    """One-line :class:`SscDeployError` for an output path no writer here can create: one that is not
    valid UTF-8 (the native converters take text paths) or whose file name, with the temporary name
    it is first written under, is longer than a file system allows."""
    p = Path(path)
    try:
        str(p).encode("utf-8")
    except UnicodeEncodeError:
        shown = os.fsencode(p).decode("ascii", "backslashreplace")
        raise SscDeployError(f"{option} {shown}: is not valid UTF-8 text; give a path in UTF-8") from None
    size = len(p.name.encode("utf-8"))
    if size + TEMP_NAME_EXTRA > NAME_MAX:
        raise SscDeployError(f"{option}: the file name {p.name[:40]}... is {size} bytes; names here may have at "
                             f"most {NAME_MAX - TEMP_NAME_EXTRA} (file systems allow {NAME_MAX})")


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether ``a`` and ``b`` name one file (through symlinks and hard links too)."""
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):  # one of them does not exist (yet), or a name the OS refuses
        return os.path.realpath(a) == os.path.realpath(b)


def input_files(path: str | os.PathLike[str]) -> list[Path]:
    """A source file and the files read with it: an artifact's manifest, a ``.pt2``'s sidecar."""
    from ssc_deploy.export.manifest import manifest_path

    p = Path(path)
    return [p, manifest_path(p), p.with_name(p.name + ".json")]


def check_outputs(outputs: Sequence[tuple[str, str | os.PathLike[str] | None]], inputs: Iterable[Named] = (),
                  stores: Iterable[Named] = (), force: bool = False) -> None:
    """One-line :class:`SscDeployError` when an output (``(option, path)``; None: not asked for) cannot
    be named (:func:`check_output_name`), is one of ``inputs`` (unless ``force``), a results store in
    ``stores`` (even with ``force``: the store is the history of every run) or another output.
    """
    inputs, stores = list(inputs), list(stores)
    given = [(option, Path(path)) for option, path in outputs if path is not None]
    for option, path in given:
        check_output_name(option, path)
    for i, (option, path) in enumerate(given):
        for store, what in stores:
            if same_file(path, store):
                raise SscDeployError(f"{option} {path}: is {what}; writing there would destroy it (pick another file)")
        for other_option, other in given[:i]:
            if same_file(path, other):
                raise SscDeployError(f"{option} {path}: is also the {other_option} file (give each output its own file)")
        if force:
            continue
        for source, what in inputs:
            if Path(source).exists() and same_file(path, source):
                raise SscDeployError(f"{option} {path}: is {what} ({source}); pick another file, "
                                     "or --force to overwrite it")
