"""The device runner's helpers: its error, memory readings, an ExecuTorch program's planned memory,
latency statistics and the inputs file (standard library and numpy only, like the runner).

Copied beside ``device_runner.py``, which imports it as a sibling module; never imports ssc_deploy.
"""

from __future__ import annotations

import os
import sys

class RunnerError(Exception):
    """A problem reported as ``{"ok": false, "error": ...}``."""


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    line = text.splitlines()[0] if text else type(err).__name__
    return line[:400]


def _proc_status_mb(key: str) -> float | None:
    """A memory figure of this process from /proc/self/status (``VmHWM``, ``VmRSS``) in MiB."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process in MiB (VmHWM, else ru_maxrss)."""
    peak = _proc_status_mb("VmHWM")
    if peak is not None:
        return peak
    try:
        import resource

        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports KiB, macOS bytes.
        return rss / (1024.0 * 1024.0) if sys.platform == "darwin" else rss / 1024.0
    except (ImportError, OSError):
        return None


def rss_mb() -> float | None:
    """Current resident set size of this process in MiB (VmRSS), None where /proc has none."""
    return _proc_status_mb("VmRSS")


def _fb_field(buf: bytes, table: int, index: int) -> int | None:
    """Absolute position of field ``index`` of the flatbuffer table at ``table`` (None when absent)."""
    import struct

    vtable = table - struct.unpack_from("<i", buf, table)[0]
    vt_len = struct.unpack_from("<H", buf, vtable)[0]
    slot = 4 + 2 * index
    if slot >= vt_len:
        return None
    off = struct.unpack_from("<H", buf, vtable + slot)[0]
    return table + off if off else None


def _fb_vector(buf: bytes, pos: int) -> tuple[int, int]:
    """(start of the elements, length) of the flatbuffer vector referenced at ``pos``."""
    import struct

    vec = pos + struct.unpack_from("<I", buf, pos)[0]
    return vec + 4, struct.unpack_from("<I", buf, vec)[0]


# Field slots in ExecuTorch's schema/program.fbs: Program.execution_plan, ExecutionPlan.name and
# ExecutionPlan.non_const_buffer_sizes.
_PROGRAM_EXECUTION_PLAN, _PLAN_NAME, _PLAN_NON_CONST_BUFFER_SIZES = 1, 0, 8


def pte_planned_bytes(path: str, method: str = "forward") -> int | None:
    """Bytes ExecuTorch's memory planning reserved for ``method``'s non-constant tensors in a .pte.

    The sum of the execution plan's ``non_const_buffer_sizes`` without entry 0 (reserved for
    constants), read straight from the program's flatbuffer; None when the file is not an
    ExecuTorch program or has no such method.
    """
    import struct

    with open(path, "rb") as f:
        buf = f.read()
    if len(buf) < 8 or buf[4:6] != b"ET":
        return None
    try:
        root = struct.unpack_from("<I", buf, 0)[0]
        plans = _fb_field(buf, root, _PROGRAM_EXECUTION_PLAN)
        if plans is None:
            return None
        start, n = _fb_vector(buf, plans)
        for i in range(n):
            elem = start + 4 * i
            plan = elem + struct.unpack_from("<I", buf, elem)[0]
            name_pos = _fb_field(buf, plan, _PLAN_NAME)
            name = ""
            if name_pos is not None:
                s, k = _fb_vector(buf, name_pos)
                name = buf[s : s + k].decode("utf-8", "replace")
            if name != method:
                continue
            sizes = _fb_field(buf, plan, _PLAN_NON_CONST_BUFFER_SIZES)
            if sizes is None:
                return 0
            s, k = _fb_vector(buf, sizes)
            return int(sum(struct.unpack_from(f"<{k}q", buf, s)[1:]))
    except struct.error:
        return None
    return None


def dist_version(dist: str) -> str:
    try:
        from importlib.metadata import version

        return version(dist)
    except Exception:  # noqa: BLE001
        return "unknown"


def _percentile(sorted_vals: list[float], q: float) -> float:
    """Linear-interpolated percentile of an already sorted list (numpy's default method)."""
    if len(sorted_vals) == 1:
        return sorted_vals[0]
    pos = (len(sorted_vals) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_vals) - 1)
    return sorted_vals[lo] + (sorted_vals[hi] - sorted_vals[lo]) * (pos - lo)


def summarize_latency(ms: list[float]) -> dict[str, float]:
    """Median, p10, p90, min and mean of latencies in milliseconds."""
    s = sorted(ms)
    return {
        "median": _percentile(s, 50),
        "p10": _percentile(s, 10),
        "p90": _percentile(s, 90),
        "min": s[0],
        "mean": sum(s) / len(s),
    }


def load_inputs(path: str | None, layout: str):
    import numpy as np

    if path is None:
        return None, None, None
    try:
        with np.load(path, allow_pickle=False) as z:
            if "x" not in z.files:
                raise RunnerError(f"{os.path.basename(path)}: inputs file has no array 'x'")
            x = np.ascontiguousarray(z["x"], dtype=np.float32)
            labels = z["labels"].astype(np.int64) if "labels" in z.files else None
            ref = z["reference"].astype(np.float32) if "reference" in z.files else None
    except RunnerError:
        raise
    except Exception as err:  # noqa: BLE001 - zipfile/ValueError/OSError
        raise RunnerError(f"{os.path.basename(path)}: not a readable inputs .npz ({first_line(err)})") from None
    if x.ndim != 4 or x.shape[0] == 0:
        raise RunnerError(f"inputs 'x' must be N x C x H x W with N >= 1, got shape {list(x.shape)}")
    if layout == "NHWC":
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    return x, labels, ref


def flips_vs_reference(pred, ref_pred, labels) -> dict:
    """Images PyTorch gets right and the model wrong (``right_to_wrong``), and the reverse."""
    import numpy as np

    if labels is None:
        return {"right_to_wrong": None, "wrong_to_right": None}
    k = min(len(pred), len(labels))
    ok, ref_ok = pred[:k] == labels[:k], ref_pred[:k] == labels[:k]
    return {"right_to_wrong": int(np.sum(ref_ok & ~ok)), "wrong_to_right": int(np.sum(~ref_ok & ok))}
