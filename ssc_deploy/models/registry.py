"""Models register by name, as in timm: ``create_model("ssc-net-3-9")``."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable

from ssc_deploy.errors import SscDeployError


@dataclass(frozen=True)
class ModelEntry:
    """One registered architecture (or a pattern of them, like ``ssc-net-B-G``)."""

    name: str
    family: str
    builder: Callable[..., Any]
    description: str = ""
    pattern: re.Pattern | None = None
    # Parameterised entries list a few concrete names for `ssc-deploy models`.
    examples: tuple[str, ...] = field(default_factory=tuple)


_REGISTRY: dict[str, ModelEntry] = {}
# Up to these, a fixed (not parameterised) architecture is far inside the size budget (models/budget.py).
KNOWN_SMALL_SIZE, KNOWN_SMALL_CLASSES = 64, 1000


def register_model(
    name: str,
    family: str,
    description: str = "",
    pattern: str | None = None,
    examples: tuple[str, ...] = (),
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator registering a builder ``fn(num_classes, in_size, **match_groups) -> nn.Module``.

    With ``pattern`` (a regex with named groups), one entry serves a whole family of names;
    the named groups are passed to the builder as strings.
    """

    def deco(fn: Callable[..., Any]) -> Callable[..., Any]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = ModelEntry(
            name=name,
            family=family,
            builder=fn,
            description=description,
            pattern=re.compile(pattern) if pattern else None,
            examples=tuple(examples),
        )
        return fn

    return deco


def _lookup(name: str) -> tuple[ModelEntry, dict[str, str]]:
    key = name.strip().lower()
    if key in _REGISTRY and _REGISTRY[key].pattern is None:
        return _REGISTRY[key], {}
    for entry in _REGISTRY.values():
        if entry.pattern is not None:
            m = entry.pattern.fullmatch(key)
            if m:
                return entry, m.groupdict()
    known = ", ".join(list_models())
    raise SscDeployError(f"unknown model '{name}' (known: {known})")


def check_size(num_classes: int, in_size: int) -> None:
    """Refuse class counts and input sizes no model here can take, with one clear line."""
    from ssc_deploy.numeric import check_int

    check_int("num_classes", num_classes, 1)
    check_int("in_size", in_size, 4, note="pixels")


def create_model(name: str, num_classes: int = 10, in_size: int = 32, **kwargs: Any):
    """Build the named architecture with fresh weights (``torch.nn.Module``).

    The class count and input size are checked here, once for every family, and a net too big
    to build (parameters, MACs, activation memory; :mod:`ssc_deploy.models.budget`) is refused.
    """
    from .budget import check_budget

    entry, groups = _lookup(name)
    check_size(num_classes, in_size)
    if entry.pattern is not None or in_size > KNOWN_SMALL_SIZE or num_classes > KNOWN_SMALL_CLASSES:
        # a fixed architecture at a small input is known small: not estimated (a meta trace costs 0.1-0.6 s)
        check_budget(name.strip().lower(), entry.builder, groups, int(num_classes), int(in_size))
    model = entry.builder(num_classes=num_classes, in_size=in_size, **groups, **kwargs)
    model.model_name = name.strip().lower()
    model.num_classes = num_classes
    model.in_size = in_size
    return model


def model_family(name: str) -> str:
    """The family a model name belongs to (``ssc-net``, ``mobilenetv2``, ...)."""
    return _lookup(name)[0].family


def known_family(name: str) -> str | None:
    """The family of a zoo name; None for a name the zoo does not know."""
    try:
        return model_family(name)
    except SscDeployError:
        return None


def model_summary(name: str, num_classes: int = 10, in_size: int = 32) -> dict:
    """Name, family, parameters, MACs and description of one registered model, as plain data."""
    from .complexity import count_macs, count_params

    family = model_family(name)
    description = next((e.description for e in registry_entries() if e.family == family), "")
    model = create_model(name, num_classes=num_classes, in_size=in_size)
    return {
        "name": model.model_name,
        "family": family,
        "params": count_params(model),
        "macs": count_macs(model, in_size),
        "num_classes": num_classes,
        "in_size": in_size,
        "description": description,
    }


def list_models() -> list[str]:
    """Every concrete name the zoo offers (parameterised families by their examples)."""
    names: list[str] = []
    for entry in _REGISTRY.values():
        names.extend(entry.examples if entry.pattern is not None else (entry.name,))
    return names


def registry_entries() -> list[ModelEntry]:
    """The raw registry entries, for tables and docs."""
    return list(_REGISTRY.values())
