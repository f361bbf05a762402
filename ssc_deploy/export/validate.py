"""Export step 1, validate: the options, the targets' packages and the output paths, before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from ssc_deploy.atomic import check_writable_dir
from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import TARGET_NAMES, by_target

from .autotune import AUTO
from .lowerings import get_lowering
from .manifest import manifest_path
from .targets import TARGETS

MIN_OPSET, MAX_OPSET = 13, 21


@dataclass(frozen=True)
class ExportOptions:
    """How to export: checked by :func:`check_options`."""

    targets: tuple[str, ...]
    lowering: str
    opset: int
    nhwc: bool
    strict: bool
    atol: float
    n_verify: int


@dataclass(frozen=True)
class OutputPlan:
    """Where each target's artifact goes (its manifest beside it)."""

    out_dir: Path
    finals: dict[str, Path]  # target -> artifact path
    created: bool  # out_dir did not exist before this export


def resolve_targets(targets: str | Iterable[str]) -> list[str]:
    """Normalise ``"all"``, a comma list or an iterable of names into known target names (in order)."""
    items = [targets] if isinstance(targets, str) else list(targets)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                names.extend(TARGET_NAMES)
            elif name in TARGET_NAMES:
                names.append(name)
            else:
                raise SscDeployError(f"unknown target '{name}' (use one of: {', '.join(TARGET_NAMES)}, all)")
    if not names:
        raise SscDeployError(f"no target given (use one of: {', '.join(TARGET_NAMES)}, all)")
    return list(dict.fromkeys(names))


def check_options(targets: str | Iterable[str], *, lowering: str, opset: int, nhwc: bool, strict: bool,
                  atol: float, n_verify: int) -> ExportOptions:
    """The options with the targets resolved; one-line error for the first bad one."""
    names = resolve_targets(targets)
    if lowering != AUTO:  # auto: chosen per target by measurement (export/autotune.py)
        get_lowering(lowering)
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise SscDeployError(f"opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    if not (atol > 0 and np.isfinite(atol)):
        raise SscDeployError(f"atol must be a positive number, got {atol}")
    if n_verify < 1:
        raise SscDeployError(f"n_verify must be at least 1, got {n_verify}")
    return ExportOptions(tuple(names), lowering, int(opset), bool(nhwc), bool(strict), float(atol), int(n_verify))


def check_installed(targets: Iterable[str]) -> None:
    """Raise the one-line 'install the extra' error for the first target whose packages are missing."""
    for name in targets:
        TARGETS[name].check_installed()


def plan_outputs(out_dir: str | os.PathLike, name: str, targets: Iterable[str], force: bool) -> OutputPlan:
    """Create ``out_dir`` if needed and check that every artifact and manifest may be written.

    Existing files are refused unless ``force``; a directory in a file's place always is.
    """
    out_dir = Path(out_dir)
    finals = {t: out_dir / f"{name}{by_target(t).suffix}" for t in targets}
    created = not out_dir.exists()
    check_writable_dir(out_dir)
    existing = [p for f in finals.values() for p in (f, manifest_path(f)) if p.exists() or p.is_symlink()]
    for p in existing:
        if p.is_dir():  # --force replaces files only: os.replace cannot put a file over a directory
            raise SscDeployError(f"{p}: exists and is a directory; nothing was exported")
    if existing and not force:
        raise SscDeployError(f"{existing[0]}: already exists (use --force to overwrite)")
    return OutputPlan(out_dir, finals, created)
