"""Issue 15 #3-4: SSC-Net-3-9's shift/shuffle overhead and its latency and 2-thread speed-up against MobileNetV2.

With each runtime's default export lowering (``--lowering fast``: this CPU's cached measurement,
measured once if there is none) SSC-Net-3-9 and MobileNetV2 (untrained, seeded) are exported
once per runtime, then in this one process:

1. per-op profile of SSC-Net-3-9 at 1 thread (onnxruntime's and ExecuTorch's own profilers;
   LiteRT's wheel has none, on CPU it runs ExecuTorch's XNNPACK operators): the share of the
   profiled time in shifts (one-hot depthwise convs, or Pad/Slice/Concat) and shuffles
   (Transpose/Reshape), and in onnxruntime's NCHWc reorders;
2. latency, batch 1, medians of interleaved rounds: SSC-Net-3-9 / MobileNetV2 per runtime at
   1 thread, and for ExecuTorch and LiteRT at 2 threads, with each model's 1 -> 2 speed-up
   (runners of one runtime and thread count are timed interleaved; ExecuTorch's thread pool is
   process-wide, so thread counts are timed one after the other).

    python benchmarks/overhead.py --json /tmp/overhead.json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import re
import sys
from pathlib import Path

import numpy as np

SSC, REF = "ssc-net-3-9", "mobilenetv2"
# Op classes (op_profile.py names) that move data for shifts and shuffles; SSC-Nets have
# no depthwise conv of their own, so a depthwise 3x3 is a lowered shift.
OVERHEAD = re.compile(r"depthwise|DWConv|Slice|Pad|Concat|Transpose|Reshape|Copy", re.IGNORECASE)
REORDER = re.compile(r"Reorder", re.IGNORECASE)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtimes", default="onnx,executorch,tflite")
    p.add_argument("--rounds", type=int, default=20, help="interleaved rounds (each runs every model 5 times)")
    p.add_argument("--runs", type=int, default=50, help="profiled runs")
    p.add_argument("--workdir", default="benchmarks/.cache", help="exported files (shared with lowering_speed.py)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)

    from lowering_speed import export_cached

    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.export.lowerings.selection.choice import fast_lowering
    from ssc_deploy.op_profile import profile_file
    from ssc_deploy.runtimes import by_target
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved

    cpu = cpu_features()
    runtimes = [r for r in args.runtimes.split(",") if r]
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    out: dict = {"cpu": cpu.describe(), "vector_flags": list(cpu.vector_flags), "load_before": os.getloadavg(),
                 "lowerings": {}, "profiles": {}, "latency": []}
    files = {}
    for rt in runtimes:
        choice = fast_lowering(rt)
        out["lowerings"][rt] = {"lowering": choice.lowering, "reason": choice.reason}
        files[(rt, SSC)] = export_cached(rt, SSC, choice.lowering, workdir)
        files[(rt, REF)] = export_cached(rt, REF, by_target(rt).default_lowering, workdir)
        print(f"{rt}: {SSC} lowering {choice.lowering} ({choice.reason})", flush=True)

    for rt in runtimes:
        if rt == "tflite":
            continue
        prof = profile_file(files[(rt, SSC)], threads=1, runs=args.runs)
        total = prof.kernel_ms
        over = sum(c.ms for c in prof.classes if OVERHEAD.search(c.name))
        reorder = sum(c.ms for c in prof.classes if REORDER.search(c.name))
        out["profiles"][rt] = {"wall_ms": prof.wall_ms, "kernel_ms": total, "overhead_ms": over,
                               "overhead_share": over / total if total else None, "reorder_ms": reorder,
                               "classes": [(c.name, c.nodes, round(c.ms, 4)) for c in prof.classes]}
        print(f"{rt} profile: {total:.2f} ms in ops, shift/shuffle/pad/slice/concat {over:.2f} ms "
              f"({100 * over / total:.1f} %), NCHWc reorders {reorder:.2f} ms", flush=True)
        for c in prof.classes:
            print(f"    {c.name:60s} x{c.nodes:4d} {c.ms:7.3f} ms", flush=True)

    x = np.random.default_rng(0).standard_normal((1, 3, 32, 32)).astype(np.float32)
    for rt in runtimes:
        for threads in ((1,) if rt == "onnx" else (1, 2)):
            runners = None
            gc.collect()
            runners = {m: load_runner(rt, files[(rt, m)], threads) for m in (SSC, REF)}
            ms = medians(time_interleaved(runners, x, rounds=args.rounds))
            row = {"runtime": rt, "threads": threads, "ssc_ms": ms[SSC], "mbv2_ms": ms[REF],
                   "ratio": ms[SSC] / ms[REF], "load": os.getloadavg()[0]}
            out["latency"].append(row)
            print(f"{rt} {threads} thread(s): {SSC} {ms[SSC]:.2f} ms, {REF} {ms[REF]:.2f} ms, "
                  f"ratio {row['ratio']:.2f} (load {row['load']:.1f})", flush=True)
    by = {(r["runtime"], r["threads"]): r for r in out["latency"]}
    for rt in runtimes:
        if (rt, 2) in by:
            one, two = by[(rt, 1)], by[(rt, 2)]
            s_ssc, s_ref = one["ssc_ms"] / two["ssc_ms"], one["mbv2_ms"] / two["mbv2_ms"]
            out.setdefault("speedup", {})[rt] = {"ssc": s_ssc, "mbv2": s_ref}
            print(f"{rt} 1 -> 2 threads: {SSC} {s_ssc:.2f}x, {REF} {s_ref:.2f}x", flush=True)
    out["load_after"] = os.getloadavg()
    if args.json:
        from ssc_deploy.atomic import write_text_atomic

        write_text_atomic(args.json, json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sys.exit(main())
