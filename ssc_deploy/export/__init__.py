"""Deployment rewrite and verified export to ONNX, ExecuTorch (.pte, XNNPACK) and TFLite.

>>> from ssc_deploy.export import create_model, export_module
>>> results = export_module(create_model("ssc-net-1-9"), torch.zeros(1, 3, 32, 32), targets="all")
>>> from ssc_deploy.export import load_for_export
>>> results = export_module(*load_for_export("run/best.pt"), targets="all", out_dir="exports")
>>> results[0].manifest["parity"]["max_abs_diff"]

Names are imported on first use, so ``inspect_artifact``, ``load_manifest`` and ``Manifest``
work on a board that has a runtime but no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

# name -> module it comes from (relative to this package)
_EXPORTS = {
    "DEFAULT_N_VERIFY": ".options",
    "ModelFacts": ".options",
    "VerifyOptions": ".options",
    "QuantOptions": ".options",
    "TargetOptions": ".options",
    "OnnxOptions": ".targets.onnx.options",
    "TfliteOptions": ".targets.tflite.options",
    "ExecutorchOptions": ".targets.executorch.options",
    "load_for_export": ".exporter",
    "ExportResult": ".exporter",
    "ExportIncomplete": ".commit",
    "export_model": ".exporter",
    "export_module": ".exporter",
    "resolve_targets": ".validate",
    "create_model": "..models",
    "TARGETS": ".targets",
    "inspect_artifact": ".readers.artifact",
    "DEFAULT_LOWERING": ".lowerings",
    "apply_lowering": ".lowerings",
    "available_lowerings": ".lowerings",
    "register_lowering": ".lowerings",
    "MANIFEST_SCHEMA": ".manifest",
    "Manifest": ".manifest",
    "load_manifest": ".manifest",
    "manifest_path": ".manifest",
    "deployment_rewrite": ".rewrite",
    "fold_batchnorm": ".rewrite",
    "Parity": ".verify",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name], __name__)
    value = getattr(module, "SCHEMA" if name == "MANIFEST_SCHEMA" else name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
