"""The JSON manifest written beside every artifact, for apps and the benchmark runner.

File: ``<artifact>.manifest.json`` (e.g. ``ssc-net-1-9.onnx.manifest.json``). Schema
``ssc-deploy-manifest/1``::

    {
      "schema": "ssc-deploy-manifest/1",
      "file": "ssc-net-1-9.onnx",            # artifact file name, beside the manifest
      "sha256": "...", "bytes": 812345,       # of the artifact
      "target": "onnx" | "executorch" | "tflite",
      "runtime": "onnxruntime" | "executorch" | "tflite",   # what runs it
      "runtime_version": "1.32.0",            # of the runtime the parity check used
      "exporter": {"torch": "...", "onnx": "...", "opset": 17, ...},
      "model": {"name", "family", "params", "macs", "lowering", "trained": bool},
      "input": {"name", "shape": [1, 3, 32, 32], "dtype": "float32", "layout": "NCHW" | "NHWC",
                "mean": [...], "std": [...], "scale": "pixel/255"},
                # feed (pixel / 255 - mean) / std, per channel, in "layout"
      "output": {"name", "shape": [1, num_classes], "kind": "logits"},
      "classes": ["0", "1", ...],             # index -> class name
      "parity": {"data", "n_images", "max_abs_diff", "top1_agreement", "atol", "passed"},
      "source": {"checkpoint": path | null, "checkpoint_sha256": hex | null,
                 "test_top1": float | null},  # null for an untrained --model export
      "delegation": {...},                    # executorch only: XNNPACK delegation by op
      "op_histogram": {"Conv": 12, ...},      # ops in the artifact's graph
      "rewrite": {"max_abs_diff": ...},       # rewritten vs original PyTorch net
      "ssc_deploy_version": "0.1.0",
      "created": "2026-11-23T18:00:00Z"
    }
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError

SCHEMA = "ssc-deploy-manifest/1"
SUFFIX = ".manifest.json"
REQUIRED = ("schema", "file", "sha256", "bytes", "target", "runtime", "model", "input", "output", "classes", "parity")


def manifest_path(artifact: str | Path) -> Path:
    """Where the manifest of ``artifact`` lives."""
    artifact = Path(artifact)
    return artifact.with_name(artifact.name + SUFFIX)


def dumps(manifest: dict[str, Any]) -> str:
    """The manifest as the indented JSON written to disk."""
    return json.dumps(manifest, indent=2, sort_keys=False) + "\n"


def load_manifest(artifact: str | Path) -> dict[str, Any]:
    """Read the manifest beside ``artifact`` (or a manifest path itself); one-line errors."""
    path = Path(artifact)
    if not path.name.endswith(SUFFIX):
        path = manifest_path(path)
    if not path.exists():
        raise SscDeployError(f"{path}: no manifest (was the artifact exported by ssc-deploy?)")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SscDeployError(f"{path}: not a valid JSON manifest ({err})") from None
    except OSError as err:  # a directory or an unreadable file in the manifest's place
        raise SscDeployError(f"{path}: cannot read the manifest ({err.strerror or err})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise SscDeployError(f"{path}: not an {SCHEMA} manifest")
    missing = [k for k in REQUIRED if k not in data]
    if missing:
        raise SscDeployError(f"{path}: manifest is missing {', '.join(missing)}")
    return data
