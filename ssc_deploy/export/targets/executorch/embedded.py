"""What a ``.pte`` carries inside itself for an app: nothing (an ExecuTorch program has no key/value
metadata section; the manifest beside it carries the facts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

NONE = "none (an ExecuTorch program has no metadata section: the manifest beside it carries the facts)"


def read(path: Path) -> None:
    """Always None: there is no metadata to read."""
    return None


def rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """No rows (:func:`read` never returns metadata)."""
    return []
