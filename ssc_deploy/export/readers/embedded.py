"""The metadata an artifact carries inside itself (what an app reads without the manifest), per format:
each runtime's folder says how in its ``embedded.py`` (``read(path)``, ``rows(metadata)``, ``NONE``).

Bad metadata is the one-line error: a label file that is not UTF-8, class names whose count is not
the output's, ``classes`` that are not a list of strings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError, one_line


def _module(target: str):
    """``ssc_deploy.export.targets.<target>.embedded``: how that format's files carry metadata."""
    import importlib

    from ssc_deploy.runtimes import by_target

    return importlib.import_module(f"ssc_deploy.export.targets.{by_target(target).target}.embedded")


def embedded_metadata(target: str, path: Path) -> dict[str, Any] | None:
    """The metadata embedded in the ``target`` artifact at ``path``; None when it carries none,
    ``{"unreadable": why}`` when the package that reads it is missing. One-line error for bad metadata."""
    reader = _module(target).read
    try:
        return reader(Path(path))
    except SscDeployError:
        raise
    except Exception as err:  # noqa: BLE001 - a crafted file's tables are one line, never a traceback
        raise SscDeployError(f"{path}: its embedded metadata is unreadable ({type(err).__name__}: {one_line(err)})") from None


def metadata_rows(target: str, metadata: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Field/value rows of a file's embedded metadata (one "none" row when it has none)."""
    module = _module(target)
    if metadata is None:
        return [("metadata", module.NONE)]
    if "unreadable" in metadata:
        return [("metadata", str(metadata["unreadable"]))]
    return module.rows(metadata)
