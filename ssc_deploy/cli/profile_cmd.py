"""CLI: the `profile` command. Thin: call the library's per-op profiler, print a table or JSON."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from .app import app


@app.command("profile")
def profile_cmd(
    artifact: Path = typer.Argument(..., help="An exported .pte (ExecuTorch) or .onnx (onnxruntime) file."),
    threads: int = typer.Option(1, "--threads", help="Threads the runtime may use."),
    runs: int = typer.Option(50, "--runs", help="Profiled runs (each op's time is its median over these)."),
    warmup: int = typer.Option(10, "--warmup", help="Runs before the profiled ones, not counted."),
    top: int = typer.Option(0, "--top", help="Also list the N slowest single ops in graph order (0: none)."),
    as_json: bool = typer.Option(False, "--json", help="Print the profile as JSON (classes and every op)."),
) -> None:
    """Show where a model's time goes, per op class, from the runtime's own profiler.

    ExecuTorch files are profiled with an ETDump: every XNNPACK operator is listed by name, and any op left to the portable CPU kernels shows up as 'portable <op>'. ONNX files are profiled with onnxruntime's session profiler: convs are classed as dense / grouped / depthwise, with their MACs and GMAC/s. LiteRT's Python wheel has no per-op profiler: profile the .pte of the same network, which runs the same XNNPACK operators.
    """
    from ssc_deploy.op_profile import profile_file, profile_table

    prof = profile_file(artifact, threads=threads, runs=runs, warmup=warmup)
    if as_json:
        print(json.dumps(prof.to_dict(), indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    from ssc_deploy.display import as_text

    console = Console()
    console.print(profile_table(prof))
    if top > 0:
        slow = Table("#", "op", "ms (median)", title=f"{top} slowest single ops")
        ranked = sorted(enumerate(prof.ops), key=lambda kv: -kv[1].ms)[:top]
        for i, op in sorted(ranked, key=lambda kv: kv[0]):
            slow.add_row(str(i), as_text(op.name), f"{op.ms:.4f}")  # names from the file: data, not markup
        console.print(slow)
