"""Where the time goes, per op class, on any of the three runtimes.

onnxruntime has a per-node profiler; the ExecuTorch and LiteRT Python wheels do not (their
per-op profilers live in the native ``executor_runner`` / ``benchmark_model`` builds). So this
script profiles by isolation: every distinct layer of the lowered net (same module, same input
shape) is exported on its own, all of them are timed interleaved on the target runtime, and
each layer's median is multiplied by how often it occurs. The sum is compared with the whole
net's measured latency, and each op class gets its share and its achieved GMAC/s.

    python benchmarks/op_profile.py --model ssc-net-3-9 --lowering dwconv --runtime executorch
    python benchmarks/op_profile.py --model mobilenetv2 --runtime tflite
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from torch import nn


def op_class(mod: nn.Module, in_shape: tuple[int, ...]) -> str:
    """A readable class for a layer: dense/grouped/depthwise conv with kernel and group width."""
    if isinstance(mod, nn.Conv2d):
        k = "x".join(map(str, mod.kernel_size))
        if mod.groups == 1:
            kind = "dense"
        elif mod.groups == mod.in_channels:
            kind = "depthwise"
        else:
            kind = f"grouped ({mod.in_channels // mod.groups} ch/group)"
        return f"conv {k} {kind}"
    return type(mod).__name__


def conv_macs(mod: nn.Module, out_shape: tuple[int, ...]) -> int:
    if isinstance(mod, nn.Conv2d):
        kh, kw = mod.kernel_size
        return int(np.prod(out_shape[1:])) * (mod.in_channels // mod.groups) * kh * kw
    if isinstance(mod, nn.Linear):
        return mod.in_features * mod.out_features
    return 0


def layers(net: nn.Module, x: torch.Tensor):
    """(module, input shape, output shape) of every leaf module call in one forward pass."""
    calls = []
    hooks = [m.register_forward_hook(lambda m, i, o: calls.append((m, tuple(i[0].shape), tuple(o.shape))))
             for m in net.modules() if not list(m.children())]
    with torch.no_grad():
        net(x)
    for h in hooks:
        h.remove()
    return calls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="ssc-net-3-9", help="registered model name")
    p.add_argument("--lowering", default="pad-slice", help="lowering to apply before profiling")
    p.add_argument("--runtime", default="executorch", help="onnx, executorch or tflite")
    p.add_argument("--threads", type=int, default=1, help="threads for every run")
    p.add_argument("--rounds", type=int, default=20, help="interleaved timing rounds")
    args = p.parse_args(argv)

    from rich.console import Console
    from rich.table import Table

    from ssc_deploy.export._quiet import quiet_native
    from ssc_deploy.export.autotune import export_to, load_runner, time_interleaved
    from ssc_deploy.export.rewrite import deployment_rewrite
    from ssc_deploy.models import create_model

    torch.manual_seed(0)
    net = deployment_rewrite(create_model(args.model).eval(), args.lowering)
    x = torch.randn(1, 3, 32, 32)
    calls = layers(net, x)
    distinct: dict[str, tuple[nn.Module, tuple, tuple, int]] = {}
    for mod, ins, outs in calls:
        if isinstance(mod, (nn.ReLU, nn.Identity)) or len(ins) != 4:
            continue  # ReLUs fuse into the conv before them; the classifier is not 4-D
        key = f"{mod!r}|{ins}"
        m, i, o, n = distinct.get(key, (mod, ins, outs, 0))
        distinct[key] = (m, i, o, n + 1)

    runners = {}
    with tempfile.TemporaryDirectory() as tmp, quiet_native():
        whole = export_to(args.runtime, net, x, Path(tmp) / "whole")
        runners["whole net"] = load_runner(args.runtime, whole, args.threads)
        for j, (key, (mod, ins, _, _)) in enumerate(distinct.items()):
            path = export_to(args.runtime, nn.Sequential(mod).eval(), torch.randn(ins), Path(tmp) / f"l{j}")
            runners[key] = load_runner(args.runtime, path, args.threads)
        feeds = {k: np.random.default_rng(0).standard_normal(distinct[k][1]).astype(np.float32) for k in distinct}
        times = {k: [] for k in runners}
        for _ in range(max(1, args.rounds // 5)):
            t = time_interleaved({"whole net": runners["whole net"]}, x.numpy(), rounds=5)
            times["whole net"] += t["whole net"]
            for k in distinct:
                times[k] += time_interleaved({k: runners[k]}, feeds[k], rounds=5)[k]

    by_class: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0])
    for key, (mod, ins, outs, n) in distinct.items():
        ms = statistics.median(times[key])
        row = by_class[op_class(mod, ins)]
        row[0] += ms * n
        row[1] += n
        row[2] += conv_macs(mod, outs) * n
    total = sum(r[0] for r in by_class.values())
    whole_ms = statistics.median(times["whole net"])
    table = Table(title=f"{args.model} ({args.lowering}) on {args.runtime}, {args.threads} thread(s): "
                        f"whole net {whole_ms:.2f} ms, sum of isolated layers {total:.2f} ms")
    for col in ("op class", "layers", "ms", "share", "MMACs", "GMAC/s"):
        table.add_column(col, justify="left" if col == "op class" else "right")
    for name, (ms, n, macs) in sorted(by_class.items(), key=lambda kv: -kv[1][0]):
        table.add_row(name, str(n), f"{ms:.2f}", f"{100 * ms / total:.0f}%", f"{macs / 1e6:.1f}",
                      f"{macs / ms / 1e6:.1f}" if macs else "-")
    Console(width=160).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
