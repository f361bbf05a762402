"""What an ``.onnx`` carries inside itself for an app: its ``metadata_props`` (key -> value; JSON values
decoded) and the ``.ort`` file beside it, if any (shown by ``inspect``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError

NONE = "none"


def read(path: Path) -> dict[str, Any] | None:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    props = {p.key: _decoded(p.value) for p in model.metadata_props}
    if "classes" in props:
        classes = props["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise SscDeployError(f"{path}: metadata_props 'classes' is not a JSON list of strings")
        dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
        if len(dims) == 2 and dims[1] and dims[1] != len(classes):
            raise SscDeployError(f"{path}: metadata_props 'classes' has {len(classes)} names for {dims[1]} outputs")
    from ssc_deploy.export.targets.onnx.ort_format import ort_path

    ort = ort_path(path)
    result: dict[str, Any] = {"metadata_props": props}
    if ort.exists():
        result["ort_file"] = {"file": ort.name, "bytes": ort.stat().st_size}
    return result if props or ort.exists() else None


def _decoded(value: str) -> Any:
    """A metadata value as the exporter wrote it: JSON for lists and numbers, else the plain string."""
    try:
        return json.loads(value)
    except ValueError:
        return value


def rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """Field/value rows of what :func:`read` returned."""
    found = [(f"metadata_props {k}", v if isinstance(v, str) else json.dumps(v))
             for k, v in metadata.get("metadata_props", {}).items()]
    if metadata.get("ort_file"):
        ort = metadata["ort_file"]
        found.append(("ORT-format file", f"{ort['file']} ({ort['bytes']:,} bytes) beside it"))
    return found
