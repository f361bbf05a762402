"""The registry of shift lowerings: whole-model transforms applied to the BN-folded eval net."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from torch import nn

from ssc_deploy.errors import SscDeployError

Lowering = Callable[["nn.Module"], "nn.Module"]


@dataclass(frozen=True)
class LoweringEntry:
    """One registered lowering; ``runtimes`` names the runtimes it is meant for (None: all)."""

    name: str
    description: str
    fn: Lowering
    runtimes: tuple[str, ...] | None = None


_LOWERINGS: dict[str, LoweringEntry] = {}


def register_lowering(name: str, description: str, runtimes: tuple[str, ...] | list[str] | None = None):
    """Decorator registering ``fn(model) -> model`` under ``name``.

    ``fn`` receives the BN-folded eval model (it may modify it in place) and must return a net
    with no ``Shift`` left that computes the same function using plain graph ops only.
    """

    def deco(fn: Lowering) -> Lowering:
        if name in _LOWERINGS:
            raise ValueError(f"lowering {name!r} registered twice")
        _LOWERINGS[name] = LoweringEntry(name, description, fn, tuple(runtimes) if runtimes else None)
        return fn

    return deco


def available_lowerings() -> dict[str, LoweringEntry]:
    """Every registered lowering by name."""
    return dict(_LOWERINGS)


def get_lowering(name: str) -> LoweringEntry:
    """The entry for ``name``, or a one-line error listing the known names."""
    if name not in _LOWERINGS:
        raise SscDeployError(f"unknown lowering '{name}' (known: {', '.join(sorted(_LOWERINGS))})")
    return _LOWERINGS[name]


def apply_lowering(model: "nn.Module", name: str) -> "nn.Module":
    """Apply the lowering ``name`` to ``model`` (BN-folded, eval) and return the result."""
    return get_lowering(name).fn(model)
