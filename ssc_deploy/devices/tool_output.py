"""What the native tools' output parsers share (``export/targets/<target>/native_tool.py``)."""

from __future__ import annotations

import re

NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"  # a number in a tool's output


def strip_prefixes(text: str) -> list[str]:
    """Lines without the log prefixes tools add (``INFO: ``, ``I tflite/...: ``, timestamps)."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:\[?[A-Z]+\]?:?\s+|[IWE]\d{4}\s+[\d:.]+\s+\d+\s+\S+\]\s*)", "", line)
        out.append(line.strip())
    return out
