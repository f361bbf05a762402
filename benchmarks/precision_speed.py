"""Precision table for issue 13: fp32 / int8 / fp16 latency, file size and digits top-1 on three runtimes.

Every model is exported with the public export (``export_model(..., precisions=...)``, the int8
files calibrated and, for a trained checkpoint, gated on accuracy as ``ssc-deploy export
--precision int8`` does), each runtime at the precisions it has (fp16: LiteRT only). Then all
files of a runtime are timed interleaved in this one process (round-robin, batch 1, 1 thread,
medians), so load from other processes hits them alike, and each file's top-1 on the digits
test images is measured through its runtime. Reported per file: median latency, its ratio to
the fp32 file of the same model and runtime, size and size ratio, top-1 and its change against
fp32; per runtime: SSC-Net-3-9's latency ratio to MobileNetV2 at each precision (issue 13 wants
it lower in int8 than in fp32). The CPU and its vector features head the output.

    python benchmarks/precision_speed.py --checkpoint-dir CKPTS        # trained CKPTS/<model>.pt
    python benchmarks/precision_speed.py --quick --markdown benchmarks/precision-speed-latest.md
    python benchmarks/precision_speed.py --models ssc-net-3-9,mobilenetv2 --runtimes executorch

A model without a checkpoint in ``--checkpoint-dir`` is exported untrained (seed 0): its latency
and size count, its accuracy means nothing (the output says so), and no gate runs.
"""

from __future__ import annotations

import argparse
import gc
import json
import time
from pathlib import Path

import numpy as np

from ssc_deploy.export.options import DEFAULT_CALIB
from ssc_deploy.runtimes import TARGET_NAMES, by_target

MODELS = ("ssc-net-1-9", "ssc-net-2-9", "ssc-net-3-9", "ssc-net-6-9", "mobilenetv2", "igcv3-d-0.7x")
QUICK_MODELS = ("ssc-net-1-9", "ssc-net-3-9", "mobilenetv2")
PRECISIONS = ("fp32", "int8", "fp16")
REFERENCE, SUBJECT = "mobilenetv2", "ssc-net-3-9"
DATA = "digits"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=None, help=f"models, comma-separated (default: {','.join(MODELS)})")
    p.add_argument("--runtimes", default=",".join(TARGET_NAMES), help="onnx, executorch, tflite (comma-separated)")
    p.add_argument("--precisions", default=",".join(PRECISIONS), help="fp32 (always included), int8, fp16")
    p.add_argument("--checkpoint-dir", default=None,
                   help="trained checkpoints as DIR/<model>.pt or DIR/checkpoints/<model>.pt (a quickstart's "
                        "output directory works); models without one are exported untrained")
    p.add_argument("--quick", action="store_true",
                   help=f"{','.join(QUICK_MODELS)} unless --models, 32 calibration images, 10 rounds, 120 test images")
    p.add_argument("--calib", type=int, default=None, help=f"int8 calibration images (default {DEFAULT_CALIB}; --quick 32)")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds, 5 calls each (default 20; --quick 10)")
    p.add_argument("--eval-images", type=int, default=None, help="digits test images for top-1 (default all 360)")
    p.add_argument("--workdir", default="benchmarks/.cache/precision",
                   help="where exports are kept and reused (MODEL.{trained,untrained}/NAME[.PRECISION].SUFFIX)")
    p.add_argument("--fresh", action="store_true", help="export again even where files exist")
    p.add_argument("--export-only", action="store_true", help="export (fill the cache) and stop")
    p.add_argument("--no-export", action="store_true", help="measure only the files already in --workdir")
    p.add_argument("--json", default=None, help="write all rows as JSON here")
    p.add_argument("--markdown", default=None, help="write the tables as Markdown here")
    args = p.parse_args(argv)
    args.models = args.models or ",".join(QUICK_MODELS if args.quick else MODELS)
    args.calib = args.calib or (32 if args.quick else DEFAULT_CALIB)
    args.rounds = args.rounds or (10 if args.quick else 20)
    args.eval_images = args.eval_images or (120 if args.quick else 360)
    return args


def find_checkpoint(directory: str | None, model: str) -> Path | None:
    """``DIR/<model>.pt`` or ``DIR/checkpoints/<model>.pt``, if there is one."""
    if not directory:
        return None
    for path in (Path(directory) / f"{model}.pt", Path(directory) / "checkpoints" / f"{model}.pt"):
        if path.is_file():
            return path
    return None


def artifact_path(out_dir: Path, model: str, runtime: str, precision: str) -> Path:
    """The export's own file name for ``precision`` (``NAME.SUFFIX``, ``NAME.int8.SUFFIX``)."""
    suffix = by_target(runtime).suffix
    return out_dir / (f"{model}{suffix}" if precision == "fp32" else f"{model}.{precision}{suffix}")


def export_cell(model: str, runtime: str, precision: str, ckpt: Path | None, out_dir: Path,
                args: argparse.Namespace) -> tuple[Path | None, float | None, str | None]:
    """Export ``model`` for ``runtime`` at ``precision`` (reusing the file if already there), one
    precision per export so a failed int8 gate still leaves the fp32 file measured.

    Returns the file (None on failure), the export's seconds (None when reused) and the one-line
    error if the export failed.
    """
    import torch

    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export import QuantOptions, TfliteOptions, VerifyOptions, export_model
    from ssc_deploy.quiet import quiet_native

    path = artifact_path(out_dir, model, runtime, precision)
    if not args.fresh and path.exists():
        return path, None, None
    if args.no_export:
        return None, None, "not in the workdir (--no-export)"
    torch.manual_seed(0)  # the untrained nets' weights
    start = time.perf_counter()
    try:
        with quiet_native():
            # timed on one NCHW batch with the other runtimes
            target = TfliteOptions(nhwc=False) if runtime == TfliteOptions.target else runtime
            export_model(None if ckpt is None else str(ckpt), targets=target, out_dir=out_dir, model_name=model,
                         precisions=precision, quant=QuantOptions(calib=args.calib), verify=VerifyOptions(data=DATA),
                         force=True, progress=False)
    except SscDeployError as err:
        return None, time.perf_counter() - start, str(err)
    return path, time.perf_counter() - start, None


def input_spec(path: Path) -> dict:
    """The input the file's manifest records (layout, mean, std)."""
    from ssc_deploy.export.manifest import manifest_path

    return json.loads(manifest_path(path).read_text())["input"]


def top1(session, path: Path, n: int) -> float:
    """Top-1 (%) of the file on the first ``n`` digits test images (normalised as its manifest says),
    one at a time through its runtime."""
    from ssc_deploy.data import eval_batch
    from ssc_deploy.sessions import run_each

    spec = input_spec(path)
    images, labels = eval_batch(DATA, n, spec["mean"], spec["std"], spec["shape"][2])
    logits = run_each(session, images, nhwc=spec.get("layout") == "NHWC")
    return 100.0 * float(np.mean(logits.argmax(1) == labels))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved
    from train_speed import cpu_description

    console = Console(width=200)
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    for r in runtimes:
        by_target(r)
    wanted = ["fp32"] + [p for p in args.precisions.split(",") if p.strip() and p.strip() != "fp32"]
    unknown = [p for p in wanted if p not in PRECISIONS]
    if unknown:
        raise SscDeployError(f"unknown precision '{unknown[0]}' (use: {', '.join(PRECISIONS)})")
    cpu = cpu_description()
    console.print(f"CPU: {cpu}")
    workdir = Path(args.workdir)

    ckpts = {m: find_checkpoint(args.checkpoint_dir, m) for m in models}
    files: dict[tuple[str, str, str], Path] = {}
    export_s: dict[tuple[str, str, str], float | None] = {}
    failures: dict[tuple[str, str, str], str] = {}
    for m in models:
        out_dir = workdir / f"{m}.{'trained' if ckpts[m] else 'untrained'}"
        for rt in runtimes:
            for p in (p for p in wanted if p in by_target(rt).precisions):
                console.print(f"export {m} -> {rt} {p}" + ("" if ckpts[m] else " (untrained)"))
                path, export_s[(rt, m, p)], err = export_cell(m, rt, p, ckpts[m], out_dir, args)
                if err:
                    failures[(rt, m, p)] = err
                    console.print(f"  failed: {err}")
                else:
                    files[(rt, m, p)] = path

    if args.export_only:
        console.print(f"exported {len(files)} files to {workdir}")
        return 1 if failures else 0
    rows = []
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for rt in runtimes:
        keys = [k for k in files if k[0] == rt]
        if not keys:
            continue
        gc.collect()  # drop the previous runtime's programs before ExecuTorch sizes its pool
        sessions = {k: load_runner(rt, files[k], 1) for k in keys}
        ms_of = medians(time_interleaved(sessions, x, rounds=args.rounds))  # all NCHW: no --nhwc here
        for k in keys:
            _, m, p = k
            rows.append({"runtime": rt, "model": m, "precision": p, "trained": ckpts[m] is not None,
                         "file": str(files[k]), "bytes": files[k].stat().st_size, "median_ms": ms_of[k],
                         "top1": top1(sessions[k], files[k], args.eval_images), "export_s": export_s[k]})
        sessions = None
    for r in rows:
        base = next((b for b in rows if (b["runtime"], b["model"], b["precision"]) == (r["runtime"], r["model"], "fp32")),
                    None)
        r["latency_ratio"] = None if base is None else r["median_ms"] / base["median_ms"]
        r["size_ratio"] = None if base is None else r["bytes"] / base["bytes"]
        r["top1_delta"] = None if base is None else r["top1"] - base["top1"]
        ref = next((b for b in rows if (b["runtime"], b["model"], b["precision"]) == (r["runtime"], REFERENCE,
                                                                                        r["precision"])), None)
        r["ratio_vs_mobilenetv2"] = None if ref is None else r["median_ms"] / ref["median_ms"]

    def f(v, spec):
        return "-" if v is None else format(v, spec)

    cols = ("runtime", "model", "precision", "trained", "ms", "x fp32", "x MBV2", "KB", "size x fp32", "top-1 %",
            "top-1 vs fp32", "export s")
    table = Table(title="Issue 13: precision vs latency, size and digits top-1 (batch 1, 1 thread, medians, "
                        "interleaved in one run)")
    for c in cols:
        table.add_column(c, justify="left" if c in ("runtime", "model", "precision", "trained") else "right")
    md = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted(rows, key=lambda r: (runtimes.index(r["runtime"]), models.index(r["model"]),
                                         PRECISIONS.index(r["precision"]))):
        cells = [r["runtime"], r["model"], r["precision"], "yes" if r["trained"] else "no (top-1 meaningless)",
                 f(r["median_ms"], ".3f"), f(r["latency_ratio"], ".2f"), f(r["ratio_vs_mobilenetv2"], ".2f"),
                 f(r["bytes"] / 1024, ".0f"), f(r["size_ratio"], ".2f"), f(r["top1"], ".1f"),
                 f(r["top1_delta"], "+.1f"), "reused" if r["export_s"] is None else f(r["export_s"], ".0f")]
        table.add_row(*cells)
        md.append("| " + " | ".join(cells) + " |")
    console.print(table)
    notes = [f"CPU: {cpu}. Threads: 1. Calibration: {args.calib} training images. Top-1 on {args.eval_images} "
             f"digits test images through each runtime. Rounds: {args.rounds} x 5 calls per file."]
    for rt in runtimes:
        per = {p: next((r["ratio_vs_mobilenetv2"] for r in rows if (r["runtime"], r["model"], r["precision"]) ==
                        (rt, SUBJECT, p)), None) for p in wanted}
        if any(v is not None for v in per.values()):
            notes.append(f"{rt}: {SUBJECT} / {REFERENCE} latency: "
                         + ", ".join(f"{p} {v:.2f}" for p, v in per.items() if v is not None))
    untrained = [m for m in models if ckpts[m] is None]
    if untrained:
        notes.append(f"Untrained (no checkpoint): {', '.join(untrained)}; their top-1 means nothing, only "
                     "latency and size count.")
    notes += [f"no {p} file of {m} on {rt}: {e}" for (rt, m, p), e in failures.items()]
    for n in notes:
        console.print(n)
    md += [""] + [f"- {n}" for n in notes]
    if args.json:
        write_text_atomic(args.json, json.dumps({"cpu": cpu, "rows": rows, "notes": notes}, indent=2))
    if args.markdown:
        write_text_atomic(args.markdown, "\n".join(md) + "\n")
    return 1 if failures else 0


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
