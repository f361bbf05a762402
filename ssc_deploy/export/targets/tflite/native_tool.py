"""LiteRT's ``benchmark_model`` (the runtime table's ``native_tool_module`` of tflite).

Mean ("avg"), min, max, std of the timed runs, plus init and first-inference times and memory
footprint. No median.
"""

from __future__ import annotations

import re
from typing import Any

from ssc_deploy.devices.tool_output import NUM, strip_prefixes

WARMUP_IN_RUNS = False  # it has a warm-up flag


def command(tool: str, artifact: str, threads: int, warmup: int, runs: int) -> list[str]:
    """Its documented command line (XNNPACK on, peak memory reported)."""
    return [tool, f"--graph={artifact}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs}", "--use_xnnpack=true", "--report_peak_memory_footprint=true"]


def parse(text: str) -> dict[str, Any]:
    """Parse TFLite/LiteRT ``benchmark_model`` output (times in us) into milliseconds.

    Uses the last ``count=... avg=...`` line (the timed runs; the first one is warm-up).
    Raises :class:`ValueError` when no timing line is found.
    """
    lines = strip_prefixes(text)
    counts = []
    for line in lines:
        if "count=" in line and "avg=" in line:
            fields = dict(re.findall(rf"(\w+)=({NUM})", line))
            counts.append({k: float(v) for k, v in fields.items()})
    summary: dict[str, float] = {}
    for line in lines:
        m = re.search(r"Inference timings in us:(.*)", line)
        if m:
            for key, val in re.findall(rf"([A-Za-z][A-Za-z ()]*?):\s*({NUM})", m.group(1)):
                summary[key.strip()] = float(val)
    if not counts and "Inference (avg)" not in summary:
        raise ValueError("no timing line ('count=... avg=...' or 'Inference timings in us') in benchmark_model output")
    lat: dict[str, float] = {}
    if counts:
        run = counts[-1]
        for key in ("avg", "min", "max", "std"):
            if key in run:
                lat["mean" if key == "avg" else key] = run[key] / 1000.0
        if "count" in run:
            lat["count"] = int(run["count"])
    elif "Inference (avg)" in summary:
        lat["mean"] = summary["Inference (avg)"] / 1000.0
    result: dict[str, Any] = {"latency_ms": lat, "statistics": "mean/min/max/std (no median)"}
    if "Init" in summary:
        result["init_ms"] = summary["Init"] / 1000.0
    if "First inference" in summary:
        result["first_inference_ms"] = summary["First inference"] / 1000.0
    if "Warmup (avg)" in summary:
        result["warmup_mean_ms"] = summary["Warmup (avg)"] / 1000.0
    for line in lines:
        m = re.search(rf"Memory footprint delta from the start of the tool \(MB\):\s*init=({NUM})\s+overall=({NUM})", line)
        if m:
            result["memory_delta_init_mb"] = float(m.group(1))
            result["memory_delta_overall_mb"] = float(m.group(2))
        m = re.search(rf"[Pp]eak memory footprint \(MB\)[^:]*:\s*({NUM})", line)
        if m:
            result["peak_memory_mb"] = float(m.group(1))
    if "peak_memory_mb" not in result and "memory_delta_overall_mb" in result:
        result["peak_memory_mb"] = result["memory_delta_overall_mb"]
    return result
