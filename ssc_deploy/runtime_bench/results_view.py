"""What ``ssc-deploy results`` prints: the stored runs, one run's table, two runs compared."""

from __future__ import annotations

import json
from pathlib import Path

from ssc_deploy.atomic import write_text_atomic
from ssc_deploy.display import as_text, markup_safe
from ssc_deploy.errors import SscDeployError

from .console import console as make_console


def _check_json_out(json_out: Path | None, db: Path | None) -> None:
    """``--json`` may never be the store it lists (``results --db S --json S`` would replace the history)."""
    from ssc_deploy.output_paths import check_outputs

    from .store import default_db_path

    check_outputs([("--json", json_out)], stores=[(db or default_db_path(), "the results store (--db)")])


def list_cmd(db: Path | None, limit: int, json_out: Path | None) -> None:
    """Print the recent runs."""
    from rich.table import Table

    from .store import list_runs

    _check_json_out(json_out, db)

    runs = list_runs(db, limit)
    t = Table(title="stored benchmark runs (newest first)", header_style="bold")
    for c in ("run", "created", "tool", "status", "devices", "runtimes", "threads", "rows ok", "label"):
        t.add_column(c)
    for r in runs:
        t.add_row(str(r.id), as_text(r.created), as_text(r.tool_version), as_text(r.status),
                  as_text(", ".join(str(d.get("name", "?")) for d in r.devices)),
                  as_text(", ".join(map(str, r.settings.get("runtimes") or []))),
                  ",".join(map(str, r.settings.get("threads") or [])), f"{r.n_ok}/{r.n_rows}", as_text(r.label))
    make_console().print(t)
    if json_out:
        write_text_atomic(json_out, json.dumps([r.__dict__ for r in runs], indent=2) + "\n")


def show_cmd(run_id: int, db: Path | None) -> None:
    """Print one stored run's table."""
    from .store import load_run_rows
    from .table import build_table

    rows = load_run_rows(run_id, db)
    ratio_to = next((r.get("ratio_to") for r in rows if r.get("ratio_to")), None)
    make_console().print(build_table({"rows": rows, "settings": {"ratio_to": ratio_to}}))


def compare_cmd(run_a: int, run_b: int, db: Path | None, json_out: Path | None) -> int:
    """Print B against A row by row; a regression ends in a one-line error with exit code 1 (for CI)."""
    from rich.table import Table

    from .store_compare import compare_runs

    if run_b is None:
        raise SscDeployError("--compare takes two run ids: RUN_A RUN_B")
    _check_json_out(json_out, db)
    comp = compare_runs(run_a, run_b, db)
    t = Table(title=f"run {run_b} against run {run_a}", header_style="bold")
    for c in ("device", "model", "runtime", "prec", "thr", f"ms (run {run_a})", f"ms (run {run_b})", "ratio",
              "top-1 A", "top-1 B", "delta", "verdict"):
        t.add_column(c, justify="right" if c not in ("device", "model", "runtime", "prec", "verdict") else "left")

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for c in comp:
        if not (c["in_a"] and c["in_b"]):
            verdict = "[dim]only in run " + (str(run_a) if c["in_a"] else str(run_b)) + "[/]"
        elif c["regression"]:
            verdict = "[red]REGRESSION: " + markup_safe(", ".join(c["reasons"])) + "[/]"
        else:
            verdict = "[green]ok[/]"
        t.add_row(as_text(c["device"]), as_text(c["model"]), as_text(c["runtime"]), as_text(c["precision"]),
                  str(c["threads"]), f(c["latency_a_ms"], ".3f"),
                  f(c["latency_b_ms"], ".3f") + (" emul." if c["emulated"] else ""), f(c["latency_ratio"], ".2f") + "x"
                  if c["latency_ratio"] else "-", f(c["top1_a"] * 100 if c["top1_a"] is not None else None, ".1f"),
                  f(c["top1_b"] * 100 if c["top1_b"] is not None else None, ".1f"),
                  f(c["top1_delta"] * 100 if c["top1_delta"] is not None else None, "+.1f"), verdict)
    out = make_console()
    out.print(t)
    if json_out:
        write_text_atomic(json_out, json.dumps(comp, indent=2) + "\n")
    n = sum(c["regression"] for c in comp)
    if n:
        raise SscDeployError(f"{n} regression(s) in run {run_b} against run {run_a} (more than 10% slower, "
                             "or lower top-1)", exit_code=1)
    out.print("no regressions")
    return 0
