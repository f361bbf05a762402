"""Issue 22: does group merge make int8 pay? int8 (group merge k) vs fp32, side by side in one run.

For each model, the fp32 files are exported once at the fast lowering table (``fast-table``, never
measured) and the int8 files once per variant ``K``, ``K:WEIGHTS`` or ``K:WEIGHTS:strip``
(``int8_group_merge=K``, ``int8_weights=WEIGHTS``, default per-channel; ``strip``: the int8 .tflite's
tensor names stripped; ``VARIANT@MODEL``: for that model only; the public export: int8 chain checked, a trained
checkpoint gated on accuracy); a variant that is a lowering's name (``dwconv-nhwc-bmm``, ``dwconv-merge9``)
is the int8 file under that lowering (``int8_lowering``; runtimes it is not registered for are left out).
Then, per runtime, every file of every
model is timed interleaved in this one process (batch 1, 1 thread, medians) and run on the
digits test images for top-1. Reported per int8 file: latency and size as ratios to the fp32 file
of the same model and runtime, and top-1 against it. The CPU and its vector flags
(:mod:`ssc_deploy.cpu_features`) head the table.

    python benchmarks/int8_group_merge.py --checkpoint-dir /tmp/int8 --markdown out.md
    python benchmarks/int8_group_merge.py --models ssc-net-1-9 --variants 1,3,3:per-tensor-grouped --runtimes tflite
    python benchmarks/int8_group_merge.py --variants 1,dwconv-nhwc-bmm,dwconv-merge9 --count-arm cortex-a76
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from pathlib import Path

import numpy as np

from precision_speed import DATA, artifact_path, find_checkpoint, top1
from ssc_deploy.runtimes import TARGET_NAMES

MODELS = ("ssc-net-1-9", "ssc-net-3-9")
VARIANTS = ("1", "2", "3", "4")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--variants", default=",".join(VARIANTS),
                   help="int8 files as K (group merge, 1: none) or K:WEIGHTS (per-channel, per-tensor-grouped, per-tensor)")
    p.add_argument("--runtimes", default=",".join(TARGET_NAMES))
    p.add_argument("--checkpoint-dir", default=None, help="trained DIR/<model>.pt (else untrained, seed 0)")
    p.add_argument("--calib", type=int, default=128, help="int8 calibration images")
    p.add_argument("--max-drop", type=float, default=1.0,
                   help="the exports' accuracy gate (top-1 points); a large value records top-1 without gating")
    p.add_argument("--rounds", type=int, default=15, help="interleaved rounds, 5 calls each")
    p.add_argument("--eval-images", type=int, default=360, help="digits test images for top-1")
    p.add_argument("--workdir", default="benchmarks/.cache/group-merge")
    p.add_argument("--fresh", action="store_true", help="export again even where files exist")
    p.add_argument("--export-only", action="store_true", help="export (fill the --workdir cache) and stop")
    p.add_argument("--count-arm", default=None, metavar="PROFILE",
                   help="also count ARM instructions per inference of the onnx/tflite files on arm64-emulated:PROFILE")
    p.add_argument("--markdown", default=None)
    p.add_argument("--json", default=None)
    return p.parse_args(argv)


def parse_variant(text: str) -> tuple[int, str, bool, str | None]:
    """``K``, ``K:WEIGHTS``, ``K:WEIGHTS:strip`` or ``K:WEIGHTS:strip:LOWERING`` (a bare ``LOWERING``: k 1,
    per-channel) as (k, weights, strip names, int8 lowering or None for the table's)."""
    if text and not text[0].isdigit():
        return 1, "per-channel", False, text
    k, _, rest = text.partition(":")
    weights, _, rest = rest.partition(":")
    strip, _, lowering = rest.partition(":")
    return int(k), weights or "per-channel", strip == "strip", lowering or None


def variant_name(k: int, weights: str, strip: bool, lowering: str | None = None) -> str:
    return (f"k{k}" + ("" if weights == "per-channel" else f"-{weights}") + ("-strip" if strip else "")
            + (f"-{lowering}" if lowering else ""))


def variant_runtimes(runtimes: list[str], lowering: str | None) -> list[str]:
    """The runtimes a variant's int8 lowering is registered for."""
    if lowering is None:
        return runtimes
    from ssc_deploy.export.lowerings import get_lowering

    meant = get_lowering(lowering).runtimes
    return [rt for rt in runtimes if meant is None or rt in meant]


def export(model: str, ckpt: Path | None, out_dir: Path, runtimes: list[str], precision: str, k: int,
           weights: str | None, strip: bool, lowering: str | None, args: argparse.Namespace) -> str | None:
    """Export ``model`` to every runtime at ``precision`` (int8: group merge ``k``, ``weights``) unless
    already there; the one-line error if the export failed."""
    import torch

    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export import QuantOptions, TfliteOptions, VerifyOptions, export_model
    from ssc_deploy.quiet import quiet_native

    if not args.fresh and all(artifact_path(out_dir, model, rt, precision).exists() for rt in runtimes):
        return None
    torch.manual_seed(0)
    try:
        with quiet_native():
            int8 = precision == "int8"
            quant = QuantOptions(calib=args.calib, max_drop=args.max_drop, int8_group_merge=k if int8 else None,
                                 int8_weights=weights if int8 else None, int8_lowering=lowering if int8 else None)
            # timed on one NCHW batch with the other runtimes
            targets = [TfliteOptions(nhwc=False, strip_names=strip) if t == TfliteOptions.target else t
                       for t in runtimes]
            export_model(None if ckpt is None else str(ckpt), targets=targets, out_dir=out_dir, model_name=model,
                         lowering="fast-table", precisions=precision, quant=quant, verify=VerifyOptions(data=DATA),
                         force=True, progress=False)
    except SscDeployError as err:
        return str(err)
    return None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ["SSC_DEPLOY_MEASURE_LOWERINGS"] = "0"  # fp32 at the fast lowering table, never timed here
    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    variants = [(parse_variant(v.partition("@")[0]), v.partition("@")[2]) for v in args.variants.split(",") if v.strip()]
    runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    cpu = cpu_features()
    header = f"CPU: {cpu.describe()}; vector flags: {' '.join(cpu.vector_flags)}"
    print(header, flush=True)
    ckpts = {m: find_checkpoint(args.checkpoint_dir, m) for m in models}
    files: dict[tuple[str, str, tuple | None], Path] = {}  # (runtime, model, (k, weights); None = fp32) -> file
    failures = []
    for m in models:
        base = Path(args.workdir) / f"{m}.{'trained' if ckpts[m] else 'untrained'}"
        for precision, v in [("fp32", None)] + [("int8", v) for v, only in variants if only in ("", m)]:
            out_dir = base / ("fp32" if v is None else f"int8-{variant_name(*v)}")
            start = time.perf_counter()
            v_runtimes = variant_runtimes(runtimes, v and v[3])
            err = export(m, ckpts[m], out_dir, v_runtimes, precision, *(v or (1, None, False, None)), args)
            print(f"export {m} {precision}" + (f" {variant_name(*v)}" if v else "")
                  + f": {time.perf_counter() - start:.0f} s" + (f" FAILED {err}" if err else ""), flush=True)
            if err:
                failures.append(f"{m} {precision} {v}: {err}")
                continue
            for rt in v_runtimes:
                files[(rt, m, v)] = artifact_path(out_dir, m, rt, precision)

    if args.export_only:
        return 1 if failures else 0
    rows = []
    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for rt in runtimes:
        keys = [key for key in files if key[0] == rt]
        gc.collect()
        sessions = {key: load_runner(rt, files[key], 1) for key in keys}
        ms = medians(time_interleaved(sessions, x, rounds=args.rounds))
        for key in keys:
            rows.append({"runtime": rt, "model": key[1], "k": key[2] and key[2][0],
                         "weights": key[2] and (key[2][1] + (" +strip" if key[2][2] else "")),
                         "lowering": key[2] and (key[2][3] or "table"), "ms": ms[key], "bytes": files[key].stat().st_size,
                         "top1": top1(sessions[key], files[key], args.eval_images), "file": str(files[key])})
        sessions = None
    if args.count_arm:
        _count_arm(rows, args.count_arm)
    fp32 = {(r["runtime"], r["model"]): r for r in rows if r["k"] is None}
    cols = ("model", "runtime", "k", "weights", "int8 lowering", "fp32 ms", "int8 ms", "int8/fp32 latency", "int8 bytes",
            "int8/fp32 size", "fp32 top-1 %", "int8 top-1 %", f"int8/fp32 instructions ({args.count_arm or 'not counted'})")
    md = [header, "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in sorted((r for r in rows if r["k"] is not None),
                    key=lambda r: (r["model"], r["runtime"], r["weights"], r["k"], r["lowering"])):
        b = fp32[(r["runtime"], r["model"])]
        r.update(latency_ratio=r["ms"] / b["ms"], size_ratio=r["bytes"] / b["bytes"], fp32_top1=b["top1"])
        insn = (f"{r['insn'] / b['insn']:.2f} ({r['insn'] / 1e6:.1f} M vs {b['insn'] / 1e6:.1f} M)"
                if r.get("insn") and b.get("insn") else "-")
        md.append(f"| {r['model']} | {r['runtime']} | {r['k']} | {r['weights']} | {r['lowering']} | {b['ms']:.3f} | "
                  f"{r['ms']:.3f} | {r['latency_ratio']:.2f} | {r['bytes']} | {r['size_ratio']:.2f} | {b['top1']:.1f} | "
                  f"{r['top1']:.1f} | {insn} |")
    trained = [m for m in models if ckpts[m]]
    md += ["", f"- batch 1, 1 thread, medians of {args.rounds} interleaved rounds x 5 calls, all files of a runtime "
               f"in one run; fp32 at lowering fast-table; int8 calibrated on {args.calib} training images; top-1 on "
               f"{args.eval_images} digits test images through the runtime; export gate --max-drop {args.max_drop:g}.",
           f"- trained: {', '.join(trained) or 'none'}; untrained (top-1 meaningless): "
           f"{', '.join(m for m in models if not ckpts[m]) or 'none'}"]
    md += [f"- export failed: {f}" for f in failures]
    text = "\n".join(md) + "\n"
    print(text)
    if args.markdown:
        write_text_atomic(args.markdown, text)
    if args.json:
        write_text_atomic(args.json, json.dumps({"cpu": header, "rows": rows, "failures": failures}, indent=2))
    return 1 if failures else 0


def _count_arm(rows: list[dict], profile: str) -> None:
    """Each onnx/tflite row's ARM instructions per inference (``insn``) on arm64-emulated:``profile``."""
    from ssc_deploy.devices.emulated import EmulatedArm64Device
    from ssc_deploy.runtime_bench.insn_counts import count_artifacts

    counted = [r for r in rows if r["runtime"] in ("onnx", "tflite")]
    device = EmulatedArm64Device(profile=profile)
    for r, c in zip(counted, count_artifacts(device, [r["file"] for r in counted])):
        r["insn"] = c.get("instructions_per_inference")
        print(f"{profile}: {r['model']} {r['runtime']} {r['lowering'] or 'fp32'}: "
              f"{(r['insn'] or 0) / 1e6:.2f} M instructions {c.get('reason') or ''}", flush=True)


if __name__ == "__main__":
    from ssc_deploy.errors import run_script

    run_script(main)
