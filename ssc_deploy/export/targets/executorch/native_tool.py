"""ExecuTorch's ``executor_runner`` (the runtime table's ``native_tool_module`` of executorch).

Total time of N executions (mean = total / N); newer builds also print every iteration, from
which median/min/max are computed. It has no warm-up flag, so warm-up runs are folded into the
count and reported as such.
"""

from __future__ import annotations

import re
import statistics
from typing import Any

from ssc_deploy.devices.tool_output import NUM, strip_prefixes

WARMUP_IN_RUNS = True  # no warm-up flag: warm-up runs are added to the executions and reported in the result


def command(tool: str, artifact: str, threads: int, warmup: int, runs: int) -> list[str]:
    """Its documented command line (``runs`` already counts the warm-up runs)."""
    return [tool, f"--model_path={artifact}", f"--num_executions={runs}", f"--cpu_threads={threads}"]


def parse(text: str) -> dict[str, Any]:
    """Parse ExecuTorch ``executor_runner`` output (milliseconds).

    Raises :class:`ValueError` when the ``Model executed successfully N time(s) in X ms`` line is missing.
    """
    lines = strip_prefixes(text)
    total = None
    for line in lines:
        m = re.search(rf"Model executed successfully\s+(\d+)\s+time\(s\)\s+in\s+({NUM})\s*ms", line)
        if m:
            total = (int(m.group(1)), float(m.group(2)))
    if total is None:
        raise ValueError("no 'Model executed successfully N time(s) in X ms' line in executor_runner output")
    iters = []
    for line in lines:
        m = re.search(rf"Iteration\s+\d+\s*(?:of\s+\d+)?\s*:\s*({NUM})\s*ms", line)
        if m:
            iters.append(float(m.group(1)))
    n, total_ms = total
    lat: dict[str, float] = {"mean": total_ms / max(n, 1), "count": n}
    if iters:
        lat.update(median=statistics.median(iters), min=min(iters), max=max(iters), mean=statistics.fmean(iters))
        stats = "median/mean/min/max from per-iteration lines"
    else:
        stats = "mean only (total time / executions)"
    return {"latency_ms": lat, "total_ms": total_ms, "statistics": stats}
