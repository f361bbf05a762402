"""What ``ssc-deploy bench`` and ``ssc-deploy results`` do, behind the thin CLI: progress bar,
table, JSON/CSV/report outputs and the results store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ssc_deploy.atomic import write_text_atomic
from ssc_deploy.errors import SscDeployError


def _console():
    """A console that never squeezes the table: wide when writing to a file or pipe."""
    import sys

    from rich.console import Console

    return Console() if sys.stdout.isatty() else Console(width=200)


def resolve_devices(specs: list[str]) -> list:
    """``--device`` values to :class:`Device` objects (one-line error for unknown ones)."""
    from ssc_deploy.devices import resolve_device

    seen, out = set(), []
    for s in specs:
        if s in seen:
            raise SscDeployError(f"--device {s} given twice")
        seen.add(s)
        out.append(resolve_device(s))
    return out


def measure_with_progress(sources: list, settings, devices: list, work_dir: Path | None, console=None) -> dict[str, Any]:
    """Run the harness with a rich progress bar (one tick per measurement)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from .harness import run_bench

    console = console or _console()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=False) as progress:
        task = progress.add_task("preparing (exports, inputs, reference logits)", total=None)
        started = {"n": 0}

        def on_plan(total: int) -> None:
            progress.update(task, total=total, completed=0, description="measuring")

        def tick(label: str) -> None:
            if started["n"]:
                progress.advance(task)
            started["n"] += 1
            progress.update(task, description=label)

        result = run_bench(sources, settings, devices=devices, work_dir=work_dir, progress=tick, on_plan=on_plan)
        progress.update(task, completed=len(result["rows"]), description="done")
    return result


def publish(result: dict[str, Any], json_out: Path | None = None, csv_out: Path | None = None,
            report: Path | None = None, db: Path | None = None, store: bool = True, console=None) -> int | None:
    """Print the table and write every output asked for; return the stored run id."""
    from .table import print_result, write_csv, write_json

    console = console or _console()
    run_id = None
    store_error = None
    if store:
        from .store import save_run

        try:
            run_id = save_run(result, db)
            result["run_id"] = run_id
        except SscDeployError as err:  # the other outputs are still written first
            store_error = err
    print_result(result, console)
    if json_out:
        write_json(result, json_out)
        console.print(f"JSON: {json_out}")
    if csv_out:
        write_csv(result, csv_out)
        console.print(f"CSV: {csv_out}")
    if report:
        from .report import write_report

        console.print(f"report: {write_report(result, report)}")
    if run_id is not None:
        console.print(f"[dim]stored as run {run_id} in {db or _default_db()} (ssc-deploy results)[/]", highlight=False)
    if store_error is not None:
        raise store_error
    return run_id


def _default_db() -> Path:
    from .store import default_db_path

    return default_db_path()


def run_and_publish(sources: list, baselines: list[str], ratio_to: str | None, runtimes: list[str] | None,
                    threads: list[int], warmup: int, runs: int, data: str | None, n_eval: int, devices: list[str],
                    runners: dict[str, str], pin_cores: str | None, atol: float, timeout: float,
                    json_out: Path | None, csv_out: Path | None, report: Path | None, db: Path | None,
                    store: bool, work_dir: Path | None, lowering: str) -> int:
    """The whole ``bench`` command; returns the exit code (1 when any row did not pass).

    Rows that failed keep their reason in the table and outputs; the other rows' results
    are written and stored all the same.
    """
    from .harness import BenchSettings

    if report is not None and report.exists() and not report.is_dir():
        raise SscDeployError(f"--report {report}: exists and is not a directory")
    if ratio_to and ratio_to.lower() not in [b.lower() for b in baselines]:
        raise SscDeployError(f"--ratio-to {ratio_to}: not among --baselines ({', '.join(baselines) or 'none'})")
    settings = BenchSettings(
        runtimes=runtimes, threads=threads, warmup=warmup, runs=runs, data=data, n_eval=n_eval, baselines=baselines,
        ratio_to=ratio_to.lower() if ratio_to else None, atol=atol, timeout=timeout, runners=runners,
        pin_cores=pin_cores, lowering=lowering,
    )
    devs = resolve_devices(devices)
    console = _console()
    result = measure_with_progress(sources, settings, devs, work_dir, console)
    publish(result, json_out, csv_out, report, db, store, console)
    bad = [r for r in result["rows"] if r["status"] != "ok"]
    if bad:
        raise SscDeployError(f"{len(bad)} of {len(result['rows'])} measurements did not pass (see the status column); "
                             "the other results were kept", exit_code=1)
    return 0


def list_cmd(db: Path | None, limit: int, json_out: Path | None) -> None:
    """Print the recent runs."""
    from rich.table import Table

    from .store import list_runs

    runs = list_runs(db, limit)
    t = Table(title="stored benchmark runs (newest first)", header_style="bold")
    for c in ("run", "created", "tool", "status", "devices", "runtimes", "threads", "rows ok", "label"):
        t.add_column(c)
    for r in runs:
        t.add_row(str(r.id), r.created, r.tool_version, r.status, ", ".join(d.get("name", "?") for d in r.devices),
                  ", ".join(r.settings.get("runtimes") or []), ",".join(map(str, r.settings.get("threads") or [])),
                  f"{r.n_ok}/{r.n_rows}", r.label)
    _console().print(t)
    if json_out:
        write_text_atomic(json_out, json.dumps([r.__dict__ for r in runs], indent=2) + "\n")


def show_cmd(run_id: int, db: Path | None) -> None:
    """Print one stored run's table."""
    from .store import load_run_rows
    from .table import build_table

    rows = load_run_rows(run_id, db)
    ratio_to = next((r.get("ratio_to") for r in rows if r.get("ratio_to")), None)
    _console().print(build_table({"rows": rows, "settings": {"ratio_to": ratio_to}}))


def compare_cmd(run_a: int, run_b: int, db: Path | None, json_out: Path | None) -> int:
    """Print B against A row by row; a regression ends in a one-line error with exit code 1 (for CI)."""
    from rich.table import Table

    from .store import compare_runs

    if run_b is None:
        raise SscDeployError("--compare takes two run ids: RUN_A RUN_B")
    comp = compare_runs(run_a, run_b, db)
    t = Table(title=f"run {run_b} against run {run_a}", header_style="bold")
    for c in ("device", "model", "runtime", "thr", f"ms (run {run_a})", f"ms (run {run_b})", "ratio", "top-1 A",
              "top-1 B", "delta", "verdict"):
        t.add_column(c, justify="right" if c not in ("device", "model", "runtime", "verdict") else "left")

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for c in comp:
        if not (c["in_a"] and c["in_b"]):
            verdict = "[dim]only in run " + (str(run_a) if c["in_a"] else str(run_b)) + "[/]"
        elif c["regression"]:
            verdict = "[red]REGRESSION: " + ", ".join(c["reasons"]) + "[/]"
        else:
            verdict = "[green]ok[/]"
        t.add_row(c["device"], c["model"], c["runtime"], str(c["threads"]), f(c["latency_a_ms"], ".3f"),
                  f(c["latency_b_ms"], ".3f") + (" emul." if c["emulated"] else ""), f(c["latency_ratio"], ".2f") + "x"
                  if c["latency_ratio"] else "-", f(c["top1_a"] * 100 if c["top1_a"] is not None else None, ".1f"),
                  f(c["top1_b"] * 100 if c["top1_b"] is not None else None, ".1f"),
                  f(c["top1_delta"] * 100 if c["top1_delta"] is not None else None, "+.1f"), verdict)
    console = _console()
    console.print(t)
    if json_out:
        write_text_atomic(json_out, json.dumps(comp, indent=2) + "\n")
    n = sum(c["regression"] for c in comp)
    if n:
        raise SscDeployError(f"{n} regression(s) in run {run_b} against run {run_a} (more than 10% slower, "
                             "or lower top-1)", exit_code=1)
    console.print("no regressions")
    return 0
