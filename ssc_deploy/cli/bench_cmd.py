"""CLI: ``bench`` (measure artifacts against baselines) and ``results`` (past runs, regressions).

Thin: options are parsed here, the work is in :mod:`ssc_deploy.runtime_bench`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import RUNTIME_NAMES

from .app import app

_KINDS = ", ".join(RUNTIME_NAMES[:-1]) + " or " + RUNTIME_NAMES[-1]  # "A, B or C" of the runtime names


def split_list(value: str | None) -> list[str]:
    """``"a,b, c"`` -> ``["a", "b", "c"]`` (empty items dropped)."""
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def parse_threads(value: str) -> list[int]:
    """``"1,2"`` -> ``[1, 2]`` with a one-line error for anything else."""
    try:
        threads = [int(v) for v in split_list(value)]
    except ValueError:
        raise SscDeployError(f"--threads takes comma-separated positive integers, got '{value}'") from None
    if not threads or any(t < 1 for t in threads):
        raise SscDeployError(f"--threads takes comma-separated positive integers, got '{value}'")
    return threads


def parse_runners(values: list[str] | None) -> dict[str, str]:
    """``["RUNTIME=/path/to/tool"]`` -> ``{RUNTIME: "/path/to/tool"}`` (RUNTIME: a runtime name of the table)."""
    out: dict[str, str] = {}
    for v in values or []:
        kind, sep, path = v.partition("=")
        kind = kind.strip().lower()
        if not sep or not path.strip():
            raise SscDeployError(f"--runner takes KIND=PATH (KIND: {_KINDS}), got '{v}'")
        if kind not in RUNTIME_NAMES:
            raise SscDeployError(f"--runner: unknown kind '{kind}' (use {_KINDS})")
        out[kind] = path.strip()
    return out


def _check_output_path(path: Path | None, option: str) -> None:
    if path is not None and path.is_dir():
        raise SscDeployError(f"{option} {path}: is a directory, give a file name")


@app.command("bench")
def bench(
    sources: list[str] = typer.Argument(None, help="Artifacts (.onnx, .pte, .tflite, with their .manifest.json) and/or "
                                        "checkpoints (.pt), which are exported first for the runtimes asked."),
    baselines: str = typer.Option("mobilenetv2,igcv3-d-0.7x", "--baselines", "-b",
                                  help="Comma-separated zoo names to compare against ('' for none). A checkpoint or "
                                  "artifact of that name among SOURCES is used as is; otherwise the baseline is built "
                                  "untrained (latency, size and MACs only, marked so)."),
    ratio_to: Optional[str] = typer.Option(None, "--ratio-to", help="Baseline the ratio columns compare with "
                                           "(default: the first baseline)."),
    runtime: Optional[str] = typer.Option(None, "--runtime", "-r", help="Comma-separated runtimes: "
                                          f"{', '.join(RUNTIME_NAMES)} (default: the artifacts' own; every installed "
                                          "one for checkpoints)."),
    threads: str = typer.Option("1", "--threads", "-t", help="Comma-separated CPU thread counts, each measured "
                                "separately (e.g. 1,2)."),
    warmup: Optional[int] = typer.Option(None, "--warmup", help="Untimed inferences before the timed runs (default "
                                         "10; 1 on an emulated device)."),
    runs: Optional[int] = typer.Option(None, "--runs", help="Timed inferences per measurement (latency "
                                       "median/p10/p90 over them; default 50, 3 on an emulated device, whose "
                                       "latency is not an ARM figure)."),
    data: Optional[str] = typer.Option(None, "--data", help="Evaluation data for accuracy and parity: digits "
                                       "(default), cifar10:PATH, cifar100:PATH, imagenet32:PATH, folder:PATH."),
    n_eval: Optional[int] = typer.Option(None, "--n-eval", help="Test images for accuracy and parity (0: all; "
                                         "default 200, 32 on an emulated device: a correctness check)."),
    device: Optional[list[str]] = typer.Option(None, "--device", "-d", help="Where to run: host (default), "
                                               "android[:SERIAL], ssh://user@host[:port], arm64-emulated[:PROFILE] "
                                               "(cortex-a76 default, cortex-a53, neoverse-n1, max; its rows also get "
                                               "ARM instructions per inference). Repeatable: "
                                               "rows get a device column; remote devices run in parallel, the host "
                                               "and the emulated device (same CPU) take turns."),
    runner: Optional[list[str]] = typer.Option(None, "--runner", help="Also time with a native benchmark tool: "
                                               f"KIND=PATH, KIND in {'|'.join(RUNTIME_NAMES)} (repeatable)."),
    pin_cores: Optional[str] = typer.Option(None, "--pin-cores", help="CPU list for taskset when running native "
                                            "tools (e.g. 4-7)."),
    atol: float = typer.Option(1e-3, "--atol", help="Largest allowed |logit difference| against PyTorch before a row "
                               "is marked 'exported, failed verification'."),
    timeout: float = typer.Option(900.0, "--timeout", help="Seconds one measurement may take before it is failed."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Write every figure, the devices and runtime "
                                            "versions as JSON to this file."),
    csv_out: Optional[Path] = typer.Option(None, "--csv", help="Write one CSV line per row to this file."),
    report: Optional[Path] = typer.Option(None, "--report", help="Write accuracy-vs-latency/size/MACs plots (PNG) and "
                                          "report.md into this directory."),
    db: Optional[Path] = typer.Option(None, "--db", help="Results store to append this run to (default "
                                      "~/.cache/ssc-deploy/results.sqlite, or $SSC_DEPLOY_CACHE/results.sqlite)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not append this run to the results store."),
    work_dir: Optional[Path] = typer.Option(None, "--work-dir", help="Keep exports of checkpoints and the inputs .npz "
                                            "here (default: a temporary directory, removed afterwards)."),
    lowering: str = typer.Option("pad-slice", "--lowering", help="How checkpoints' shifts are lowered when exported "
                                  "(a name from `ssc-deploy export --list-lowerings`, or auto: the fastest measured)."),
    precision: Optional[str] = typer.Option(None, "--precision", help="Comma-separated precisions to measure: fp32, "
                                            "int8, fp16 (e.g. fp32,int8). Checkpoints and baselines are exported in "
                                            "each (where the target exports it); artifacts are measured in their own "
                                            "(NAME.int8.onnx beside NAME.onnx). Default: the artifacts' own, fp32 "
                                            "exports."),
    force: bool = typer.Option(False, "--force", help="Let --json/--csv overwrite a file that is also an input "
                               "(a source or its manifest); the results store is never overwritten."),
) -> None:
    """Is the SSC-Net file smaller, faster and as accurate as the MobileNetV2/IGCV3 file it would replace?

    Measures file size, parameters, MACs, load time, latency (median, p10, p90, min), throughput, peak memory, top-1/top-5 accuracy through the runtime and parity with PyTorch, for every artifact x runtime x thread count, each in its own subprocess. Every run is appended to the results store (see `ssc-deploy results`).
    """
    from ssc_deploy.runtime_bench.bench_run import BenchOutputs, run_and_publish
    from ssc_deploy.runtime_bench.settings import BenchSettings

    for p, opt in ((json_out, "--json"), (csv_out, "--csv")):
        _check_output_path(p, opt)
    settings = BenchSettings(
        runtimes=split_list(runtime) or None, threads=parse_threads(threads), warmup=warmup, runs=runs, data=data,
        n_eval=n_eval, baselines=split_list(baselines), ratio_to=ratio_to, atol=atol, timeout=timeout,
        runners=parse_runners(runner), pin_cores=pin_cores, lowering=lowering,
        precisions=split_list(precision) if precision is not None else None)
    outputs = BenchOutputs(json_out=json_out, csv_out=csv_out, report=report, db=db, store=not no_store, force=force)
    rc = run_and_publish(list(sources or []), settings, list(device or ["host"]), outputs, work_dir)
    if rc:
        raise typer.Exit(rc)


@app.command("results")
def results(
    compare: Optional[tuple[int, int]] = typer.Option(None, "--compare", help="Compare two stored runs: "
                                                      "RUN_A RUN_B (B against A), flagging regressions (>10% slower or "
                                                      "lower top-1)."),
    show: Optional[int] = typer.Option(None, "--show", help="Print the table of one stored run."),
    limit: int = typer.Option(20, "--limit", help="How many recent runs to list."),
    db: Optional[Path] = typer.Option(None, "--db", help="Results store (default ~/.cache/ssc-deploy/results.sqlite)."),
    json_out: Optional[Path] = typer.Option(None, "--json", help="Also write the listing or comparison as JSON here."),
) -> None:
    """List past benchmark runs, show one, or compare two so a regression shows."""
    from ssc_deploy.runtime_bench.results_view import compare_cmd, list_cmd, show_cmd

    if compare:
        rc = compare_cmd(compare[0], compare[1], db, json_out)
        if rc:
            raise typer.Exit(rc)
    elif show is not None:
        show_cmd(show, db)
    else:
        list_cmd(db, limit, json_out)
