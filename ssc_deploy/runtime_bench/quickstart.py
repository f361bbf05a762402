"""``ssc-deploy quickstart``: train the default SSC-Net and its two baselines briefly, export all
three to every target, benchmark them on this host and write the report.

Training time is planned, not guessed: a two-batch probe of each model measures seconds a
batch on this machine right now, and each model gets the epochs that fit its share of the
``--minutes`` budget (the SSC-Net half of the training time, each baseline a quarter),
capped at the training recipe's default epochs for the data (on digits, the recipe's
own measurement is that SSC-Net-1-9 passes 90 % test top-1 within them). ``--epochs`` fixes the epochs instead; ``--quick`` is the CI smoke run
(one short epoch each, few timed runs: about 2 minutes; the accuracies mean nothing).

Output directory layout (``--out``, default ``./ssc-deploy-quickstart``)::

    checkpoints/<model>.pt       trained checkpoints
    artifacts/<model>.{onnx,pte,tflite} (+ .manifest.json)
    report/report.md + PNG plots
    bench.json, bench.csv        every figure
"""

from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError

DEFAULT_MODELS = ("ssc-net-1-9", "mobilenetv2", "igcv3-d-0.7x")
DEFAULT_OUT = "ssc-deploy-quickstart"
DEFAULT_MINUTES = 10.0
# Share of the budget left for exporting 3 x 3 artifacts and benchmarking them.
NON_TRAINING_SHARE = 0.35
PROBE_BATCHES = 4
# The probe only times training; its closing evaluation is cut to a few images.
PROBE_EVAL_IMAGES = 8


@dataclass
class QuickstartOptions:
    """Everything ``quickstart`` can be told."""

    out: Path = Path(DEFAULT_OUT)
    models: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    data: str = "digits"
    minutes: float = DEFAULT_MINUTES
    epochs: int | None = None
    quick: bool = False
    runtimes: list[str] = field(default_factory=lambda: ["onnxruntime", "executorch", "tflite"])
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


def probe_seconds_per_epoch(model: str, data: str, work: Path) -> float:
    """Seconds one training epoch of ``model`` takes here now, from a short timed probe."""
    from ssc_deploy.data import load_dataset, parse_spec
    from ssc_deploy.train import train_model
    from ssc_deploy.train.recipe import default_recipe

    ckpt = train_model(model, data=data, epochs=1, out=work / f"{model}.probe.pt", progress=False,
                       max_batches=PROBE_BATCHES, eval_limit=PROBE_EVAL_IMAGES, force=True)
    hist = ckpt.metrics.get("history") or [{}]
    seconds = float(hist[-1].get("seconds") or ckpt.metrics.get("train_seconds") or 0.0)
    # The probe ran the recipe's own batch size, so batches an epoch follow from it.
    batches = math.ceil(len(load_dataset(data, "train")) / default_recipe(parse_spec(data)[0]).batch_size)
    return seconds / PROBE_BATCHES * batches


def plan_epochs(opts: QuickstartOptions, console) -> dict[str, dict[str, Any]]:
    """Epochs (and batch caps) for each model: fixed, quick, or fitted to the time budget."""
    from ssc_deploy.data import parse_spec
    from ssc_deploy.train.recipe import DEFAULT_EPOCHS

    if opts.quick:
        return {m: {"epochs": 1, "max_batches": 4, "why": "--quick"} for m in opts.models}
    if opts.epochs is not None:
        return {m: {"epochs": opts.epochs, "max_batches": None, "why": "--epochs"} for m in opts.models}
    cap = DEFAULT_EPOCHS.get(parse_spec(opts.data)[0], 15)
    budget = opts.minutes * 60 * (1 - NON_TRAINING_SHARE)
    shares = [0.5] + [0.5 / max(1, len(opts.models) - 1)] * (len(opts.models) - 1) if len(opts.models) > 1 else [1.0]
    plan = {}
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-probe-") as tmp:
        for model, share in zip(opts.models, shares):
            console.print(f"  timing a {PROBE_BATCHES}-batch probe of {model} ...", highlight=False)
            per_epoch = probe_seconds_per_epoch(model, opts.data, Path(tmp))
            epochs = max(1, min(cap, int(budget * share // max(per_epoch, 1e-3))))
            plan[model] = {"epochs": epochs, "max_batches": None, "seconds_per_epoch": per_epoch, "cap": cap,
                           "why": f"{per_epoch:.0f} s/epoch here, {budget * share / 60:.1f} min of the budget"}
    return plan


def validate(opts: QuickstartOptions) -> None:
    """Every option checked before anything is written."""
    from ssc_deploy.models import model_family

    if not opts.models:
        raise SscDeployError("--models needs at least one model")
    for m in opts.models:
        model_family(m)  # one-line error naming an unknown model
    if opts.epochs is not None and opts.epochs < 1:
        raise SscDeployError(f"--epochs must be at least 1 (got {opts.epochs})")
    if not opts.minutes > 0:
        raise SscDeployError(f"--minutes must be positive (got {opts.minutes})")
    if opts.runs < 1 or opts.warmup < 0:
        raise SscDeployError("--runs must be at least 1 and --warmup at least 0")


def run_quickstart(opts: QuickstartOptions, console=None) -> dict[str, Any]:
    """Train, export, benchmark and report; return the bench result (also written to ``opts.out``)."""
    from .bench_run import _console

    console = console or _console()
    out = Path(opts.out)
    validate(opts)
    check_out_dir(out, opts.force)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)

    console.rule("[bold]1/4 plan")
    plan = plan_epochs(opts, console)
    for m, p in plan.items():
        console.print(f"  {m}: {p['epochs']} epoch(s) ({p['why']})", highlight=False)
    first = plan[opts.models[0]]
    if "seconds_per_epoch" in first and first["epochs"] < first.get("cap", 0):
        need = first["seconds_per_epoch"] * first["cap"] / 60 / 0.5 / (1 - NON_TRAINING_SHARE)
        console.print(f"  [yellow]note:[/] {opts.models[0]} gets {first['epochs']} of the recipe's {first['cap']} epochs "
                      f"in this budget, so its accuracy will be below what it can reach; --minutes {need:.0f} "
                      "would allow all of them on this machine as loaded now", highlight=False)

    console.rule("[bold]2/4 train")
    from ssc_deploy.train import train_model

    ckpts: dict[str, Path] = {}
    for m in opts.models:
        path = out / "checkpoints" / f"{m}.pt"
        ck = train_model(m, data=opts.data, epochs=plan[m]["epochs"], out=path, progress=True,
                         max_batches=plan[m]["max_batches"], force=True)
        console.print(f"  {m}: test top-1 {ck.metrics.get('test_top1', float('nan')) * 100:.1f}% "
                      f"after {plan[m]['epochs']} epoch(s) -> {path}", highlight=False)
        ckpts[m] = path

    console.rule("[bold]3/4 export")
    from ssc_deploy.export import export_model

    from .harness import RUNTIME_TARGET

    artifacts: list[Path] = []
    targets = tuple(RUNTIME_TARGET[rt] for rt in opts.runtimes)
    for m in opts.models:
        for res in export_model(str(ckpts[m]), targets=targets, out_dir=out / "artifacts", data=opts.data,
                                progress=True, force=True):
            artifacts.append(Path(res.artifact))
            par = res.manifest.get("parity", {})
            console.print(f"  {res.artifact.name}: {res.artifact.stat().st_size / 1e3:.0f} kB, "
                          f"max |diff| vs PyTorch {par.get('max_abs_diff', float('nan')):.1e}", highlight=False)

    console.rule("[bold]4/4 benchmark (this host, 1 thread)")
    from .bench_run import measure_with_progress, publish
    from .harness import BenchSettings

    settings = BenchSettings(runtimes=list(opts.runtimes), threads=[1], warmup=opts.warmup, runs=opts.runs,
                             data=opts.data, n_eval=opts.n_eval, baselines=list(opts.models[1:]))
    from ssc_deploy.devices.host import HostDevice

    result = measure_with_progress(artifacts, settings, [HostDevice()], out / "work", console)
    result["quickstart"] = {"plan": plan, "minutes": (time.perf_counter() - t0) / 60, "quick": opts.quick}
    publish(result, out / "bench.json", out / "bench.csv", out / "report", opts.db, opts.store, console)
    console.print(f"[bold green]done[/] in {(time.perf_counter() - t0) / 60:.1f} min: open {out / 'report' / 'report.md'}")
    return result
