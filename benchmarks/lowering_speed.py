"""Before/after table for issue 6: SSC-Nets against MobileNetV2 and IGCV3-D on three runtimes.

Every contender is exported once per runtime (ONNX -> onnxruntime, ExecuTorch .pte with
XNNPACK, TFLite -> LiteRT), then all contenders of a runtime are timed interleaved in this
one process (round-robin, batch 1, fp32, pinned threads), so load from other processes hits
them alike. The host's 1-thread SGEMM rate is measured in the same run. Reported: median
latency, ratio to MobileNetV2 on the same runtime and threads, the MAC ratio that ratio must
not exceed (issue 6's target), achieved GMAC/s (the model's nominal MACs / latency) and that
rate as a share of SGEMM.

    python benchmarks/lowering_speed.py                       # exports once (~30 min), then ~2 min
    python benchmarks/lowering_speed.py --models ssc-net-1-9 --runtimes onnx --threads 1
    python benchmarks/lowering_speed.py --json out.json --markdown out.md

"before" is the straightforward ``pad-slice`` lowering; "after" is, per runtime, the lowering
named by ``--after`` (default: the fastest one measured on this host, see RESULTS.md).
Untrained weights: latency does not depend on the weight values.
"""

from __future__ import annotations

import argparse
import gc
import json
from pathlib import Path

import numpy as np

from ssc_deploy.runtimes import RUNTIME_TABLE, TARGET_NAMES, by_target

BASELINES = ("mobilenetv2", "igcv3-d-0.7x")
SSC_NETS = ("ssc-net-1-9", "ssc-net-2-9", "ssc-net-3-9", "ssc-net-6-9")
RUNTIMES = TARGET_NAMES
BEFORE = "pad-slice"
# The fastest lowering per runtime on the x86 host, measured interleaved against every candidate
# and confirmed by `--lowering auto` (benchmarks/RESULTS.md); pass --after to override.
AFTER = {spec.target: spec.fastest_lowering for spec in RUNTIME_TABLE}
REFERENCE = "mobilenetv2"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(SSC_NETS), help="SSC-Nets to lower, comma-separated")
    p.add_argument("--baselines", default=",".join(BASELINES),
                   help=f"baselines, comma-separated; ratios are taken to {REFERENCE}, which is always included")
    p.add_argument("--runtimes", default=",".join(RUNTIMES), help="onnx, executorch, tflite (comma-separated)")
    p.add_argument("--threads", default="1,2", help="thread counts, comma-separated")
    p.add_argument("--after", default=None,
                   help="'after' lowering for every runtime, or runtime=name pairs (onnx=pad-slice,tflite=dwconv)")
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (each runs every contender 5 times)")
    p.add_argument("--workdir", default="benchmarks/.cache",
                   help="where exported files are kept and reused (named model.lowering.suffix)")
    p.add_argument("--fresh", action="store_true",
                   help="delete the cached exports first (needed after changing model or lowering code)")
    p.add_argument("--export-only", action="store_true", help="export (fill the cache) and stop")
    p.add_argument("--json", default=None, help="write all rows as JSON here")
    p.add_argument("--markdown", default=None, help="write the table as Markdown here")
    return p.parse_args(argv)


def after_map(spec: str | None) -> dict[str, str]:
    """Per-runtime 'after' lowering from ``--after``."""
    if not spec:
        return dict(AFTER)
    if "=" not in spec:
        return {rt: spec for rt in RUNTIMES}
    out = dict(AFTER)
    for pair in spec.split(","):
        rt, _, name = pair.partition("=")
        out[rt.strip()] = name.strip()
    return out


def build_contenders(models: list[str], baselines: list[str], runtime: str, after: str) -> list[tuple[str, str, str]]:
    """(label, model, lowering) for one runtime: baselines once, each SSC-Net before and after."""
    rows = [(b, b, BEFORE) for b in baselines]
    for m in models:
        rows.append((f"{m} before", m, BEFORE))
        if after != BEFORE:
            rows.append((f"{m} after", m, after))
    return rows


def export_cached(runtime: str, model_name: str, lowering: str, workdir: Path) -> Path:
    """Export ``model_name`` (seeded, untrained) lowered by ``lowering``; reuse an earlier file."""
    import torch

    from ssc_deploy.quiet import quiet_native
    from ssc_deploy.export.lowerings.selection.autotune import export_to
    from ssc_deploy.export.rewrite import deployment_rewrite
    from ssc_deploy.models import create_model

    suffix = by_target(runtime).suffix
    path = workdir / f"{model_name}.{lowering}{suffix}"
    if path.exists():
        return path
    torch.manual_seed(0)
    net = deployment_rewrite(create_model(model_name).eval(), lowering)
    from ssc_deploy.atomic import atomic_path

    with quiet_native(), atomic_path(path) as tmp:
        written = export_to(runtime, net, torch.zeros(1, 3, 32, 32), tmp.with_suffix(suffix))
        written.replace(tmp)
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console
    from rich.progress import Progress
    from rich.table import Table

    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, sgemm_gmacs, time_interleaved
    from ssc_deploy.models import create_model
    from ssc_deploy.models.complexity import count_macs, count_params

    console = Console(width=200)
    models = [m for m in args.models.split(",") if m]
    baselines = [REFERENCE] + [b for b in args.baselines.split(",") if b and b != REFERENCE]
    runtimes = [r for r in args.runtimes.split(",") if r]
    unknown = [r for r in runtimes if r not in RUNTIMES]
    if unknown:
        from ssc_deploy.errors import SscDeployError

        raise SscDeployError(f"unknown runtime '{unknown[0]}' (known: {', '.join(RUNTIMES)})")
    threads = [int(t) for t in args.threads.split(",") if t]
    after = after_map(args.after)
    workdir = Path(args.workdir)
    if args.fresh and workdir.exists():
        import shutil

        shutil.rmtree(workdir)
    workdir.mkdir(parents=True, exist_ok=True)

    info = {}
    for name in baselines + models:
        net = create_model(name)
        info[name] = {"params": count_params(net), "macs": count_macs(net)}

    plan = {rt: build_contenders(models, baselines, rt, after[rt]) for rt in runtimes}
    files: dict[tuple[str, str, str], Path] = {}
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("export", total=sum(len(v) for v in plan.values()))
        for rt, rows in plan.items():
            for label, model, lowering in rows:
                bar.update(task, description=f"export {rt}: {model} ({lowering})")
                files[(rt, model, lowering)] = export_cached(rt, model, lowering, workdir)
                bar.advance(task)
    if args.export_only:
        console.print(f"exported {len(files)} files to {workdir}")
        return 0

    sgemm = {t: [] for t in threads}
    results = []
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("time", total=len(runtimes) * len(threads))
        for rt in runtimes:
            for t in threads:
                bar.update(task, description=f"time {rt}, {t} thread(s)")
                sgemm[t].append(sgemm_gmacs(threads=t))
                runners = None
                gc.collect()  # drop the previous phase's programs before ExecuTorch resizes its pool
                runners = {label: load_runner(rt, files[(rt, model, lowering)], t)
                           for label, model, lowering in plan[rt]}
                times = time_interleaved(runners, x, rounds=args.rounds)
                sgemm[t].append(sgemm_gmacs(threads=t))
                ms_of = medians(times)
                ref_ms = ms_of[REFERENCE]
                for label, model, lowering in plan[rt]:
                    ms = ms_of[label]
                    macs = info[model]["macs"]
                    results.append({
                        "runtime": rt, "threads": t, "label": label, "model": model, "lowering": lowering,
                        "params": info[model]["params"], "macs": macs, "median_ms": ms,
                        "ratio_vs_mobilenetv2": ms / ref_ms,
                        "mac_ratio_vs_mobilenetv2": macs / info[REFERENCE]["macs"],
                        "gmacs_per_s": macs / ms / 1e6,
                    })
                bar.advance(task)
    sgemm_rate = medians(sgemm)
    for r in results:
        r["sgemm_gmacs_per_s"] = sgemm_rate[r["threads"]]
        r["share_of_sgemm"] = r["gmacs_per_s"] / sgemm_rate[r["threads"]]
        r["meets_target"] = r["ratio_vs_mobilenetv2"] <= r["mac_ratio_vs_mobilenetv2"]

    table = Table(title="Issue 6: latency vs MobileNetV2 (batch 1, fp32, medians, interleaved in one run)")
    for col in ("runtime", "thr", "model", "lowering", "params M", "MMACs", "ms", "x MBV2", "MAC x", "met",
                "GMAC/s", "% SGEMM"):
        table.add_column(col, justify="left" if col in ("runtime", "model", "lowering") else "right")
    header = ("| runtime | threads | model | lowering | params (M) | MMACs | median ms | ratio vs MBV2 | MAC ratio "
              "| target met | GMAC/s | % of SGEMM |")
    md = [header, "|" + "---|" * 12]
    for r in results:
        cells = [r["runtime"], str(r["threads"]), r["label"], r["lowering"], f"{r['params'] / 1e6:.2f}",
                 f"{r['macs'] / 1e6:.0f}", f"{r['median_ms']:.2f}", f"{r['ratio_vs_mobilenetv2']:.2f}",
                 f"{r['mac_ratio_vs_mobilenetv2']:.2f}",
                 "-" if r["model"] in baselines else ("yes" if r["meets_target"] else "no"),
                 f"{r['gmacs_per_s']:.1f}", f"{100 * r['share_of_sgemm']:.0f}"]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    console.print(table)
    sg = ", ".join(f"{t} thread(s): {v:.1f} GMAC/s" for t, v in sgemm_rate.items())
    console.print(f"SGEMM (torch.mm 1024^2, same run): {sg}")
    md.append("")
    md.append(f"SGEMM (torch.mm 1024^2, measured in the same run, median of before/after each runtime): {sg}")
    if args.json:
        write_text_atomic(args.json, json.dumps({"sgemm_gmacs_per_s": sgemm_rate, "rows": results}, indent=2))
    if args.markdown:
        write_text_atomic(args.markdown, "\n".join(md) + "\n")
    return 0


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
