"""Which runtimes a run measures: those asked for, those installed here, or the artifacts' own.

The names, distributions and extras come from the one table, :mod:`ssc_deploy.runtimes`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import RUNTIME_NAMES, RUNTIME_TABLE, by_runtime

if TYPE_CHECKING:
    from .model_under_test import Model


def installed_runtimes() -> list[str]:
    """Runtimes whose Python package is installed here."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for spec in RUNTIME_TABLE:
        try:
            version(spec.dist)
            out.append(spec.runtime)
        except PackageNotFoundError:
            continue
    return out


def check_runtime_names(names: Iterable[str], prefix: str = "") -> None:
    """One-line error (``prefix`` first) naming the first name that is not a runtime."""
    unknown = [rt for rt in names if rt not in RUNTIME_NAMES]
    if unknown:
        raise SscDeployError(f"{prefix}unknown runtime '{unknown[0]}' (use {', '.join(RUNTIME_NAMES)})")


def check_installed_on_host(runtimes: list[str] | None, device_kinds: Iterable[str]) -> None:
    """Runtimes asked for by name must be installed when the host is among the devices."""
    if not runtimes or "host" not in device_kinds:
        return
    installed = installed_runtimes()
    missing = [rt for rt in runtimes if rt in RUNTIME_NAMES and rt not in installed]
    if missing:
        raise SscDeployError(f"runtime '{missing[0]}' is not installed on this host: "
                             f"pip install 'ssc-deploy[{by_runtime(missing[0]).extra}]'")


def runtimes_to_measure(asked: list[str] | None, models: list[Model], from_checkpoint: bool) -> list[str]:
    """The runtimes asked (checked, in order, once each); else every installed one when a checkpoint
    is among the sources or there are none; else the runtimes the models have artifacts for."""
    if asked:
        check_runtime_names(asked)
        return list(dict.fromkeys(asked))
    if from_checkpoint or not models:
        return installed_runtimes()
    return [rt for rt in RUNTIME_NAMES if any(m.has_runtime(rt) for m in models)]
