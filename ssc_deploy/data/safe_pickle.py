"""Read the pickled batch files of CIFAR and downsampled ImageNet without running code.

Those data sets ship as Python pickles; ``pickle.load`` on a tampered file can run any
code. :func:`load_pickle` only lets a pickle rebuild plain containers and numpy arrays:
any other global is refused with one line naming the file.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError, one_line

# What numpy arrays (and the bytes in protocol-2 pickles written by Python 3) need.
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused global {module}.{name}")


def load_pickle(path: Path) -> Any:
    """Unpickle ``path`` allowing only data (dicts, lists, numbers, bytes, numpy arrays).

    Python 2 pickles (the CIFAR files) are read with ``encoding="bytes"``, so their dict
    keys come back as ``bytes``; callers look keys up with :func:`get_key`.
    """
    try:
        with open(path, "rb") as f:
            return _RestrictedUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise SscDeployError(f"{path}: file not found") from None
    except pickle.UnpicklingError as err:
        if str(err).startswith("refused global"):
            raise SscDeployError(f"{path}: refused: the pickle holds code or objects other than data ({err})") from None
        raise SscDeployError(f"{path}: not a readable pickle batch file ({err})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, OSError, MemoryError) as err:
        msg = one_line(err)
        raise SscDeployError(f"{path}: truncated or not a pickle batch file ({msg})") from None


def get_key(d: Any, key: str, path: Path) -> Any:
    """``d[key]`` whether the pickle stored the key as ``str`` or ``bytes``; one-line error if absent."""
    if not isinstance(d, dict):
        raise SscDeployError(f"{path}: expected a pickled dict, found {type(d).__name__}")
    for k in (key, key.encode()):
        if k in d:
            return d[k]
    raise SscDeployError(f"{path}: missing the key '{key}'")


def as_str(value: Any) -> str:
    """A class name stored as ``bytes`` (Python 2 pickles) or ``str``."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
