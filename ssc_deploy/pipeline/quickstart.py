"""``ssc-deploy quickstart``: train the default SSC-Net and its two baselines briefly, export all
three to every target in fp32 and int8, benchmark them on this host and write the report.

Training is planned, not guessed (:mod:`ssc_deploy.pipeline.plan`): short timed probes pick
the thread count, whether the models train side by side (one process and thread each) or one
after another, and the epochs that fit the ``--minutes`` budget, capped at the data's default
recipe (on digits ``digits-fast``: 4 epochs). ``--epochs`` fixes the epochs instead; ``--quick``
is the CI smoke run (one short epoch each, few timed runs: about 2 minutes; the accuracies
mean nothing). A rerun into the same ``--out`` keeps every checkpoint trained by the same
code, data and recipe (:mod:`ssc_deploy.pipeline.reuse`) and goes straight to export and
benchmark; ``--retrain`` trains anyway. SSC-Nets are exported with each runtime's fastest
verified shift lowering (this CPU's cached measurement, else the known fastest for its vector
ISA); the baselines have no shifts.

Output directory layout (``--out``, default ``./ssc-deploy-quickstart``)::

    .ssc-deploy-quickstart       marks the directory as a quickstart's (a rerun may write into it)
    checkpoints/<model>.pt       trained checkpoints
    artifacts/<model>.{onnx,pte,tflite} (+ .manifest.json)
    artifacts/<model>.int8.{onnx,pte,tflite} (+ .manifest.json): int8 files of every model (with
                                 --quick the model under test only), gated on top-1 like ``export``
    report/report.md + PNG plots
    bench.json, bench.csv        every figure (bench.json's ``arm_instructions``: ARM instructions per
                                 inference of the ONNX and TFLite files on the emulated arm64 device,
                                 when it is set up; see :func:`arm_instructions`)
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ssc_deploy.display import markup_safe
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.options import DEFAULT_MAX_DROP
from ssc_deploy.numeric import check_float, check_int
from ssc_deploy.runtimes import RUNTIME_NAMES, by_runtime

from .plan import DEFAULT_MINUTES, TrainingPlan, budget_note, plan_training
from .reuse import planned_key, reusable

DEFAULT_MODELS = ("ssc-net-1-9", "mobilenetv2", "igcv3-d-0.7x")
DEFAULT_PRECISIONS = ("fp32", "int8")
# --quick: int8 calibrated and checked on few images and not gated (one short epoch: the accuracies mean nothing).
QUICK_CALIB = 32
QUICK_GATE_IMAGES = 60
QUICK_MAX_DROP = 100.0
DEFAULT_OUT = "ssc-deploy-quickstart"
MARKER = ".ssc-deploy-quickstart"


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
    retrain: bool = False  # train even where a checkpoint of the same run exists
    parallel: bool | None = None  # None: side by side or one after another, as the probe says
    db: Path | None = None
    store: bool = True
    precisions: list[str] = field(default_factory=lambda: list(DEFAULT_PRECISIONS))
    max_drop: float = DEFAULT_MAX_DROP  # int8/fp16 accuracy gate, top-1 points (off with --quick)

    def __post_init__(self) -> None:
        if self.quick:
            self.runs, self.warmup, self.n_eval = min(self.runs, 5), min(self.warmup, 1), self.n_eval or 60

    def quantized_models(self) -> list[str]:
        """The models that also get int8/fp16 files: every one, with ``--quick`` the model under test only."""
        if not any(p != "fp32" for p in self.precisions):
            return []
        return self.models[:1] if self.quick else list(self.models)

    def quantized_for(self, model: str, runtime: str, planned: Sequence[str] | None = None) -> list[str]:
        """The precisions besides fp32 that ``model`` is exported in for ``runtime`` (those its target has);
        ``planned``: the models whose quantized files the plan fitted in the budget."""
        if model not in (self.quantized_models() if planned is None else planned):
            return []
        return [p for p in self.precisions if p != "fp32" and p in by_runtime(runtime).precisions]


def check_out_dir(out: Path, force: bool) -> None:
    """Refuse to write into a non-empty directory unless ``force`` or it holds an earlier quickstart's output."""
    if out.exists() and not out.is_dir():
        raise SscDeployError(f"{out}: exists and is not a directory (--out takes a directory)")
    if out.is_dir() and any(out.iterdir()) and not force and not (out / MARKER).is_file():
        raise SscDeployError(f"{out}: is not empty (choose another --out, or --force to overwrite its results)")


def validate(opts: QuickstartOptions) -> None:
    """Every option checked before anything is written."""
    from ssc_deploy.models import model_family

    if not opts.models:
        raise SscDeployError("--models needs at least one model name")
    bad = [rt for rt in opts.runtimes if rt not in RUNTIME_NAMES]
    if bad:
        raise SscDeployError(f"unknown runtime '{bad[0]}' (use {', '.join(RUNTIME_NAMES)})")
    check_int("--runs", opts.runs, 1)
    check_int("--warmup", opts.warmup, 0)
    check_int("--n-eval", opts.n_eval, 0)
    for m in opts.models:
        model_family(m)  # one-line error naming an unknown model
    check_int("--epochs", opts.epochs, 1)
    check_float("--minutes", opts.minutes, positive=True)
    from ssc_deploy.runtime_bench.precision import check_precisions

    opts.precisions = check_precisions(["fp32", *opts.precisions])  # fp32 is always exported: the reference
    _check_store_not_written(opts)


def _check_store_not_written(opts: QuickstartOptions) -> None:
    """The results store is never one of the files the quickstart writes into ``--out``."""
    from ssc_deploy.output_paths import check_outputs
    from ssc_deploy.runtime_bench.store import default_db_path

    if not opts.store:
        return
    out = Path(opts.out)
    written = [out / "bench.json", out / "bench.csv", out / MARKER, *(_ckpt_path(out, m) for m in opts.models)]
    check_outputs([(f"--out ({p.relative_to(out)})", p) for p in written],
                  stores=[(opts.db or default_db_path(), "the results store (--db)")])


def _ckpt_path(out: Path, model: str) -> Path:
    return out / "checkpoints" / f"{model}.pt"


def _key(opts: QuickstartOptions, model: str, epochs: int, quick: bool) -> str:
    from .plan import QUICK_BATCHES

    return planned_key(model, opts.data, epochs, max_batches=QUICK_BATCHES if quick else None)


def _reusable(opts: QuickstartOptions, out: Path) -> list[str]:
    """Models whose checkpoint in ``out`` is a run the options ask for: same code, data, recipe and seed,
    with ``--epochs`` (or ``--quick``) the same epochs, else any epochs an earlier budget plan gave."""
    from ssc_deploy.checkpoint import load_checkpoint

    if opts.retrain:
        return []
    found = []
    for m in opts.models:
        path = _ckpt_path(out, m)
        if not path.is_file():
            continue
        if opts.quick or opts.epochs is not None:
            epochs = 1 if opts.quick else int(opts.epochs)
        else:
            try:
                epochs = int(load_checkpoint(path).metrics.get("epochs_done") or 0)
            except SscDeployError:
                continue
        if epochs >= 1 and reusable(path, _key(opts, m, epochs, opts.quick)):
            found.append(m)
    return found


def _config(opts: QuickstartOptions, model: str, plan: TrainingPlan, out: Path, **fields: Any):
    from ssc_deploy.train import TrainConfig

    mp = plan.models[model]
    return TrainConfig(model=model, data=opts.data, epochs=mp.epochs, out=_ckpt_path(out, model),
                       max_batches=mp.max_batches, threads=mp.threads, force=True, **fields)


def _relay(model: str, proc: subprocess.Popen, console, lines: list[str]) -> None:
    for line in proc.stdout:
        line = line.rstrip()
        lines.append(line)
        console.print(f"  {model}: {line}", highlight=False)


def _train_parallel(opts: QuickstartOptions, plan: TrainingPlan, out: Path, models: list[str], console) -> None:
    """One training process a model, all at once; each prints a line an epoch, relayed with its name."""
    procs, relays, lines = {}, [], {m: [] for m in models}
    for m in models:
        argv = _config(opts, m, plan, out, progress=False, epoch_lines=True).to_argv()
        procs[m] = subprocess.Popen([sys.executable, "-m", "ssc_deploy.pipeline.train_worker", *argv],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        relays.append(threading.Thread(target=_relay, args=(m, procs[m], console, lines[m]), daemon=True))
        relays[-1].start()
    errors = {m: p.stderr.read() for m, p in procs.items()}
    for t in relays:
        t.join()
    for m, p in procs.items():
        if p.wait() != 0:
            said = [ln for ln in lines[m] if ln.startswith("error:")] or errors[m].strip().splitlines()[-1:] or ["?"]
            raise SscDeployError(f"training {m} failed: {said[-1].removeprefix('error: ')}", exit_code=1)


def _train(opts: QuickstartOptions, plan: TrainingPlan, out: Path, console) -> dict[str, Path]:
    """Train every model the plan does not reuse; every model's checkpoint file."""
    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.train import train_model

    todo = [m for m in opts.models if not plan.models[m].reused]
    if plan.mode == "parallel" and len(todo) > 1:
        console.print(f"  {', '.join(todo)} side by side, 1 thread each", highlight=False)
        _train_parallel(opts, plan, out, todo, console)
    else:
        for m in todo:
            train_model(_config(opts, m, plan, out, progress=True))
    ckpts: dict[str, Path] = {}
    for m in opts.models:
        ck = load_checkpoint(_ckpt_path(out, m))
        how = "reused" if plan.models[m].reused else "trained"
        console.print(f"  {m}: test top-1 {ck.metrics.get('test_top1', float('nan')) * 100:.1f}% after "
                      f"{ck.metrics.get('epochs_done', '?')} epoch(s), recipe {ck.provenance.get('recipe', 'paper')} "
                      f"({how}) -> {_ckpt_path(out, m)}", highlight=False)
        ckpts[m] = _ckpt_path(out, m)
    return ckpts


def lowering_for(model: str, runtime: str) -> str:
    """The shift lowering the quickstart exports ``model`` with for ``runtime``: for an SSC-Net the
    fastest measured on this CPU when a measurement is cached, else the known fastest for its vector
    ISA (the quickstart never spends its budget measuring); the default for nets without shifts."""
    from ssc_deploy.export.lowerings.selection.choice import cached_or_known

    spec = by_runtime(runtime)
    return cached_or_known(spec.target).lowering if has_shifts(model) else spec.default_lowering


def _export(opts: QuickstartOptions, ckpts: dict[str, Path], out: Path, console,
            quantized: Sequence[str] | None = None) -> tuple[list[Path], list[str]]:
    """Export every checkpoint to the target of every runtime, in fp32 and then in each other precision
    asked (:func:`_export_quantized`); the artifact files, and one line for each file not exported."""
    from ssc_deploy.export import VerifyOptions, export_model

    artifacts: list[Path] = []
    skipped: list[str] = []
    for m in opts.models:
        for rt in opts.runtimes:
            lowering = lowering_for(m, rt)
            for res in export_model(str(ckpts[m]), targets=(by_runtime(rt).target,), out_dir=out / "artifacts",
                                    verify=VerifyOptions(data=opts.data), lowering=lowering, progress=True,
                                    force=True):
                artifacts.append(Path(res.artifact))
                par = res.manifest.get("parity", {})
                console.print(f"  {res.artifact.name}: {res.artifact.stat().st_size / 1e3:.0f} kB, lowering "
                              f"{lowering if has_shifts(m) else '- (no shifts)'}, max |diff| vs "
                              f"PyTorch {par.get('max_abs_diff', float('nan')):.1e}", highlight=False)
                fp32_bytes = res.artifact.stat().st_size
            for prec in opts.quantized_for(m, rt, quantized):
                artifacts += _export_quantized(opts, ckpts[m], rt, prec, out, fp32_bytes, console, skipped)
    return artifacts, skipped


def _export_quantized(opts: QuickstartOptions, ckpt: Path, runtime: str, precision: str, out: Path,
                      fp32_bytes: int, console, skipped: list[str]) -> list[Path]:
    """One int8 or fp16 file (its own lowering, calibration and accuracy gate); a file the gate or the
    target refuses is a yellow line and an entry in ``skipped``, never the end of the quickstart."""
    from ssc_deploy.export import QuantOptions, VerifyOptions, export_model

    # keep_float "none": the gate's retry re-exports, it would not fit the planned time
    quant = (QuantOptions(calib=QUICK_CALIB, gate_images=QUICK_GATE_IMAGES, max_drop=QUICK_MAX_DROP, keep_float="none")
             if opts.quick else QuantOptions(max_drop=opts.max_drop, keep_float="none"))
    try:
        results = export_model(str(ckpt), targets=(by_runtime(runtime).target,), out_dir=out / "artifacts",
                               verify=VerifyOptions(data=opts.data), progress=True, force=True,
                               precisions=(precision,), quant=quant)
    except SscDeployError as err:
        line = f"{ckpt.stem} {runtime} {precision}: not exported: {err}"
        skipped.append(line)
        console.print(f"  [yellow]note:[/] {markup_safe(line)}", highlight=False)
        return []
    for res in results:
        q = res.manifest.get("quantization") or {}
        acc = q.get("accuracy") or {}
        gate = (f"top-1 {acc['top1'] * 100:.1f}% vs fp32 {acc['fp32_top1'] * 100:.1f}% on {acc['n_images']} test images"
                if acc.get("top1") is not None else "no accuracy gate (untrained)")
        console.print(f"  {res.artifact.name}: {res.artifact.stat().st_size / 1e3:.0f} kB "
                      f"({res.artifact.stat().st_size / fp32_bytes:.2f}x fp32), {q.get('scheme') or precision}, lowering "
                      f"{(res.manifest.get('model') or {}).get('lowering') or '-'}, {gate}", highlight=False)
    return [Path(res.artifact) for res in results]


def arm_instructions(opts: QuickstartOptions, artifacts: list[Path], console) -> list[dict[str, Any]] | None:
    """ARM instructions per inference of the ONNX and TFLite files on the emulated arm64 device (default
    profile) when it is set up (not with ``--quick``); else one line saying how to get them. Not in the
    time budget: about 20 s of emulation per file."""
    from ssc_deploy.devices.emulated import EmulatedArm64Device, emulated_status

    status = emulated_status()
    how = f"ssc-deploy bench {opts.out / 'checkpoints' / (opts.models[0] + '.pt')} --device arm64-emulated --precision fp32,int8"
    if opts.quick or status.state != "ready" or "no instruction counts" in status.detail:
        why = "--quick" if opts.quick else f"arm64-emulated is {status.state}: {status.detail}"
        console.print(f"ARM instructions per inference: not counted ({why}); for them: ssc-deploy device setup "
                      f"arm64-emulated, then {markup_safe(how)}", highlight=False)
        return None
    from ssc_deploy.runtime_bench.insn_counts import count_artifacts, instruction_label

    console.rule("[bold]ARM instructions per inference (emulated arm64)")
    with EmulatedArm64Device() as dev:
        rows = count_artifacts(dev, artifacts, baseline=opts.models[1] if len(opts.models) > 1 else None,
                               progress=lambda label: console.print(f"  counting {markup_safe(label)}", highlight=False))
    label = instruction_label(rows) or "emulated, instructions, not time"
    for r in rows:
        figure = (f"{r['instructions_per_inference'] / 1e6:.2f} M" if r.get("instructions_per_inference")
                  else f"failed: {r['reason']}")
        ratios = []
        if r.get("vs_fp32_instructions_ratio") is not None:
            ratios.append(f"{r['vs_fp32_instructions_ratio']:.2f}x its fp32 file")
        if r.get("role") != "baseline" and r.get("instructions_ratio") is not None:
            ratios.append(f"{r['instructions_ratio']:.2f}x {markup_safe(r['ratio_to'])}")
        console.print(f"  {markup_safe(r['model'])} {r['runtime']} {r['precision']}: {figure}"
                      + (f" ({', '.join(ratios)})" if ratios else ""), highlight=False)
    console.print(f"  ({label})", highlight=False)
    return rows


def has_shifts(model: str) -> bool:
    """Whether the quickstart lowers ``model``'s shifts (SSC-Nets only)."""
    from ssc_deploy.models import model_family

    return model_family(model) == "ssc-net"


def _print_plan(plan: TrainingPlan, console) -> None:
    for m, mp in plan.models.items():
        what = "no training" if mp.reused else f"{mp.epochs} epoch(s), {mp.threads} thread(s)"
        console.print(f"  {m}: {what} ({mp.why})", highlight=False)
    if not all(mp.reused for mp in plan.models.values()):
        choice = ", ".join(f"{k} {v / 60:.1f} min" for k, v in plan.options.items())
        console.print(f"  training {plan.mode} (simulated for the recipe's epochs: {choice})", highlight=False)
    int8 = f" (int8 files {plan.int8_seconds / 60:.1f})" if plan.int8_seconds else ""
    console.print(f"  planned: probe {plan.probe_seconds / 60:.1f} + train {plan.train_seconds / 60:.1f} + export "
                  f"and benchmark {plan.post_seconds / 60:.1f}{int8} = {_planned_total(plan) / 60:.1f} min "
                  f"(budget {plan.budget_seconds / 60:.0f} min)", highlight=False)


def _planned_total(plan: TrainingPlan) -> float:
    return plan.probe_seconds + plan.train_seconds + plan.post_seconds


def train_stage(opts: QuickstartOptions, out: Path, console) -> tuple[TrainingPlan, dict[str, Path], dict[str, float]]:
    """Stages 1 and 2: plan (reuse, probes, epochs) and train; the plan, every checkpoint, and seconds each took."""
    t0 = time.perf_counter()
    console.rule("[bold]1/4 plan")
    reused = _reusable(opts, out)
    if reused:
        console.print(f"  reusing {', '.join(reused)}: trained by the same code, data and recipe (--retrain to "
                      "train again, for the budget's epochs)", highlight=False)
    plan = plan_training(opts.models, opts.data, opts.minutes, opts.epochs, opts.quick, console,
                         parallel=opts.parallel, reused=reused, int8_models=opts.quantized_models())
    _print_plan(plan, console)
    note = budget_note(plan)
    if note:
        console.print(f"  [yellow]note:[/] {note}", highlight=False)
    actual = {"probe": time.perf_counter() - t0}

    console.rule("[bold]2/4 train")
    t = time.perf_counter()
    ckpts = _train(opts, plan, out, console)
    actual["train"] = time.perf_counter() - t

    return plan, ckpts, actual


def run_quickstart(opts: QuickstartOptions, console=None) -> dict[str, Any]:
    """Train, export, benchmark and report; return the bench result (also written to ``opts.out``)."""
    from ssc_deploy.runtime_bench.console import console as make_console

    console = console or make_console()
    out = Path(opts.out)
    validate(opts)
    check_out_dir(out, opts.force)
    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text("written by ssc-deploy quickstart; a rerun reuses matching checkpoints here\n")

    plan, ckpts, actual = train_stage(opts, out, console)

    console.rule("[bold]3/4 export")
    t = time.perf_counter()
    artifacts, skipped = _export(opts, ckpts, out, console, plan.int8_models)
    actual["export"] = time.perf_counter() - t

    console.rule("[bold]4/4 benchmark (this host, 1 thread)")
    from ssc_deploy.devices.host import HostDevice
    from ssc_deploy.runtime_bench.bench_run import measure_with_progress, publish
    from ssc_deploy.runtime_bench.settings import BenchSettings

    t = time.perf_counter()
    settings = BenchSettings(runtimes=list(opts.runtimes), threads=[1], warmup=opts.warmup, runs=opts.runs,
                             data=opts.data, n_eval=opts.n_eval, baselines=list(opts.models[1:]))
    # The checkpoints beside their artifacts give the bench its PyTorch reference (parity, top-1).
    result = measure_with_progress([*artifacts, *ckpts.values()], settings, [HostDevice()], out / "work", console)
    total = time.perf_counter() - t0
    result["quickstart"] = {"plan": plan.to_dict(), "minutes": total / 60, "quick": opts.quick,
                            "reused": [m for m, mp in plan.models.items() if mp.reused],
                            "precisions": opts.precisions, "not_exported": skipped,
                            "lowerings": {m: {rt: lowering_for(m, rt) for rt in opts.runtimes}
                                          for m in opts.models if has_shifts(m)}}
    result["arm_instructions"] = arm_instructions(opts, artifacts, console)
    publish(result, out / "bench.json", out / "bench.csv", out / "report", opts.db, opts.store, console)
    actual["bench"] = time.perf_counter() - t
    total = time.perf_counter() - t0
    planned = _planned_total(plan)
    console.print(f"planned {planned / 60:.1f} min, took {total / 60:.1f} min ({100 * (total - planned) / planned:+.0f} %): "
                  f"train {plan.train_seconds / 60:.1f} planned / {actual['train'] / 60:.1f} actual, export and "
                  f"benchmark {plan.post_seconds / 60:.1f} / {(actual['export'] + actual['bench']) / 60:.1f} "
                  f"(probe {actual['probe'] / 60:.1f})", highlight=False)
    console.print(f"[bold green]done[/] in {total / 60:.1f} min: open {out / 'report' / 'report.md'}")
    return result
