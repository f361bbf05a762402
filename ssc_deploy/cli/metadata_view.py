"""``ssc-deploy inspect FILE``'s table of the metadata the file carries itself
(:func:`ssc_deploy.export.readers.embedded.embedded_metadata`): all of it data, never markup."""

from __future__ import annotations

import json
from typing import Any

from ssc_deploy.display import as_text

PTE_NONE = "none (an ExecuTorch program has no metadata section: the manifest beside it carries the facts)"


def metadata_rows(target: str, metadata: dict[str, Any] | None) -> list[tuple[str, str]]:
    """Field/value rows of a file's embedded metadata (one "none" row when it has none)."""
    if metadata is None:
        return [("metadata", PTE_NONE if target == "executorch" else "none")]
    if "unreadable" in metadata:
        return [("metadata", str(metadata["unreadable"]))]
    if target == "tflite":
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
    rows = [(f"metadata_props {k}", v if isinstance(v, str) else json.dumps(v))
            for k, v in metadata.get("metadata_props", {}).items()]
    if metadata.get("ort_file"):
        ort = metadata["ort_file"]
        rows.append(("ORT-format file", f"{ort['file']} ({ort['bytes']:,} bytes) beside it"))
    return rows


def print_metadata(console, target: str, metadata: dict[str, Any] | None) -> None:
    """Print the embedded-metadata table of one artifact."""
    from rich.table import Table

    table = Table("field", "value", show_header=False, title="Metadata in the file")
    for key, value in metadata_rows(target, metadata):
        table.add_row(as_text(key), as_text(value))
    console.print(table)


def _short(values) -> str:
    return "?" if values is None else "[" + ", ".join(f"{v:.4g}" for v in values) + "]"
