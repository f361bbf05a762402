"""Where the time goes: each runtime's own per-op profile of lowered models, summed by op class.

Each model is lowered, exported (ONNX and/or ExecuTorch .pte, untrained weights) and profiled
with the runtime's own profiler (``ssc_deploy.op_profile``): onnxruntime's session
profiler, and ExecuTorch's ETDump, which times every XNNPACK operator. Classes are listed with
their share of the profiled time, MACs and achieved GMAC/s. LiteRT's Python wheel has no op
profiler; on CPU it runs the same XNNPACK operators as the ExecuTorch program.

    python benchmarks/op_profile.py
    python benchmarks/op_profile.py --runtimes executorch --models ssc-net-3-9:dwconv,mobilenetv2:pad-slice
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

DEFAULT_MODELS = "ssc-net-3-9:dwconv,ssc-net-3-9:pad-slice,mobilenetv2:pad-slice"
# "dwconv" in --models stands for the fast lowering; onnxruntime's fastest differs
# (benchmarks/RESULTS.md), so each runtime gets its own from the runtime table.
FAST = "dwconv"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=DEFAULT_MODELS, help="model:lowering pairs, comma-separated")
    p.add_argument("--runtimes", default="executorch,onnx", help="executorch and/or onnx, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="runtime threads")
    p.add_argument("--runs", type=int, default=50, help="profiled runs per model")
    p.add_argument("--workdir", default="benchmarks/.cache",
                   help="exported files, shared with lowering_speed.py (reused when present)")
    p.add_argument("--json", default=None, help="write every profile as JSON here")
    args = p.parse_args(argv)
    import torch
    from rich.console import Console

    from lowering_speed import export_cached

    from ssc_deploy.atomic import write_text_atomic
    from ssc_deploy.export.rewrite import deployment_rewrite
    from ssc_deploy.models import create_model
    from ssc_deploy.op_profile import attribute_macs, profile_file, profile_table
    from ssc_deploy.runtimes import by_target

    console = Console(width=160)
    dumps = []
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for runtime in args.runtimes.split(","):
        for pair in args.models.split(","):
            model_name, _, lowering = pair.partition(":")
            spec = by_target(runtime)
            lowering = spec.fastest_lowering if lowering == FAST else lowering or spec.default_lowering
            torch.manual_seed(0)
            net = deployment_rewrite(create_model(model_name).eval(), lowering)
            x = torch.zeros(1, 3, 32, 32)
            path = export_cached(runtime, model_name, lowering, workdir)
            prof = profile_file(path, threads=args.threads, runs=args.runs)
            if runtime == "executorch":
                attribute_macs(prof, net, x)
            title = (f"{model_name} ({lowering}), {runtime}, {args.threads} thread(s): "
                     f"{prof.wall_ms:.2f} ms a run, {prof.kernel_ms:.2f} ms in profiled ops")
            console.print(profile_table(prof, title))
            dumps.append({"model": model_name, "lowering": lowering, **prof.to_dict()})
    if args.json:
        write_text_atomic(args.json, json.dumps(dumps, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
