"""The benchmark harness: artifacts x runtimes x precisions x thread counts x devices, one subprocess each.

``run_bench`` resolves what to measure (exported artifacts with their manifests,
checkpoints exported first, baselines by name), writes one inputs ``.npz`` per model
(real evaluation images, labels, PyTorch reference logits), runs the standalone device
runner for every combination on every device (remote devices in parallel, one thread each;
the host and emulated devices, which share this CPU, take turns; measurements on a device
strictly one after another), and returns a JSON-ready result:
``{"schema", "created", "tool_version", "status", "settings", "devices", "models", "rows"}``.

A failure in one row is recorded in that row (``status`` ``failed`` with a ``reason``) and
never loses the others; bad input found before measuring raises :class:`SscDeployError`.
See ``method.md`` beside this file for how the figures are measured. Each step is its own
module: ``settings``, ``sources``, ``baselines``, ``runtime_choice``, ``exports``, ``inputs``
(with ``reference``), ``jobs`` (with ``native_jobs``), ``schedule``, ``rows``, ``precision`` (the columns against
each model's fp32 file), ``cross_device`` (the same file's logits on two devices) and ``paired``
(the images that flip behind every top-1 delta, with McNemar's p).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

from ssc_deploy import __version__
from ssc_deploy.errors import SscDeployError

from .cross_device import add_device_diffs
from .inputs import write_inputs
from .jobs import ProgressFn, plan_jobs
from .paired import add_paired, eval_facts
from .precision import add_fp32_columns
from .prepare import prepare_models
from .rows import add_ratios, run_status
from .runtime_choice import check_installed_on_host
from .schedule import cleanup_devices, device_dict, device_infos, run_on_devices
from .settings import BenchSettings, check_settings

SCHEMA = "ssc-deploy-bench/1"

__all__ = ["SCHEMA", "BenchSettings", "run_bench"]


@contextlib.contextmanager
def _work_dir(work_dir: str | Path | None) -> Iterator[Path]:
    """``work_dir`` (created), or a temporary directory removed afterwards."""
    if work_dir is not None:
        work = Path(work_dir)
        work.mkdir(parents=True, exist_ok=True)
        yield work
        return
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-bench-") as tmp:
        yield Path(tmp)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_bench(
    sources: list[str | Path],
    settings: BenchSettings | None = None,
    devices: list | None = None,
    work_dir: str | Path | None = None,
    progress: ProgressFn | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Benchmark ``sources`` (artifacts and/or checkpoints) and the baselines on ``devices``.

    ``progress(label)`` is called before each measurement, ``on_plan(total)`` once the number
    of measurements is known. Returns the result dict written by ``--json``.
    """
    settings = settings or BenchSettings()
    check_settings(settings)
    if devices is None:
        from ssc_deploy.devices.host import HostDevice

        devices = [HostDevice()]
    with _work_dir(work_dir) as work:
        try:
            infos = device_infos(devices)
            check_installed_on_host(settings.runtimes, [i.kind for i in infos])
            models, runtimes = prepare_models(sources, settings, work)
            for m in models:
                write_inputs(m, settings.data, settings.inputs_n_eval([i.emulated for i in infos]), work)
            jobs = plan_jobs(models, runtimes, settings)
            if not jobs:
                raise SscDeployError("nothing to measure: no artifact matches the runtimes asked (--runtime)")
            if on_plan:
                on_plan(len(jobs) * len(devices))
            rows = run_on_devices(devices, infos, jobs, settings, progress)
            add_device_diffs(rows)
            add_fp32_columns(rows)
            baselines = [m.name for m in models if m.role == "baseline"]
            ratio_to = settings.ratio_to or (baselines[0] if baselines else None)
            add_ratios(rows, ratio_to)
            facts = eval_facts(models)
            add_paired(rows, facts, ratio_to)
            return {
                "schema": SCHEMA,
                "created": _now(),
                "tool_version": __version__,
                "status": run_status(rows),
                "settings": {**settings.to_dict(), "runtimes": runtimes, "ratio_to": ratio_to},
                "devices": [device_dict(d) for d in devices],
                "models": [{**m.describe(), **facts.get(m.name, {})} for m in models],
                "rows": rows,
            }
        finally:
            cleanup_devices(devices)
