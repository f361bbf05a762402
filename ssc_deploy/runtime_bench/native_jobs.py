"""Jobs timed by a runtime's own benchmark tool (``--runner RUNTIME=PATH``): latency and memory only."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .model_under_test import Job
    from .settings import BenchSettings


def run_native_job(device, job: Job, paths: dict[Path, str], settings: BenchSettings) -> dict[str, Any]:
    """A native benchmark tool's figures for one job, shaped like the device runner's result."""
    try:
        from ssc_deploy.devices.native_tools import run_native
    except ImportError:
        return {"ok": False, "error": "native tools are not available in this installation"}
    art = job.artifact
    res = run_native(device, job.runtime, settings.runners[job.runtime], paths[art.path], job.threads,
                     settings.warmup, settings.runs, settings.pin_cores, timeout=settings.timeout)
    lat = res.get("latency_ms") or {}
    mean = lat.get("mean") or lat.get("median")
    return {
        "ok": True, "latency_ms": lat, "runs": settings.runs, "warmup": settings.warmup,
        "peak_rss_mb": res.get("peak_memory_mb"), "model_rss_mb": res.get("memory_delta_overall_mb"),
        "load_ms": res.get("init_ms"),
        "throughput_ips": 1000.0 / mean if mean else None, "tool": res.get("tool"),
    }
