"""CLI: ``quickstart`` - train, export, benchmark and report in one command. Thin: the work is in
:mod:`ssc_deploy.pipeline.quickstart`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ssc_deploy.errors import SscDeployError
from ssc_deploy.pipeline.plan import DEFAULT_MINUTES

from .app import app
from .bench_cmd import split_list


@app.command("quickstart")
def quickstart(
    out: Path = typer.Option(Path("ssc-deploy-quickstart"), "--out", "-o", help="Directory for checkpoints, "
                             "artifacts, bench.json/csv and the report (must be empty unless --force)."),
    quick: bool = typer.Option(False, "--quick", help="Smoke run of the whole chain (about 2 minutes): one short "
                               "epoch per model and few timed runs; accuracies are not meaningful."),
    minutes: float = typer.Option(DEFAULT_MINUTES, "--minutes", help="Time budget; thread count, side-by-side or sequential "
                                  "training and the epochs are fitted to it from short timed probes on this machine."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Train every model this many epochs instead of "
                                         "fitting them to --minutes."),
    models: str = typer.Option("ssc-net-1-9,mobilenetv2,igcv3-d-0.7x", "--models", help="Comma-separated zoo names: "
                               "the first is the model under test, the others its baselines."),
    data: str = typer.Option("digits", "--data", help="Training and evaluation data (digits is embedded, offline)."),
    runtime: str = typer.Option("onnxruntime,executorch,tflite", "--runtime", "-r", help="Comma-separated runtimes "
                                "to export for and benchmark."),
    runs: int = typer.Option(30, "--runs", help="Timed inferences per measurement."),
    warmup: int = typer.Option(5, "--warmup", help="Untimed inferences before timing."),
    n_eval: int = typer.Option(0, "--n-eval", help="Test images for accuracy and parity (0: the whole test split)."),
    force: bool = typer.Option(False, "--force", help="Write into a non-empty --out, replacing earlier results "
                               "(an earlier quickstart's --out needs no --force)."),
    retrain: bool = typer.Option(False, "--retrain", help="Train every model, even where --out holds a checkpoint "
                                 "trained by the same code, data and recipe (reused by default)."),
    parallel: Optional[bool] = typer.Option(None, "--parallel/--sequential", help="Train the models side by side "
                                            "(one process and thread each) or one after another. Default: whichever "
                                            "the probe measures faster."),
    db: Optional[Path] = typer.Option(None, "--db", help="Results store to append the run to (default "
                                      "~/.cache/ssc-deploy/results.sqlite)."),
    no_store: bool = typer.Option(False, "--no-store", help="Do not append the run to the results store."),
    precision: str = typer.Option("fp32,int8", "--precision", help="Comma-separated precisions of the files exported "
                                  "and benchmarked: fp32 (always), int8, fp16 (LiteRT only). int8 files are gated on "
                                  "top-1 like `export --precision int8` (with --quick: the model under test only, "
                                  "no gate); a file the gate refuses is a note, not a failure."),
) -> None:
    """Train the default SSC-Net, MobileNetV2 and IGCV3 briefly, export all three to ONNX, ExecuTorch and TFLite in fp32 and int8, benchmark them on this host and write the report."""
    from ssc_deploy.pipeline.quickstart import QuickstartOptions, run_quickstart
    from ssc_deploy.runtimes import RUNTIME_NAMES

    names, runtimes = split_list(models), split_list(runtime)
    if not runtimes:  # the options' own check names each unknown one; this one quotes what was typed
        raise SscDeployError(f"unknown runtime '{runtime}' (use {', '.join(RUNTIME_NAMES)})")
    opts = QuickstartOptions(out=out, models=[n.lower() for n in names], data=data, minutes=minutes, epochs=epochs,
                             quick=quick, runtimes=runtimes, runs=runs, warmup=warmup, n_eval=n_eval,
                             force=force, retrain=retrain, parallel=parallel, db=db, store=not no_store,
                             precisions=split_list(precision))
    result = run_quickstart(opts)
    failed = [r for r in result["rows"] if r["status"] != "ok"]
    if failed:
        raise SscDeployError(f"{len(failed)} of {len(result['rows'])} measurements did not pass (see the table); "
                             f"the rest is in {out}", exit_code=1)
