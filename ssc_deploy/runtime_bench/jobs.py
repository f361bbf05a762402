"""Jobs: every (model, runtime, threads, source) to measure, and running them on one device in turn."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ssc_deploy.errors import SscDeployError

from .model_under_test import Model
from .native_jobs import run_native_job
from .rows import base_row, one_line, row_from_result
from .settings import BenchSettings

ProgressFn = Callable[[str], None]


@dataclass
class Job:
    """One measurement: a model's artifact for one runtime at one thread count, by one source."""

    model: Model
    runtime: str
    threads: int
    source: str = "device-runner"  # or "native-tool"


def plan_jobs(models: list[Model], runtimes: list[str], settings: BenchSettings) -> list[Job]:
    """Every (model, runtime, threads) to measure, device runner first, then native tools."""
    jobs = []
    for m in models:
        for rt in runtimes:
            if rt not in m.artifacts and rt not in m.export_errors:
                if not m.can_export:
                    continue  # an artifact-only model runs on its own runtimes only
                m.export_errors[rt] = "no artifact for this runtime"
            for t in settings.threads:
                jobs.append(Job(m, rt, t))
                if rt in settings.runners and rt in m.artifacts:
                    jobs.append(Job(m, rt, t, source="native-tool"))
    return jobs


def runner_args(job: Job, paths: dict[Path, str], warmup: int, runs: int, n_eval: int = 0) -> list[str]:
    """The device runner's command line for one job (device paths substituted); ``n_eval`` > 0 evaluates
    only the first n_eval images."""
    art = job.model.artifacts[job.runtime]
    args = ["--artifact", paths[art.path], "--runtime", job.runtime, "--threads", str(job.threads),
            "--warmup", str(warmup), "--runs", str(runs), "--layout", art.layout]
    if job.model.inputs is not None:
        args += ["--inputs", paths[job.model.inputs]]
        if n_eval:
            args += ["--n-eval", str(n_eval)]
    return args


def _files(jobs: list[Job]) -> list[Path]:
    """The artifacts and inputs the jobs need on the device, each once."""
    files: list[Path] = []
    for job in jobs:
        art = job.model.artifacts.get(job.runtime)
        if art is not None and art.path not in files:
            files.append(art.path)
        if job.model.inputs is not None and job.model.inputs not in files:
            files.append(job.model.inputs)
    return files


def run_device_jobs(device, jobs: list[Job], settings: BenchSettings,
                    progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Run every job on one device, one after another; each failure stays in its row."""
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
            progress(f"{info.get('name')}: {job.model.name} {job.runtime} x{job.threads}")
        if job.runtime in job.model.export_errors:
            row["reason"] = job.model.export_errors[job.runtime]
        elif stage_error:
            row["reason"] = stage_error
        else:
            try:
                if job.source == "native-tool":
                    res = run_native_job(device, job, paths, settings)
                else:
                    res = device.run_runner(runner_args(job, paths, settings.warmup, settings.runs, n_eval=settings.n_eval),
                                            settings.timeout)
                row_from_result(row, res, settings.atol)
            except (DeviceError, SscDeployError) as err:
                row["reason"] = str(err)
            except Exception as err:  # noqa: BLE001 - a runner crash or malformed result fails this row only
                row["status"], row["reason"] = "failed", f"{type(err).__name__}: {one_line(err)}"
        if job.source == "native-tool" and row["status"] == "ok":
            row["top1"] = row["top5"] = None
        rows.append(row)
    return rows
