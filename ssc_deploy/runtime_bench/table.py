"""The bench result as a terminal table, JSON and CSV."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from ssc_deploy.atomic import write_text_atomic
from ssc_deploy.accuracy_stats import significant
from ssc_deploy.display import as_text

from .cross_device import diff_lines
from .insn_counts import instruction_label
from .precision import speedup_text
from .rows import PREDICTIONS, VS_PYTORCH

STATUS_STYLE = {"ok": "green", "verify-failed": "yellow", "failed": "red"}
STATUS_TEXT = {"ok": "ok", "verify-failed": "exported, failed verification", "failed": "failed"}
# CSV columns first in this order, then any other key a row carries.
CSV_FIRST = (
    "device", "device_kind", "emulated", "model", "family", "role", "trained", "runtime", "precision", "quant_scheme",
    "runtime_version", "threads", "source", "status", "reason", "bytes", "params", "macs", "load_ms",
    "latency_median_ms", "latency_p10_ms", "latency_p90_ms", "latency_min_ms", "latency_mean_ms", "throughput_ips",
    "peak_rss_mb", "model_rss_mb", "planned_activation_bytes",
    "instructions_per_inference", "loads_per_inference", "stores_per_inference", "insn_profile",
    "instructions_ratio", "vs_fp32_instructions_ratio",
    "top1", "top5", "n_eval", "test_top1_pytorch", "eval_top1_pytorch", "parity_max_abs_diff",
    "parity_top1_agreement", "vs_fp32_size_ratio", "vs_fp32_speedup", "vs_fp32_top1_delta", "device_diff_to",
    "device_max_abs_diff", "device_top1_agreement", "device_diff_n", "ratio_to", "size_ratio", "params_ratio", "macs_ratio",
    "latency_ratio", "top1_delta", "artifact", "sha256",
)

# The uncertainty of a figure right after it in the CSV: the top-1's 95 % Wilson interval, and the
# flips (McNemar p) behind the agreement with PyTorch and each delta (``paired.py``).
CSV_AFTER = {
    "top1": ("top1_ci_low", "top1_ci_high"),
    "parity_top1_agreement": VS_PYTORCH,
    **{col: tuple(f"{prefix}{k}" for k in ("right_to_wrong", "wrong_to_right", "changed", "p"))
       for col, prefix in (("vs_fp32_top1_delta", "vs_fp32_"), ("device_diff_n", "device_"), ("top1_delta", "vs_base_"))},
}
LEGEND = "top-1 [95 % Wilson interval]; n.s.: a delta whose flips are not significant (exact McNemar p >= 0.05)"


def _num(v: Any, fmt: str, none: str = "-") -> str:
    return none if v is None else format(v, fmt)


def _size(n: int | None) -> str:
    if n is None:
        return "-"
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def kilobytes(n: int | None) -> str:
    """Bytes as kB with one decimal ("-" for none)."""
    return "-" if n is None else f"{n / 1e3:.1f}"


def _ratio(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}x"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f}%"


def _points(v: float | None) -> str:
    """A top-1 difference (a fraction) in points, signed."""
    return "-" if v is None else f"{v * 100:+.1f}"


def top1_with_interval(r: dict[str, Any]) -> str:
    """``96.9% [94.6-98.3]``: the top-1 and its 95 % Wilson interval (just the top-1 without one)."""
    lo, hi = r.get("top1_ci_low"), r.get("top1_ci_high")
    return _pct(r.get("top1")) + ("" if lo is None or hi is None else f" [{lo * 100:.1f}-{hi * 100:.1f}]")


def delta_verdict(v: float | None, p: float | None) -> str:
    """A top-1 delta in points, ``n.s.`` after it when its flips are not significant."""
    return _points(v) + ("" if v is None or p is None or significant(p) else " n.s.")


def _millions(v: int | None) -> str:
    return "-" if v is None else f"{v / 1e6:.2f}M"


def build_table(result: dict[str, Any]):
    """A rich Table: one row per model x runtime x threads (x device), ratio columns against the baseline."""
    from rich.table import Table

    rows = result.get("rows", [])
    ratio_to = (result.get("settings") or {}).get("ratio_to")
    multi_device = len({r["device"] for r in rows}) > 1
    native = any(r.get("source") != "device-runner" for r in rows)
    quantized = any(r.get("precision", "fp32") != "fp32" for r in rows)
    insn_label = instruction_label(rows)
    title = "ssc-deploy bench" + (f"  (ratios: model / {ratio_to})" if ratio_to else "")
    t = Table(title=title, header_style="bold", show_lines=False)
    if multi_device:
        t.add_column("device")
    t.add_column("model")
    t.add_column("runtime")
    t.add_column("prec")
    t.add_column("thr", justify="right")
    if native:
        t.add_column("source")
    t.add_column("status")
    t.add_column("size", justify="right")
    t.add_column("params", justify="right")
    t.add_column("MACs", justify="right")
    t.add_column("latency ms\nmedian [p10-p90]", justify="right")
    t.add_column("top-1", justify="right")
    t.add_column("parity\nmax|diff|", justify="right")
    t.add_column("peak\nMB", justify="right")
    t.add_column("model\nMB", justify="right")
    t.add_column("planned\nkB", justify="right")
    if quantized:
        t.add_column("vs fp32\nsize", justify="right")
        t.add_column("vs fp32\nspeed-up", justify="right")
        t.add_column("vs fp32\ntop-1", justify="right")
    if ratio_to:
        t.add_column("size\nratio", justify="right")
        t.add_column("latency\nratio", justify="right")
        t.add_column("top-1\ndelta", justify="right")
    if insn_label:
        t.add_column("instr./inf.\n" + insn_label.replace(", ", "\n"), justify="right")
        if ratio_to:
            t.add_column("instr.\nratio", justify="right")
        if quantized:
            t.add_column("instr.\nvs fp32", justify="right")
    for r in rows:
        status = r.get("status", "failed")
        lat = "-"
        if r.get("latency_median_ms") is not None:
            lat = f"{r['latency_median_ms']:.3f} [{r.get('latency_p10_ms', 0):.3f}-{r.get('latency_p90_ms', 0):.3f}]"
            if r.get("emulated"):
                lat += " emul."
        name = r["model"] + (" (base)" if r.get("role") == "baseline" else "")
        if not r.get("trained"):
            name += " untrained"
        cells = [as_text(r["device"])] if multi_device else []
        cells += [as_text(name), as_text(r["runtime"]), as_text(r.get("precision", "fp32")), str(r.get("threads", ""))]
        if native:
            cells.append(as_text(r.get("source", "")))
        cells += [
            f"[{STATUS_STYLE.get(status, 'red')}]{STATUS_TEXT.get(status, status)}[/]",
            _size(r.get("bytes")), _millions(r.get("params")), _millions(r.get("macs")), lat,
            top1_with_interval(r), _num(r.get("parity_max_abs_diff"), ".1e"), _num(r.get("peak_rss_mb"), ".0f"),
            _num(r.get("model_rss_mb"), ".1f"), kilobytes(r.get("planned_activation_bytes")),
        ]
        if quantized:
            cells += [_ratio(r.get("vs_fp32_size_ratio")), speedup_text(r, _ratio(r.get("vs_fp32_speedup"))),
                      delta_verdict(r.get("vs_fp32_top1_delta"), r.get("vs_fp32_p"))]
        if ratio_to:
            cells += [_ratio(r.get("size_ratio")), _ratio(r.get("latency_ratio")),
                      delta_verdict(r.get("top1_delta"), r.get("vs_base_p"))]
        if insn_label:
            cells.append(_millions(r.get("instructions_per_inference")))
            cells += [_ratio(r.get("instructions_ratio"))] if ratio_to else []
            cells += [_ratio(r.get("vs_fp32_instructions_ratio"))] if quantized else []
        t.add_row(*cells)
    return t


def failure_lines(result: dict[str, Any]) -> list[str]:
    """One line per row that did not pass, naming the reason."""
    return [
        f"{r['model']} {r['runtime']}{_prec(r)} x{r.get('threads')} on {r['device']}: "
        f"{STATUS_TEXT.get(r['status'], r['status'])}: {r.get('reason', '')}"
        for r in result.get("rows", [])
        if r.get("status") != "ok"
    ]


def _prec(row: dict[str, Any]) -> str:
    """`` int8`` / `` fp16`` after a runtime's name; nothing for fp32."""
    p = row.get("precision", "fp32")
    return "" if p == "fp32" else f" {p}"


def print_result(result: dict[str, Any], console=None) -> None:
    """Print the table, each failure's reason and the devices measured (names printed as data)."""
    from rich.console import Console
    from rich.text import Text

    console = console or Console()
    console.print(build_table(result))
    if any(r.get("top1_ci_low") is not None for r in result.get("rows", [])):
        console.print(as_text(LEGEND, style="dim"), highlight=False)
    for line in failure_lines(result):
        console.print(Text.assemble(("!", "yellow"), " ", as_text(line)), highlight=False)
    for line in diff_lines(result.get("rows", [])):
        console.print(as_text(line, style="dim"), highlight=False)
    for d in result.get("devices", []):
        rts = ", ".join(f"{k} {v}" for k, v in (d.get("runtimes") or {}).items())
        line = as_text(f"{d.get('name')}: {d.get('model') or d.get('machine', '')}, {d.get('cores', '?')} cores, "
                       f"{d.get('os', '')}; {rts}", style="dim")
        if d.get("emulated"):
            line.append(f" (emulated: {emulated_check(result, d.get('name'))}; latency is not an ARM figure)",
                        style="yellow")
        console.print(line, highlight=False)
        if (d.get("extra") or {}).get("warning"):
            console.print(Text.assemble(("!", "yellow"), " ", as_text(d["extra"]["warning"])), highlight=False)


def emulated_check(result: dict[str, Any], device: str | None) -> str:
    """What a run on an emulated device checked: how many test images, parity on how many rows."""
    rows = [r for r in result.get("rows", []) if r.get("device") == device]
    checked = [r for r in rows if r.get("parity_max_abs_diff") is not None]
    images = max((r.get("n_eval") or 0 for r in rows), default=0)
    shown = f"{images} test images, " if images else ""
    return f"a correctness check: {shown}parity with PyTorch on {len(checked)} of {len(rows)} rows"


def to_json(result: dict[str, Any]) -> str:
    """The whole result as indented JSON."""
    return json.dumps(result, indent=2, default=str) + "\n"


def csv_columns(rows: list[dict[str, Any]]) -> list[str]:
    """CSV_FIRST (each with its CSV_AFTER), then any other key a row carries; never the per-image predictions."""
    cols = [c for k in CSV_FIRST for c in (k, *CSV_AFTER.get(k, ()))]
    for r in rows:
        for k in r:
            if k not in cols and k != PREDICTIONS:
                cols.append(k)
    return cols


def to_csv(result: dict[str, Any]) -> str:
    """One CSV line per row with every figure (device runtime versions in each row's columns)."""
    rows = result.get("rows", [])
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=csv_columns(rows), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return buf.getvalue()


def write_json(result: dict[str, Any], path: str | Path) -> None:
    """Write the result JSON atomically."""
    write_text_atomic(path, to_json(result))


def write_csv(result: dict[str, Any], path: str | Path) -> None:
    """Write the rows as CSV atomically."""
    write_text_atomic(path, to_csv(result), errors="backslashreplace")  # a name with a lone surrogate
