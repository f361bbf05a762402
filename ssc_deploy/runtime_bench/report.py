"""``--report DIR``: accuracy-vs-cost plots in the style of the paper's Figures 4 and 5, and report.md.

Three PNGs: top-1 accuracy against median latency (one panel per runtime), against file
size and against MACs; one colour per model family, one marker shape per precision (fp32
circle, int8 square, fp16 triangle), the Pareto front (no other point is both cheaper and
more accurate) drawn as a dashed step line, each top-1 with its 95 % Wilson interval as an error
bar. The runtime is the panel (latency) or named on the axis (size: one runtime's files).
Untrained models have no accuracy and are left out of the plots (they stay in the table).
report.md also gets the flip matrix and the picture grid of :mod:`.flip_report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssc_deploy.atomic import write_text_atomic
from ssc_deploy.display import md_cell, shown

from ssc_deploy.accuracy_stats import format_p, significant

from .cross_device import diff_lines
from .insn_counts import COUNTED_INFERENCES, instruction_label
from .flip_report import flip_sections
from .plots import pyplot, save_png
from .precision import speedup_text
from .table import STATUS_TEXT, kilobytes

FAMILY_COLOURS = {"ssc-net": "#d62728", "mobilenetv2": "#1f77b4", "igcv3": "#2ca02c", "shiftnet": "#9467bd"}
OTHER_COLOURS = ["#ff7f0e", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
PRECISION_MARKERS = {"fp32": "o", "int8": "s", "fp16": "^"}

# What --report DIR holds (report_files lists them for the check that no input is among them).
REPORT_MD, LATENCY_PLOT, SIZE_PLOT, MACS_PLOT = ("report.md", "accuracy_vs_latency.png", "accuracy_vs_size.png",
                                                 "accuracy_vs_macs.png")
REPORT_FILES = (REPORT_MD, LATENCY_PLOT, SIZE_PLOT, MACS_PLOT)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (x, lower is better) and accuracy (y, higher)."""
    front: list[tuple[float, float]] = []
    best = float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def _colours(families: list[str]) -> dict[str, str]:
    out, i = {}, 0
    for f in families:
        if f in FAMILY_COLOURS:
            out[f] = FAMILY_COLOURS[f]
        elif f not in out:
            out[f] = OTHER_COLOURS[i % len(OTHER_COLOURS)]
            i += 1
    return out


def _plot_rows(result: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows that can go on an accuracy plot: passed, trained, measured by the runner, one thread count."""
    rows = [r for r in result.get("rows", []) if r.get("status") == "ok" and r.get("top1") is not None
            and r.get("source") == "device-runner"]
    if not rows:
        return []
    threads = min(r["threads"] for r in rows)
    return [r for r in rows if r["threads"] == threads]


def _point_name(row: dict[str, Any]) -> str:
    """A point's label: the model, and its precision unless fp32."""
    prec = row.get("precision", "fp32")
    return _plot_text(row["model"]) + ("" if prec == "fp32" else f" {prec}")


def _scatter(ax, rows: list[dict[str, Any]], xkey: str, colours: dict[str, str], scale: float = 1.0) -> None:
    seen_label = set()
    for r in rows:
        x = r.get(xkey)
        if x is None:
            continue
        fam = r.get("family", "unknown")
        name = _point_name(r)
        label = name if name not in seen_label else None
        seen_label.add(name)
        lo, hi = r.get("top1_ci_low"), r.get("top1_ci_high")
        if lo is not None and hi is not None:  # the 95 % Wilson interval
            ax.errorbar(x * scale, r["top1"] * 100, yerr=[[(r["top1"] - lo) * 100], [(hi - r["top1"]) * 100]],
                        fmt="none", ecolor=colours.get(fam, "#333333"), elinewidth=1, capsize=3, zorder=2.5)
        ax.scatter(x * scale, r["top1"] * 100, s=60, color=colours.get(fam, "#333333"),
                   marker=PRECISION_MARKERS.get(r.get("precision", "fp32"), "D"),
                   edgecolor="black", linewidth=0.5, label=label, zorder=3)
        ax.annotate(name, (x * scale, r["top1"] * 100), textcoords="offset points", xytext=(5, 4), fontsize=7)
    pts = [(r[xkey] * scale, r["top1"] * 100) for r in rows if r.get(xkey) is not None]
    front = pareto_front(pts)
    if front:
        xs, ys = zip(*front)
        ax.step(xs, ys, where="post", linestyle="--", color="grey", linewidth=1, zorder=2)
        ax.scatter(xs, ys, s=180, facecolors="none", edgecolors="grey", linewidth=1.2, zorder=2,
                   label="Pareto front")
    ax.grid(True, alpha=0.3)
    ax.set_ylabel("top-1 accuracy (%), bars: 95 % interval")


def write_plots(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """Write the accuracy-vs-latency/size/MACs PNGs; return their paths (none when nothing is plottable)."""
    plt = pyplot()
    rows = _plot_rows(result)
    if not rows:
        return []
    colours = _colours([r.get("family", "unknown") for r in rows])
    device = rows[0]["device"]
    rows = [r for r in rows if r["device"] == device]  # latency is only comparable on one device
    written = []
    runtimes = list(dict.fromkeys(r["runtime"] for r in rows))
    fig, axes = plt.subplots(1, len(runtimes), figsize=(5 * len(runtimes), 4), squeeze=False)
    emulated = any(r.get("emulated") for r in rows)
    for ax, rt in zip(axes[0], runtimes):
        _scatter(ax, [r for r in rows if r["runtime"] == rt], "latency_median_ms", colours)
        ax.set_xlabel("median latency, batch 1 (ms)" + (" - EMULATED" if emulated else ""))
        ax.set_title(f"{rt}, {rows[0]['threads']} thread(s), {device}")
        ax.legend(fontsize=7, loc="best")
    fig.suptitle("Top-1 accuracy against latency", y=1.03)
    path = out_dir / LATENCY_PLOT
    save_png(fig, path)
    plt.close(fig)
    written.append(path)

    for key, scale, xlabel, name, title in (
        ("bytes", 1e-6, "file size (MB)", SIZE_PLOT, "Accuracy against file size"),
        ("macs", 1e-6, "multiply-accumulates (M)", MACS_PLOT, "Accuracy against MACs"),
    ):
        # One point per model and precision: its first runtime's row (file sizes differ little between formats).
        first = {}
        for r in rows:
            first.setdefault((r["model"], r.get("precision", "fp32")), r)
        sel = list(first.values())
        if not any(r.get(key) for r in sel):
            continue
        fig, ax = plt.subplots(figsize=(6, 4.5))
        _scatter(ax, sel, key, colours, scale=scale)
        ax.set_xlabel(xlabel + (f" ({sel[0]['runtime']} file)" if key == "bytes" else ""))
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7, loc="best")
        path = out_dir / name
        save_png(fig, path)
        plt.close(fig)
        written.append(path)
    return written


def _plot_text(name: str) -> str:
    """A model name as a plot label: printable, and no ``$`` for matplotlib to read as mathtext."""
    return shown(name).replace("$", r"\$")


def _pts(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:+.1f}"


def top1_cell(r: dict[str, Any]) -> str:
    """``96.9 ±1.8 (94.6-98.3)``: top-1 in %, the half-width and the ends of its 95 % Wilson interval."""
    t, lo, hi = r.get("top1"), r.get("top1_ci_low"), r.get("top1_ci_high")
    if t is None:
        return "-"
    if lo is None or hi is None:
        return f"{t * 100:.1f}"
    return f"{t * 100:.1f} ±{(hi - lo) * 50:.1f} ({lo * 100:.1f}-{hi * 100:.1f})"


def delta_cell(r: dict[str, Any], delta_key: str, prefix: str) -> str:
    """``-0.6 (3 right->wrong, 1 wrong->right, p 0.62, not significant)``: a top-1 delta and its flips."""
    d, p = r.get(delta_key), r.get(f"{prefix}p")
    if d is None or p is None:
        return _pts(d)
    verdict = "significant" if significant(p) else "not significant"
    return (f"{_pts(d)} ({r[f'{prefix}right_to_wrong']} right->wrong, {r[f'{prefix}wrong_to_right']} wrong->right, "
            f"p {format_p(p)}, {verdict})")


def _md_table(result: dict[str, Any]) -> str:
    cols = ["device", "model", "runtime", "precision", "threads", "status", "size (kB)", "params (M)", "MACs (M)",
            "median ms", "p10-p90 ms", "top-1 %", "parity max abs diff", "peak MB", "model MB", "planned kB", "size vs fp32", "speed-up vs fp32",
            "top-1 vs fp32", "size ratio", "latency ratio", "top-1 delta"]
    insn_label = instruction_label(result.get("rows", []))
    if insn_label:
        cols += [f"M instructions / inference ({insn_label})", "instructions ratio", "instructions vs fp32"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for r in result.get("rows", []):
        name = md_cell(r["model"]) + (" (baseline)" if r.get("role") == "baseline" else "") + ("" if r.get("trained") else ", untrained")
        lat_range = "-" if r.get("latency_p10_ms") is None else f"{r['latency_p10_ms']:.3f}-{r['latency_p90_ms']:.3f}"
        lat = f(r.get("latency_median_ms"), ".3f") + (" (emulated)" if r.get("emulated") and r.get("latency_median_ms") else "")
        status = STATUS_TEXT.get(r["status"], r["status"]) + (f": {r['reason']}" if r.get("reason") else "")
        cells = [
            md_cell(r["device"]), name,
            md_cell(r["runtime"] + ("" if r.get("source") == "device-runner" else f" ({r.get('source')})")),
            md_cell(r.get("precision", "fp32")), str(r["threads"]), md_cell(status),
            f(r["bytes"] / 1e3 if r.get("bytes") else None, ".1f"),
            f(r["params"] / 1e6 if r.get("params") else None, ".3f"), f(r["macs"] / 1e6 if r.get("macs") else None, ".1f"),
            lat, lat_range, top1_cell(r),
            f(r.get("parity_max_abs_diff"), ".1e"), f(r.get("peak_rss_mb"), ".0f"),
            f(r.get("model_rss_mb"), ".1f"), kilobytes(r.get("planned_activation_bytes")),
            f(r.get("vs_fp32_size_ratio"), ".2f"), speedup_text(r, f(r.get("vs_fp32_speedup"), ".2f")),
            delta_cell(r, "vs_fp32_top1_delta", "vs_fp32_"),
            f(r.get("size_ratio"), ".2f"), f(r.get("latency_ratio"), ".2f"), delta_cell(r, "top1_delta", "vs_base_"),
        ]
        if insn_label:
            ins = r.get("instructions_per_inference")
            cells += [f(ins / 1e6 if ins else None, ".2f"), f(r.get("instructions_ratio"), ".2f"),
                      f(r.get("vs_fp32_instructions_ratio"), ".2f")]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def render_markdown(result: dict[str, Any], plots: list[Path], out_dir: Path | None = None) -> str:
    """report.md: settings, devices, the table, the flip matrix and picture grid (the grid's PNG
    written into ``out_dir``, when given), the plots and how the figures were measured."""
    s = result.get("settings", {})
    evaluated = max((r.get("n_eval") or 0 for r in result.get("rows", [])), default=0)
    n_images = f"{evaluated} test images" if evaluated else ("all test images" if not s.get("n_eval") else f"{s.get('n_eval')} test images")
    out = [
        "# ssc-deploy benchmark report",
        "",
        f"Created {result.get('created')} by ssc-deploy {result.get('tool_version')}; run status: **{result.get('status')}**.",
        "",
        f"Settings: runtimes {', '.join(s.get('runtimes', []))}; threads {s.get('threads')}; "
        f"{s.get('warmup')} warm-up and {s.get('runs')} timed runs at batch 1; evaluation data "
        f"`{s.get('data') or 'digits'}` ({n_images}); ratios against `{s.get('ratio_to') or 'none'}` "
        "(model / baseline of the same precision, below 1 favours the model; top-1 delta in points). "
        "Columns \"vs fp32\" compare an int8 or fp16 file with the fp32 file of the same model and runtime: "
        "size ratio, speed-up (fp32 median / this median, above 1 is faster) and top-1 difference in points. "
        "Every top-1 is given with its 95 % Wilson score interval (± half its width, then its ends); every top-1 "
        "difference with the images that flip between the two rows (right->wrong: the reference row right, this "
        "row wrong) and the exact McNemar p-value of those flips: \"not significant\" where p >= 0.05, i.e. the "
        "two rows cannot be told apart on these images.",
        "",
        "## Devices",
        "",
    ]
    for d in result.get("devices", []):
        rts = ", ".join(f"{k} {v}" for k, v in (d.get("runtimes") or {}).items())
        out.append(f"- **{md_cell(d.get('name'))}** ({d.get('kind')}): " + md_cell(
                   f"{d.get('model') or ''} {d.get('machine', '')}, {d.get('cores', '?')} cores, {d.get('os', '')}, "
                   f"Python {d.get('python', '')}; {rts}")
                   + (" - **emulated: latency is not an ARM figure**" if d.get("emulated") else ""))
    out += ["", "## Results", "", _md_table(result), ""]
    notes = [f"- {md_cell(m['name'])}: {md_cell(n)}" for m in result.get("models", []) for n in m.get("notes", [])]
    notes += [f"- {md_cell(line)}" for line in diff_lines(result.get("rows", []))]
    if notes:
        out += ["Notes:", "", *notes, ""]
    out += flip_sections(result, out_dir)
    if plots:
        out += ["## Accuracy against cost", "",
                "One colour per family, one marker per precision (fp32 circle, int8 square, fp16 triangle); the "
                "dashed line is the Pareto front (no other point is both cheaper and more accurate). Untrained "
                "models are not plotted; the bars are the 95 % Wilson intervals of the top-1.", ""]
        out += [f"![{p.stem}]({p.name})" for p in plots]
        out.append("")
    out += [
        "## Method",
        "",
        "Each row ran in its own process (the device runner: numpy and one runtime), so load time and peak memory "
        "belong to that model and runtime alone. The process peak ('peak MB') includes the interpreter, numpy and "
        "the runtime's libraries (ExecuTorch's Python runtime loads torch); 'model MB' is what the model itself adds: "
        "the resident set after loading and running it minus the resident set just before loading, the runtime "
        "already imported (a native tool's own footprint delta on its rows); 'planned kB' is the activation memory "
        "ExecuTorch's memory planning reserved in the .pte (what its XNNPACK delegate allocates itself is not in it). "
        "Threads are pinned per runtime. After the warm-up, the timed runs "
        "feed the first evaluation image at batch 1; the table gives the median with the 10th-90th percentile range, "
        "because on a shared machine a few runs are slowed by other work and the median ignores them. Ratios compare "
        "rows measured in the same run, on the same device, runtime and thread count, so machine-wide slowdowns "
        "largely cancel; absolute milliseconds from different runs or machines are not comparable. Accuracy is "
        "measured through the runtime on the evaluation images one by one; parity is the largest absolute difference "
        "between the runtime's and PyTorch's logits on the same images (an fp32 row fails verification above "
        f"atol {s.get('atol')} or below {99}% top-1 agreement; an int8 or fp16 file cannot match to atol, so it "
        "fails verification when its top-1 is more points below PyTorch fp32's on the same images than the "
        "accuracy gate its manifest records, 1.0 by default). Emulated devices' latencies are never put in a ratio.",
        "",
    ]
    if instruction_label(result.get("rows", [])):
        out += ["On the emulated arm64 device, instructions per inference are guest (ARM) instructions counted by "
                "the project's qemu plugin under the device's CPU profile, 1 thread: the difference between a run "
                f"with {COUNTED_INFERENCES} more inferences and one without, divided by {COUNTED_INFERENCES}. "
                "Two runs agree within 1 %, and they are instructions, not time: they ignore caches, "
                "pipelines and memory bandwidth.", ""]
    return "\n".join(out)


def report_files(out_dir: str | Path) -> list[Path]:
    """Every file ``--report DIR`` writes (checked against the run's inputs before it starts)."""
    return [Path(out_dir) / name for name in REPORT_FILES]


def write_report(result: dict[str, Any], out_dir: str | Path) -> Path:
    """Write the plots and report.md into ``out_dir``; return the report's path."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        from ssc_deploy.errors import SscDeployError

        raise SscDeployError(f"{out}: exists and is not a directory (--report takes a directory)")
    out.mkdir(parents=True, exist_ok=True)
    plots = write_plots(result, out)
    path = out / REPORT_MD
    write_text_atomic(path, render_markdown(result, plots, out))
    return path
