"""CLI: the `models` command. Thin: parse options, call the library, print."""

from __future__ import annotations

import json
from typing import List, Optional

import typer

from .app import app


@app.command("models")
def models_command(
    names: Optional[List[str]] = typer.Argument(
        None, help="Models to describe (any registered name, e.g. ssc-net-5-9); default: the whole zoo's examples."
    ),
    num_classes: int = typer.Option(10, "--num-classes", help="Classes of the classifier head the counts assume."),
    in_size: int = typer.Option(32, "--in-size", help="Input height and width in pixels the MAC counts assume."),
    as_json: bool = typer.Option(
        False, "--json", help="Print a JSON list of {name, family, params, macs, ...} instead of a table."
    ),
) -> None:
    """List the model zoo with parameters and multiply-accumulates (MACs) per image."""
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ssc_deploy.models import list_models
    from ssc_deploy.models.registry import model_summary
    from ssc_deploy.models.registry import check_size

    check_size(num_classes, in_size)
    wanted = list(names) if names else list_models()
    rows = []
    err_console = Console(stderr=True)
    with Progress(console=err_console, transient=True, disable=not err_console.is_terminal) as progress:
        task = progress.add_task("counting", total=len(wanted))
        for name in wanted:
            progress.update(task, description=f"counting {name}")
            rows.append(model_summary(name, num_classes=num_classes, in_size=in_size))
            progress.advance(task)
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"ssc-deploy model zoo ({num_classes} classes, {in_size} px input)")
    table.add_column("name", style="bold")
    table.add_column("family")
    table.add_column("params (M)", justify="right")
    table.add_column("MACs (M)", justify="right")
    table.add_column("description")
    for r in rows:
        table.add_row(r["name"], r["family"], f"{r['params'] / 1e6:.3f}", f"{r['macs'] / 1e6:.1f}", r["description"])
    Console().print(table)
