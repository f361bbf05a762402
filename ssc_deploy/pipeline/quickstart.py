"""``ssc-deploy quickstart``: train the default SSC-Net and its two baselines briefly, export all
three to every target, benchmark them on this host and write the report.

Training time is planned, not guessed (:mod:`ssc_deploy.pipeline.plan`): a short probe of each
model measures seconds a batch on this machine right now, and each model gets the epochs that
fit its share of the ``--minutes`` budget (the SSC-Net half of the training time, each baseline a
quarter), capped at the training recipe's default epochs for the data (on digits, the recipe's
own measurement is that SSC-Net-1-9 passes 90 % test top-1 within them). ``--epochs`` fixes the
epochs instead; ``--quick`` is the CI smoke run (one short epoch each, few timed runs: about 2
minutes; the accuracies mean nothing).

Output directory layout (``--out``, default ``./ssc-deploy-quickstart``)::

    checkpoints/<model>.pt       trained checkpoints
    artifacts/<model>.{onnx,pte,tflite} (+ .manifest.json)
    report/report.md + PNG plots
    bench.json, bench.csv        every figure
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import RUNTIME_NAMES, by_runtime

from .plan import DEFAULT_MINUTES, budget_note, plan_epochs

DEFAULT_MODELS = ("ssc-net-1-9", "mobilenetv2", "igcv3-d-0.7x")
DEFAULT_OUT = "ssc-deploy-quickstart"


@dataclass
class QuickstartOptions:
    """Everything ``quickstart`` can be told."""

    out: Path = Path(DEFAULT_OUT)
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    data: str = "digits"
    minutes: float = DEFAULT_MINUTES
    epochs: int | None = None
    quick: bool = False
    runtimes: list[str] = field(default_factory=lambda: list(RUNTIME_NAMES))
    runs: int = 30
    warmup: int = 5
    n_eval: int = 0  # 0: the whole test split
    force: bool = False
    db: Path | None = None
    store: bool = True

    def __post_init__(self) -> None:
        if self.quick:
            self.runs, self.warmup, self.n_eval = min(self.runs, 5), min(self.warmup, 1), self.n_eval or 60


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to write into a non-empty directory unless ``force``: nothing on disk is lost by surprise."""
    if out.exists() and not out.is_dir():
        raise SscDeployError(f"{out}: exists and is not a directory (--out takes a directory)")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise SscDeployError(f"{out}: is not empty (choose another --out, or --force to overwrite its results)")


def validate(opts: QuickstartOptions) -> None:
    """Every option checked before anything is written."""
    from ssc_deploy.models import model_family

    if not opts.models:
        raise SscDeployError("--models needs at least one model name")
    bad = [rt for rt in opts.runtimes if rt not in RUNTIME_NAMES]
    if bad:
        raise SscDeployError(f"unknown runtime '{bad[0]}' (use {', '.join(RUNTIME_NAMES)})")
    if opts.runs < 1 or opts.warmup < 0:
        raise SscDeployError("--runs must be at least 1 and --warmup at least 0")
    for m in opts.models:
        model_family(m)  # one-line error naming an unknown model
    if opts.epochs is not None and opts.epochs < 1:
        raise SscDeployError(f"--epochs must be at least 1 (got {opts.epochs})")
    if not opts.minutes > 0:
        raise SscDeployError(f"--minutes must be positive (got {opts.minutes})")


def _train(opts: QuickstartOptions, plan: dict[str, dict[str, Any]], out: Path, console) -> dict[str, Path]:
    """Train every model for its planned epochs; their checkpoint files."""
    from ssc_deploy.train import TrainConfig, train_model

    ckpts: dict[str, Path] = {}
    for m in opts.models:
        path = out / "checkpoints" / f"{m}.pt"
        ck = train_model(TrainConfig(model=m, data=opts.data, epochs=plan[m]["epochs"], out=path, progress=True,
                                     max_batches=plan[m]["max_batches"], force=True))
        console.print(f"  {m}: test top-1 {ck.metrics.get('test_top1', float('nan')) * 100:.1f}% "
                      f"after {plan[m]['epochs']} epoch(s) -> {path}", highlight=False)
        ckpts[m] = path
    return ckpts


def _export(opts: QuickstartOptions, ckpts: dict[str, Path], out: Path, console) -> list[Path]:
    """Export every checkpoint to the target of every runtime; the artifact files."""
    from ssc_deploy.export import export_model

    artifacts: list[Path] = []
    targets = tuple(by_runtime(rt).target for rt in opts.runtimes)
    for m in opts.models:
        for res in export_model(str(ckpts[m]), targets=targets, out_dir=out / "artifacts", data=opts.data,
                                progress=True, force=True):
            artifacts.append(Path(res.artifact))
            par = res.manifest.get("parity", {})
            console.print(f"  {res.artifact.name}: {res.artifact.stat().st_size / 1e3:.0f} kB, "
                          f"max |diff| vs PyTorch {par.get('max_abs_diff', float('nan')):.1e}", highlight=False)
    return artifacts


def run_quickstart(opts: QuickstartOptions, console=None) -> dict[str, Any]:
    """Train, export, benchmark and report; return the bench result (also written to ``opts.out``)."""
    from ssc_deploy.runtime_bench.console import console as make_console

    console = console or make_console()
    out = Path(opts.out)
    validate(opts)
    check_out_dir(out, opts.force)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    console.rule("[bold]1/4 plan")
    plan = plan_epochs(opts.models, opts.data, opts.minutes, opts.epochs, opts.quick, console)
    for m, p in plan.items():
        console.print(f"  {m}: {p['epochs']} epoch(s) ({p['why']})", highlight=False)
    note = budget_note(opts.models, plan)
    if note:
        console.print(f"  [yellow]note:[/] {note}", highlight=False)

    console.rule("[bold]2/4 train")
    ckpts = _train(opts, plan, out, console)

    console.rule("[bold]3/4 export")
    artifacts = _export(opts, ckpts, out, console)

    console.rule("[bold]4/4 benchmark (this host, 1 thread)")
    from ssc_deploy.devices.host import HostDevice
    from ssc_deploy.runtime_bench.bench_run import measure_with_progress, publish
    from ssc_deploy.runtime_bench.settings import BenchSettings

    settings = BenchSettings(runtimes=list(opts.runtimes), threads=[1], warmup=opts.warmup, runs=opts.runs,
                             data=opts.data, n_eval=opts.n_eval, baselines=list(opts.models[1:]))
    result = measure_with_progress(artifacts, settings, [HostDevice()], out / "work", console)
    result["quickstart"] = {"plan": plan, "minutes": (time.perf_counter() - t0) / 60, "quick": opts.quick}
    publish(result, out / "bench.json", out / "bench.csv", out / "report", opts.db, opts.store, console)
    console.print(f"[bold green]done[/] in {(time.perf_counter() - t0) / 60:.1f} min: open {out / 'report' / 'report.md'}")
    return result
