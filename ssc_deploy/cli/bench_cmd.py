"""CLI: the `bench` command(s). Thin: parse options, call the library, print."""

from .app import app  # noqa: F401
