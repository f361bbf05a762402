"""The metadata an artifact carries inside itself (what an app reads without the manifest), per format.

- ``.tflite``: TFLite Metadata (:func:`~ssc_deploy.export.targets.tflite.metadata.read_metadata`):
  name, version, description, input normalisation, the label file and its lines.
- ``.onnx``: the model's ``metadata_props`` (key -> value; JSON values decoded), and the ``.ort``
  file beside it, if any.
- ``.pte``: none (an ExecuTorch program has no key/value metadata section; the manifest carries the facts).

Bad metadata is the one-line error: a label file that is not UTF-8, class names whose count is not
the output's, ``classes`` that are not a list of strings.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError

def embedded_metadata(target: str, path: Path) -> dict[str, Any] | None:
    """The metadata embedded in the ``target`` artifact at ``path``; None when it carries none,
    ``{"unreadable": why}`` when the package that reads it is missing. One-line error for bad metadata."""
    reader = _READERS.get(target)
    if reader is None:
        return None
    try:
        return reader(Path(path))
    except SscDeployError:
        raise
    except Exception as err:  # noqa: BLE001 - a crafted file's tables are one line, never a traceback
        from ssc_deploy.errors import one_line

        raise SscDeployError(f"{path}: its embedded metadata is unreadable ({type(err).__name__}: {one_line(err)})") from None


def _tflite(path: Path) -> dict[str, Any] | None:
    from ssc_deploy.export.targets.tflite import metadata as tflite_metadata

    try:
        tflite_metadata.check_installed()
    except SscDeployError as err:
        return {"unreadable": f"TFLite Metadata not read: {err}"}
    return tflite_metadata.read_metadata(path)


def _onnx(path: Path) -> dict[str, Any] | None:
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


_READERS = {"tflite": _tflite, "onnx": _onnx}
