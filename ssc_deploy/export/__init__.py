"""Deployment rewrite and verified export to ONNX, ExecuTorch (.pte, XNNPACK) and TFLite.

>>> from ssc_deploy.export import export_model
>>> results = export_model("run/best.pt", targets="all", out_dir="exports")
>>> results[0].manifest["parity"]["max_abs_diff"]

Names are imported on first use, so ``inspect_artifact`` and ``load_manifest`` work on a
board that has a runtime but no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DEFAULT_N_VERIFY": "exporter",
    "ExportResult": "exporter",
    "export_model": "exporter",
    "resolve_targets": "exporter",
    "TARGETS": "targets",
    "inspect_artifact": "inspect",
    "DEFAULT_LOWERING": "lowerings",
    "apply_lowering": "lowerings",
    "available_lowerings": "lowerings",
    "register_lowering": "lowerings",
    "MANIFEST_SCHEMA": "manifest",
    "load_manifest": "manifest",
    "manifest_path": "manifest",
    "deployment_rewrite": "rewrite",
    "fold_batchnorm": "rewrite",
    "Parity": "verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f".{_EXPORTS[name]}", __name__)
    value = getattr(module, "SCHEMA" if name == "MANIFEST_SCHEMA" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
