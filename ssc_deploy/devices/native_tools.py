"""The native benchmark tools a user supplies (run on the device), and their output parsers.

Which statistics each tool gives (all times returned in milliseconds):

- TFLite/LiteRT ``benchmark_model``: mean ("avg"), min, max, std of the timed runs, plus
  init and first-inference times and memory footprint. No median.
- ``onnxruntime_perf_test``: mean ("Average inference time cost"), min, max and the
  P50/P90/P95/P99/P999 latencies (P50 is reported as the median), peak working set.
- ExecuTorch ``executor_runner``: total time of N executions (mean = total / N); newer
  builds also print every iteration, from which median/min/max are computed. It has no
  warm-up flag, so warm-up runs are folded into the count and reported as such.
"""

from __future__ import annotations

import re
import shlex
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ssc_deploy.errors import last_line
from ssc_deploy.runtimes import RUNTIME_NAMES

from .base import DeviceError

if TYPE_CHECKING:
    from .base import Device

_NUM = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"


def _f(text: str) -> float:
    return float(text)


def _strip_prefixes(text: str) -> list[str]:
    """Lines without the log prefixes tools add (``INFO: ``, ``I tflite/...: ``, timestamps)."""
    out = []
    for line in text.splitlines():
        line = re.sub(r"^\s*(?:\[?[A-Z]+\]?:?\s+|[IWE]\d{4}\s+[\d:.]+\s+\d+\s+\S+\]\s*)", "", line)
        out.append(line.strip())
    return out


def parse_benchmark_model(text: str) -> dict[str, Any]:
    """Parse TFLite/LiteRT ``benchmark_model`` output (times in us) into milliseconds.

    Uses the last ``count=... avg=...`` line (the timed runs; the first one is warm-up).
    Raises :class:`ValueError` when no timing line is found.
    """
    lines = _strip_prefixes(text)
    counts = []
    for line in lines:
        if "count=" in line and "avg=" in line:
            fields = dict(re.findall(rf"(\w+)=({_NUM})", line))
            counts.append({k: _f(v) for k, v in fields.items()})
    summary: dict[str, float] = {}
    for line in lines:
        m = re.search(r"Inference timings in us:(.*)", line)
        if m:
            for key, val in re.findall(rf"([A-Za-z][A-Za-z ()]*?):\s*({_NUM})", m.group(1)):
                summary[key.strip()] = _f(val)
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
        m = re.search(rf"Memory footprint delta from the start of the tool \(MB\):\s*init=({_NUM})\s+overall=({_NUM})", line)
        if m:
            result["memory_delta_init_mb"] = _f(m.group(1))
            result["memory_delta_overall_mb"] = _f(m.group(2))
        m = re.search(rf"[Pp]eak memory footprint \(MB\)[^:]*:\s*({_NUM})", line)
        if m:
            result["peak_memory_mb"] = _f(m.group(1))
    if "peak_memory_mb" not in result and "memory_delta_overall_mb" in result:
        result["peak_memory_mb"] = result["memory_delta_overall_mb"]
    return result


def parse_onnxruntime_perf_test(text: str) -> dict[str, Any]:
    """Parse ``onnxruntime_perf_test`` output into milliseconds (P50 is the median).

    Raises :class:`ValueError` when the average inference time is missing.
    """
    lines = _strip_prefixes(text)
    lat: dict[str, float] = {}
    result: dict[str, Any] = {"latency_ms": lat, "statistics": "mean, min/max and P50..P999 percentiles"}
    for line in lines:
        m = re.search(rf"Average inference time cost:\s*({_NUM})\s*ms", line)
        if m:
            lat["mean"] = _f(m.group(1))
        m = re.search(rf"\b(Min|Max|P50|P90|P95|P99|P999) Latency:\s*({_NUM})\s*s", line)
        if m:
            key = {"Min": "min", "Max": "max", "P50": "median"}.get(m.group(1), m.group(1).lower())
            lat[key] = _f(m.group(2)) * 1000.0
        m = re.search(rf"Peak working set size:\s*({_NUM})\s*bytes", line)
        if m:
            result["peak_memory_mb"] = _f(m.group(1)) / 2**20
        m = re.search(rf"Number of inferences per second:\s*({_NUM})", line)
        if m:
            result["throughput_per_s"] = _f(m.group(1))
        m = re.search(rf"Session creation time cost:\s*({_NUM})\s*s", line)
        if m:
            result["init_ms"] = _f(m.group(1)) * 1000.0
        m = re.search(rf"Total inference requests:\s*({_NUM})", line)
        if m:
            lat["count"] = int(_f(m.group(1)))
    if "mean" not in lat:
        raise ValueError("no 'Average inference time cost: X ms' line in onnxruntime_perf_test output")
    return result


def parse_executor_runner(text: str) -> dict[str, Any]:
    """Parse ExecuTorch ``executor_runner`` output (milliseconds).

    Raises :class:`ValueError` when the ``Model executed successfully N time(s) in X ms`` line is missing.
    """
    lines = _strip_prefixes(text)
    total = None
    for line in lines:
        m = re.search(rf"Model executed successfully\s+(\d+)\s+time\(s\)\s+in\s+({_NUM})\s*ms", line)
        if m:
            total = (int(m.group(1)), _f(m.group(2)))
    if total is None:
        raise ValueError("no 'Model executed successfully N time(s) in X ms' line in executor_runner output")
    iters = []
    for line in lines:
        m = re.search(rf"Iteration\s+\d+\s*(?:of\s+\d+)?\s*:\s*({_NUM})\s*ms", line)
        if m:
            iters.append(_f(m.group(1)))
    n, total_ms = total
    lat: dict[str, float] = {"mean": total_ms / max(n, 1), "count": n}
    if iters:
        lat.update(median=statistics.median(iters), min=min(iters), max=max(iters), mean=statistics.fmean(iters))
        stats = "median/mean/min/max from per-iteration lines"
    else:
        stats = "mean only (total time / executions)"
    return {"latency_ms": lat, "total_ms": total_ms, "statistics": stats}


PARSERS = {"tflite": parse_benchmark_model, "onnxruntime": parse_onnxruntime_perf_test, "executorch": parse_executor_runner}


def _unknown_runtime(runtime: str) -> DeviceError:
    return DeviceError(f"unknown runtime '{runtime}' for a native tool (use {', '.join(RUNTIME_NAMES)})")


def native_command(
    runtime: str, tool: str, artifact: str, threads: int, warmup: int, runs: int, pin_cores: str | None = None
) -> list[str]:
    """The documented command line of each tool (``pin_cores`` like ``"4-7"`` adds ``taskset -c``)."""
    if runtime == "tflite":
        argv = [
            tool, f"--graph={artifact}", f"--num_threads={threads}", f"--warmup_runs={warmup}",
            f"--num_runs={runs}", "--use_xnnpack=true", "--report_peak_memory_footprint=true",
        ]
    elif runtime == "onnxruntime":
        argv = [tool, "-e", "cpu", "-m", "times", "-r", str(runs), "-x", str(threads), "-I", artifact]
    elif runtime == "executorch":
        # No warm-up flag: warm-up runs are added to the executions and reported in the result.
        argv = [tool, f"--model_path={artifact}", f"--num_executions={runs}", f"--cpu_threads={threads}"]
    else:
        raise _unknown_runtime(runtime)
    if pin_cores:
        argv = ["taskset", "-c", str(pin_cores), *argv]
    return argv


ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64", 0x28: "arm", 0x03: "x86", 0xF3: "riscv"}


def elf_machine(path: Path) -> str | None:
    """The CPU architecture of an ELF executable (``aarch64``, ``x86_64``...), or None for a script."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    code = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(code, f"elf-machine-{code:#x}")


def check_tool(tool_path: str | Path, device_machine: str) -> Path:
    """Fail with one clear line when the tool is missing, not a file, or built for another CPU."""
    path = Path(tool_path)
    if not path.is_file():
        raise DeviceError(f"native tool not found: {path}")
    machine = elf_machine(path)
    norm = {"arm64": "aarch64", "arm64-v8a": "aarch64", "amd64": "x86_64"}
    want = norm.get(device_machine, device_machine)
    if want.startswith("armv") or want == "armeabi-v7a":
        want = "arm"
    if machine is not None and want and machine != want:
        raise DeviceError(f"native tool {path.name} is built for {machine}, but the device is {want}: build it for {want}")
    return path


def run_native(
    device: "Device",
    runtime: str,
    tool_path: str | Path,
    artifact_device_path: str,
    threads: int = 1,
    warmup: int = 5,
    runs: int = 50,
    pin_cores: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Stage the native tool on ``device``, run it on an already staged artifact, parse its output.

    Returns ``{"latency_ms": {...}, "peak_memory_mb"?, "init_ms"?, "source": "native-tool",
    "tool": name, "statistics": what the tool gives, "command": ..., "raw": output}``.
    Raises :class:`DeviceError` (one line) on a missing/wrong-ABI tool, a failed run or unparseable output.
    """
    if runtime not in PARSERS:
        raise _unknown_runtime(runtime)
    path = check_tool(tool_path, device.info().machine)
    staged = device.stage([path])[path]
    device.run_command(["chmod", "755", staged], timeout=30)
    n = runs + warmup if runtime == "executorch" else runs
    argv = native_command(runtime, staged, artifact_device_path, threads, warmup, n, pin_cores)
    rc, out, err = device.run_command(argv, timeout=timeout)
    text = out + ("\n" + err if err else "")
    if rc != 0:
        last = last_line(text, "no output")
        if rc in (126, 127) or "exec format error" in text.lower() or "not found" in last.lower():
            raise DeviceError(f"{device.name}: cannot execute {path.name} (exit {rc}: {last.strip()}); is it built for this device's CPU?")
        raise DeviceError(f"{device.name}: {path.name} failed with exit code {rc}: {last.strip()}")
    try:
        result = PARSERS[runtime](text)
    except ValueError as exc:
        raise DeviceError(f"{device.name}: {path.name}: {exc}") from None
    result.update(source="native-tool", tool=path.name, command=shlex.join(argv), raw=text)
    if runtime == "executorch":
        result["warmup_included"] = warmup
    return result
