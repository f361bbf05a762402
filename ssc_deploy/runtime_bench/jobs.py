"""Jobs: every (model, runtime, precision, threads, source) to measure, and running them on one device in turn."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.runtimes import by_runtime

from .insn_counts import add_instruction_counts
from .model_under_test import Job, Model
from .native_jobs import run_native_job
from .rows import base_row, row_from_result
from .settings import BenchSettings

ProgressFn = Callable[[str], None]


def plan_jobs(models: list[Model], runtimes: list[str], settings: BenchSettings) -> list[Job]:
    """Every (model, runtime, precision, threads) to measure, device runner first, then native tools."""
    jobs = []
    for m in models:
        for rt in runtimes:
            for prec in job_precisions(m, rt, settings.precisions):
                key = (rt, prec)
                if key not in m.artifacts and key not in m.export_errors:
                    if not m.can_export:
                        continue  # an artifact-only model runs on its own runtimes and precisions only
                    m.export_errors[key] = "no artifact for this runtime" + ("" if prec == "fp32" else f" in {prec}")
                for t in settings.threads:
                    jobs.append(Job(m, rt, t, precision=prec))
                    if rt in settings.runners and key in m.artifacts:
                        jobs.append(Job(m, rt, t, source="native-tool", precision=prec))
    return jobs


def job_precisions(model: Model, runtime: str, asked: list[str] | None) -> list[str]:
    """The precisions measured for a model on ``runtime``: those asked (the ones the runtime's target
    exports, or the model has files for), else the precisions of its files (fp32 when it has none)."""
    have = model.precisions(runtime)
    if asked is None:
        return have or ["fp32"]
    exported = by_runtime(runtime).precisions if model.can_export else ()
    return [p for p in asked if p in have or p in exported]


def runner_args(job: Job, paths: dict[Path, str], warmup: int, runs: int, logits: bool = False,
                n_eval: int = 0) -> list[str]:
    """The device runner's command line for one job (device paths substituted); ``logits`` asks for the
    logits in its result (to compare devices); ``n_eval`` > 0 evaluates only the first n_eval images."""
    art = job.artifact
    args = ["--artifact", paths[art.path], "--runtime", job.runtime, "--threads", str(job.threads),
            "--warmup", str(warmup), "--runs", str(runs), "--layout", art.layout]
    if job.model.inputs is not None:
        args += ["--inputs", paths[job.model.inputs]]
        if n_eval:
            args += ["--n-eval", str(n_eval)]
        if logits:
            args.append("--logits")
    return args


def _files(jobs: list[Job]) -> list[Path]:
    """The artifacts and inputs the jobs need on the device, each once."""
    files: list[Path] = []
    for job in jobs:
        art = job.artifact
        if art is not None and art.path not in files:
            files.append(art.path)
        if job.model.inputs is not None and job.model.inputs not in files:
            files.append(job.model.inputs)
    return files


def run_device_jobs(device, jobs: list[Job], settings: BenchSettings,
                    progress: ProgressFn | None, logits: bool = False) -> list[dict[str, Any]]:
    """Run every job on one device, one after another; each failure stays in its row.

    ``logits``: keep each row's logits (under ``rows.LOGITS``) for the comparison between devices.
    """
    from ssc_deploy.devices.base import DeviceError

    try:
        info = device.info().__dict__
    except DeviceError as err:
        info = {"name": getattr(device, "name", "device"), "kind": "", "error": str(err)}
    settings = settings.for_device(bool(info.get("emulated")))  # counts left to the default, for this device
    files = _files(jobs)
    stage_error = None
    paths: dict[Path, str] = {}
    try:
        paths = device.stage(files) if files else {}
    except (DeviceError, OSError) as err:
        stage_error = str(err) if isinstance(err, DeviceError) else f"staging failed: {one_line(err)}"
    rows: list[dict[str, Any]] = []
    for job in jobs:
        row = base_row(job, info)
        if progress:
            prec = "" if job.precision == "fp32" else f" {job.precision}"
            progress(f"{info.get('name')}: {job.model.name} {job.runtime}{prec} x{job.threads}")
        if (job.runtime, job.precision) in job.model.export_errors:
            row["reason"] = job.model.export_errors[(job.runtime, job.precision)]
        elif stage_error:
            row["reason"] = stage_error
        else:
            try:
                if job.source == "native-tool":
                    res = run_native_job(device, job, paths, settings)
                else:
                    res = device.run_runner(runner_args(job, paths, settings.warmup, settings.runs, logits, settings.n_eval),
                                            settings.timeout)
                row_from_result(row, res, settings.atol, job.artifact.manifest if job.artifact else None)
                if job.source == "device-runner":
                    add_instruction_counts(row, device, paths[job.artifact.path], settings.timeout)
            except (DeviceError, SscDeployError) as err:
                row["reason"] = str(err)
            except Exception as err:  # noqa: BLE001 - a runner crash or malformed result fails this row only
                row["status"], row["reason"] = "failed", f"{type(err).__name__}: {one_line(err)}"
        if job.source == "native-tool" and row["status"] == "ok":
            row["top1"] = row["top5"] = None
        rows.append(row)
    return rows
