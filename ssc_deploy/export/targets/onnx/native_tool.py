"""``onnxruntime_perf_test`` (the runtime table's ``native_tool_module`` of onnx).

Mean ("Average inference time cost"), min, max and the P50/P90/P95/P99/P999 latencies (P50 is
reported as the median), peak working set.
"""

from __future__ import annotations

import re
from typing import Any

from ssc_deploy.devices.tool_output import NUM, strip_prefixes

WARMUP_IN_RUNS = False  # it warms up on its own


def command(tool: str, artifact: str, threads: int, warmup: int, runs: int) -> list[str]:
    """Its documented command line (CPU provider, a fixed number of runs)."""
    return [tool, "-e", "cpu", "-m", "times", "-r", str(runs), "-x", str(threads), "-I", artifact]


def parse(text: str) -> dict[str, Any]:
    """Parse ``onnxruntime_perf_test`` output into milliseconds (P50 is the median).

    Raises :class:`ValueError` when the average inference time is missing.
    """
    lines = strip_prefixes(text)
    lat: dict[str, float] = {}
    result: dict[str, Any] = {"latency_ms": lat, "statistics": "mean, min/max and P50..P999 percentiles"}
    for line in lines:
        m = re.search(rf"Average inference time cost:\s*({NUM})\s*ms", line)
        if m:
            lat["mean"] = float(m.group(1))
        m = re.search(rf"\b(Min|Max|P50|P90|P95|P99|P999) Latency:\s*({NUM})\s*s", line)
        if m:
            key = {"Min": "min", "Max": "max", "P50": "median"}.get(m.group(1), m.group(1).lower())
            lat[key] = float(m.group(2)) * 1000.0
        m = re.search(rf"Peak working set size:\s*({NUM})\s*bytes", line)
        if m:
            result["peak_memory_mb"] = float(m.group(1)) / 2**20
        m = re.search(rf"Number of inferences per second:\s*({NUM})", line)
        if m:
            result["throughput_per_s"] = float(m.group(1))
        m = re.search(rf"Session creation time cost:\s*({NUM})\s*s", line)
        if m:
            result["init_ms"] = float(m.group(1)) * 1000.0
        m = re.search(rf"Total inference requests:\s*({NUM})", line)
        if m:
            lat["count"] = int(float(m.group(1)))
    if "mean" not in lat:
        raise ValueError("no 'Average inference time cost: X ms' line in onnxruntime_perf_test output")
    return result
