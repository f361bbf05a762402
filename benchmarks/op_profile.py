"""Where the time goes: onnxruntime's own per-node profile, summed by op class.

Each model is lowered, exported to ONNX and run with onnxruntime's profiler (1 thread by
default); node times from the optimized graph are summed by class (op type, conv groups and
kernel), with each class's share and achieved GMAC/s. The ExecuTorch and LiteRT Python wheels
carry no per-op profiler (theirs are in the native ``executor_runner`` / ``benchmark_model``
builds), so this is the per-op view available on the host.

    python benchmarks/op_profile.py --models ssc-net-3-9:dwconv-aligned,mobilenetv2:pad-slice
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np


def conv_class(op_type: str, attrs: dict, weight_dims: list[int] | None) -> str:
    """'Conv 1x1 dense', 'Conv 3x3 depthwise', 'Conv 1x1 grouped (9 ch/group)' or the op type."""
    if "Conv" not in op_type or not weight_dims or len(weight_dims) != 4:
        return op_type
    group = int(attrs.get("group", 1))
    k = f"{weight_dims[2]}x{weight_dims[3]}"
    if group == 1:
        kind = "dense"
    elif weight_dims[1] == 1:
        kind = "depthwise"
    else:
        kind = f"grouped ({weight_dims[1]} ch/group)"
    layout = " NCHWc" if op_type.startswith("com.microsoft.nchwc") else ""
    return f"Conv {k} {kind}{layout}"


def profile(model_name: str, lowering: str, threads: int, runs: int, workdir: Path) -> tuple[dict, float]:
    """{op class: [ms per run, nodes, MACs per run]} and the mean wall time per run in ms."""
    import onnx
    import onnxruntime as ort
    import torch

    from ssc_deploy.export._quiet import quiet_native
    from ssc_deploy.export.autotune import export_to
    from ssc_deploy.export.rewrite import deployment_rewrite
    from ssc_deploy.models import create_model

    torch.manual_seed(0)
    net = deployment_rewrite(create_model(model_name).eval(), lowering)
    x = torch.randn(1, 3, 32, 32)
    with quiet_native():
        path = export_to("onnx", net, x, workdir / f"{model_name}.{lowering}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.enable_profiling = True
        opts.profile_file_prefix = str(workdir / f"prof-{model_name}")
        opts.optimized_model_filepath = str(workdir / f"opt-{model_name}.onnx")
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    optimized = onnx.load(opts.optimized_model_filepath)
    inits = {i.name: list(i.dims) for i in optimized.graph.initializer}
    classes = {}
    for node in optimized.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = inits.get(node.input[1]) if len(node.input) > 1 else None
        op = f"{node.domain}.{node.op_type}" if node.domain else node.op_type
        classes[node.name] = conv_class(op, attrs, weight)
    feed = {sess.get_inputs()[0].name: x.numpy()}
    import time

    for _ in range(10):
        sess.run(None, feed)
    t0 = time.perf_counter()
    for _ in range(runs):
        sess.run(None, feed)
    wall = (time.perf_counter() - t0) * 1e3 / runs
    events = json.loads(Path(sess.end_profiling()).read_text())
    total_runs = runs + 10
    out: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0.0])
    for e in events:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        row = out[classes.get(name, e["args"].get("op_name", "?"))]
        row[0] += e["dur"] / 1e3 / total_runs
        row[1] += 1 / total_runs
        out_shape = e["args"].get("output_type_shape") or []
        weight = None
        for n in optimized.graph.node:
            if n.name == name and len(n.input) > 1:
                weight = inits.get(n.input[1])
                break
        if weight and len(weight) == 4 and out_shape:
            dims = next(iter(out_shape[0].values()))
            spatial = int(np.prod(dims[2:4])) if len(dims) >= 4 else 1
            row[2] += spatial * weight[0] * weight[1] * weight[2] * weight[3] / total_runs
    return dict(out), wall


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="ssc-net-3-9:dwconv-aligned,ssc-net-3-9:pad-slice,mobilenetv2:pad-slice",
                   help="model:lowering pairs, comma-separated")
    p.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads")
    p.add_argument("--runs", type=int, default=50, help="profiled runs per model")
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    console = Console(width=160)
    with tempfile.TemporaryDirectory() as tmp:
        for pair in args.models.split(","):
            model, _, lowering = pair.partition(":")
            rows, wall = profile(model, lowering or "pad-slice", args.threads, args.runs, Path(tmp))
            total = sum(r[0] for r in rows.values())
            table = Table(title=f"{model} ({lowering}), onnxruntime, {args.threads} thread(s): "
                                f"{wall:.2f} ms a run, {total:.2f} ms in kernels")
            for col in ("op class", "nodes", "ms/run", "share", "MMACs", "GMAC/s"):
                table.add_column(col, justify="left" if col == "op class" else "right")
            for name, (ms, n, macs) in sorted(rows.items(), key=lambda kv: -kv[1][0]):
                table.add_row(name, f"{n:.0f}", f"{ms:.3f}", f"{100 * ms / total:.0f}%",
                              f"{macs / 1e6:.1f}" if macs else "-", f"{macs / ms / 1e6:.1f}" if macs else "-")
            console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
