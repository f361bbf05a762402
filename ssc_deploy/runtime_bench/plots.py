"""Matplotlib for the report's PNGs: loaded headless, and each picture written atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssc_deploy.atomic import atomic_path
from ssc_deploy.errors import missing_package


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display); one-line error naming the extra without it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise missing_package("matplotlib", "report") from None
    return plt


def save_png(fig: Any, path: Path) -> None:
    """Write ``fig`` to ``path`` as PNG through a temporary file renamed into place."""
    with atomic_path(path, suffix=".png.tmp") as tmp:
        fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
