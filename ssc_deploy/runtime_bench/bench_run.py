"""What ``ssc-deploy bench`` does behind the thin CLI: progress bar, table, JSON/CSV/report outputs
and the results store. ``ssc-deploy results`` is in :mod:`.results_view`."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rich.text import Text

from ssc_deploy.display import markup_safe
from ssc_deploy.errors import SscDeployError

from .console import console as make_console
from .settings import BenchSettings


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

    console = console or make_console()
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
            progress.update(task, description=markup_safe(label))  # model names are data, not markup

        result = run_bench(sources, settings, devices=devices, work_dir=work_dir, progress=tick, on_plan=on_plan)
        progress.update(task, completed=len(result["rows"]), description="done")
    return result


def publish(result: dict[str, Any], json_out: Path | None = None, csv_out: Path | None = None,
            report: Path | None = None, db: Path | None = None, store: bool = True, console=None) -> int | None:
    """Print the table and write every output asked for, then store the run; return its id.

    The store is the last step: when it fails, the table, JSON, CSV and report are on disk
    already and its one-line error is raised after them.
    """
    from .table import print_result, write_csv, write_json

    console = console or make_console()
    print_result(result, console)
    if json_out:
        write_json(result, json_out)
        console.print(Text(f"JSON: {json_out}"))
    if csv_out:
        write_csv(result, csv_out)
        console.print(Text(f"CSV: {csv_out}"))
    if report:
        from .report import write_report

        console.print(Text(f"report: {write_report(result, report)}"))
    if not store:
        return None
    from .store import save_run

    run_id = save_run(result, db)
    result["run_id"] = run_id
    console.print(Text(f"stored as run {run_id} in {db or _default_db()} (ssc-deploy results)", style="dim"))
    return run_id


def _default_db() -> Path:
    from .store import default_db_path

    return default_db_path()


@dataclass(frozen=True)
class BenchOutputs:
    """Where a bench run's results go besides the table: ``json_out``, ``csv_out``, ``report`` (a
    directory), the results store ``db`` (None: the default one; ``store=False``: not stored), and
    ``force``: let ``--json``/``--csv`` overwrite a file that is also an input (never the store)."""

    json_out: Path | None = None
    csv_out: Path | None = None
    report: Path | None = None
    db: Path | None = None
    store: bool = True
    force: bool = False


def run_and_publish(sources: list, settings: BenchSettings, devices: list[str],
                    outputs: BenchOutputs = BenchOutputs(), work_dir: Path | None = None) -> int:
    """The whole ``bench`` command; returns the exit code (1 when any row did not pass).

    ``settings`` is checked (and its ``ratio_to`` normalised) before any device is reached. Rows
    that failed keep their reason in the table and outputs; the other rows' results are written and
    stored all the same. ``--json``/``--csv`` equal to a source (or its manifest) are refused
    unless ``outputs.force``, equal to the store always.
    """
    from ssc_deploy.output_paths import check_outputs, input_files

    from .settings import check_settings

    json_out, csv_out, report, db, store = outputs.json_out, outputs.csv_out, outputs.report, outputs.db, outputs.store
    force, baselines, ratio_to = outputs.force, settings.baselines, settings.ratio_to

    stores = [(db or _default_db(), "the results store (--db)")] if store or db else []
    from .report import report_files

    check_outputs([("--json", json_out), ("--csv", csv_out),
                   *(("--report", f) for f in (report_files(report) if report is not None else []))],
                  inputs=[(f, "an input of this run") for s in sources for f in input_files(s)],
                  stores=stores, force=force)

    if report is not None and report.exists() and not report.is_dir():
        raise SscDeployError(f"--report {report}: exists and is not a directory")
    if ratio_to and ratio_to.lower() not in [b.lower() for b in baselines]:
        raise SscDeployError(f"--ratio-to {ratio_to}: not among --baselines ({', '.join(baselines) or 'none'})")
    settings = replace(settings, ratio_to=ratio_to.lower() if ratio_to else None)
    check_settings(settings)  # every number checked before a device is reached
    devs = resolve_devices(devices)
    if store:  # a store that cannot be written is found now, not after the measurements
        from .store import check_writable

        check_writable(db)
    console = make_console()
    result = measure_with_progress(sources, settings, devs, work_dir, console)
    publish(result, json_out, csv_out, report, db, store, console)
    bad = [r for r in result["rows"] if r["status"] != "ok"]
    if bad:
        raise SscDeployError(f"{len(bad)} of {len(result['rows'])} measurements did not pass (see the status column); "
                             "the other results were kept", exit_code=1)
    return 0
