"""Text read from files (model and class names, manifest fields) shown as data, never as markup.

A name in a manifest or checkpoint may hold anything: rich markup (``[/bold]``), newlines that
would split a one-line error, NUL, lone surrogates a UTF-8 terminal cannot encode, or Markdown
that would reshape a report table. These helpers make such text printable as it is.
"""

from __future__ import annotations

from typing import Any

_CONTROL = {i: f"\\x{i:02x}" for i in (*range(0x20), 0x7F)} | {0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}


def shown(value: Any) -> str:
    """``value`` as one printable line: control characters and lone surrogates as backslash escapes."""
    text = value if isinstance(value, str) else str(value)
    text = text.translate(_CONTROL)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def as_text(value: Any, style: str = ""):
    """A rich ``Text`` of ``value`` (:func:`shown`): printed verbatim, no markup is interpreted."""
    from rich.text import Text

    return Text(shown(value), style=style)


def markup_safe(value: Any) -> str:
    """``value`` (:func:`shown`) escaped for a string that rich will parse as markup."""
    from rich.markup import escape

    return escape(shown(value))


def md_cell(value: Any) -> str:
    """``value`` (:func:`shown`) escaped for a Markdown table cell or heading."""
    text = shown(value)
    for ch in "\\`*_{}[]<>()#+!|~":
        text = text.replace(ch, "\\" + ch)
    return text
