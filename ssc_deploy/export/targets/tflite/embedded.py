"""What a ``.tflite`` carries inside itself for an app: its TFLite Metadata
(:func:`~ssc_deploy.export.targets.tflite.metadata.read_metadata`: name, version, description, input
normalisation, the label file and its lines), shown by ``inspect``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError

NONE = "none"


def read(path: Path) -> dict[str, Any] | None:
    from ssc_deploy.export.targets.tflite import metadata as tflite_metadata

    try:
        tflite_metadata.check_installed()
    except SscDeployError as err:
        return {"unreadable": f"TFLite Metadata not read: {err}"}
    return tflite_metadata.read_metadata(path)


def rows(metadata: dict[str, Any]) -> list[tuple[str, str]]:
    """Field/value rows of what :func:`read` returned."""
    inp, out = metadata["input"], metadata["output"]
    labels = out.get("labels") or []
    return [
        ("name", str(metadata.get("name"))), ("version", str(metadata.get("version"))),
        ("description", str(metadata.get("description"))),
        ("input", f"{inp.get('name')}: (pixel - mean) / std on 0-255 pixels, mean {_short(inp.get('mean_0_255'))}, "
                  f"std {_short(inp.get('std_0_255'))}"),
        ("output", f"{out.get('name')}: category scores"),
        ("label file", f"{out.get('label_file')} ({len(labels)} names): " + ", ".join(labels[:20])
         + (" ..." if len(labels) > 20 else "") if out.get("label_file") else "none"),
        ("parser version", str(metadata.get("min_parser_version"))),
    ]


def _short(values) -> str:
    return "?" if values is None else "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
