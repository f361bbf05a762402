"""ssc-deploy: train, export and benchmark Super Sparse Convolutional networks for mobile.

The Python API (imported on first use, so ``import ssc_deploy`` needs no torch)::

    from ssc_deploy import create_model, export_module
    net = create_model("ssc-net-1-9", num_classes=10, in_size=32)
    results = export_module(net, torch.zeros(1, 3, 32, 32), targets="all")
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# name -> module it comes from
_API = {
    "create_model": "ssc_deploy.models",
    "export_module": "ssc_deploy.export.exporter",
}

__all__ = ["__version__", *sorted(_API)]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
