"""The console the bench, results and quickstart commands print to."""

from __future__ import annotations


def console():
    """A rich console that never squeezes the table: wide when writing to a file or pipe."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)
