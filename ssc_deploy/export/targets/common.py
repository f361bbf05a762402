"""Small helpers the three targets share."""

from __future__ import annotations

import importlib
import importlib.metadata
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ssc_deploy.errors import missing_package


def require(module: str, package: str, extra: str) -> None:
    """Import ``module`` or raise the one-line 'install the extra' error."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise missing_package(package, extra) from None


def version_of(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def histogram(names) -> dict[str, int]:
    """Op name -> count, most frequent first."""
    return dict(sorted(Counter(names).items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass
class TargetExport:
    """What a target's exporter reports about the file it wrote."""

    input_name: str
    output_name: str
    input_shape: list[int]
    layout: str
    op_histogram: dict[str, int]
    exporter: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
