"""``ssc-deploy inspect FILE``'s table of the metadata the file carries itself
(:func:`ssc_deploy.export.readers.embedded.embedded_metadata`): all of it data, never markup."""

from __future__ import annotations

from typing import Any

from ssc_deploy.display import as_text


def print_metadata(console, target: str, metadata: dict[str, Any] | None) -> None:
    """Print the embedded-metadata table of one artifact."""
    from rich.table import Table

    from ssc_deploy.export.readers.embedded import metadata_rows

    table = Table("field", "value", show_header=False, title="Metadata in the file")
    for key, value in metadata_rows(target, metadata):
        table.add_row(as_text(key), as_text(value))
    console.print(table)
