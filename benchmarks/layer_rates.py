"""Achieved GMAC/s of the layer kinds an SSC module is made of, each exported and timed alone.

Stage-1 shapes of SSC-Net-B-9 (81 channels, 32 x 32, batch 1, 1 thread): the dense 1x1 (Conv1),
the 9-channel-group 1x1 (Conv2, the SSC 1x1s, Conv3/Conv4 in stage 1), the one-hot depthwise
3x3 (a shift under ``dwconv``), the grouped 3x3 (shift + 1x1 under ``shift-conv``) and the
channel shuffle. Layers are timed interleaved in one process, so their rates compare.

    python benchmarks/layer_rates.py --runtimes onnx,tflite

LiteRT and onnxruntime only: single-layer ExecuTorch programs time far slower than the same
layers inside a whole net (milliseconds for a 0.5 M-MAC conv), so their numbers mislead.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from torch import nn

M, SIDE = 81, 32


def cases() -> dict[str, tuple[nn.Module, int, int]]:
    """name -> (module, input channels, MACs)."""
    from ssc_deploy.export.lowerings.pad_slice import ReshapeShuffle

    px = SIDE * SIDE
    return {
        "dense 1x1, 81 -> 81": (nn.Sequential(nn.Conv2d(M, M, 1), nn.ReLU()), M, M * M * px),
        "dense 1x1, 96 -> 96": (nn.Sequential(nn.Conv2d(96, 96, 1), nn.ReLU()), 96, 96 * 96 * px),
        "grouped 1x1, 9 groups of 9": (nn.Sequential(nn.Conv2d(M, M, 1, groups=9), nn.ReLU()), M, M * 9 * px),
        "depthwise 3x3 (one-hot shift)": (nn.Conv2d(M, M, 3, padding=1, groups=M, bias=False), M, M * 9 * px),
        "grouped 3x3, 9 groups of 9 (shift-conv)": (
            nn.Sequential(nn.Conv2d(M, M, 3, padding=1, groups=9), nn.ReLU()), M, M * 81 * px),
        "channel shuffle (reshape/transpose)": (ReshapeShuffle(9), M, 0),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runtimes", default="onnx,tflite", help="onnx and/or tflite, comma-separated")
    p.add_argument("--rounds", type=int, default=30, help="interleaved rounds")
    args = p.parse_args(argv)
    from rich.console import Console
    from rich.table import Table

    from ssc_deploy.quiet import quiet_native
    from ssc_deploy.export.lowerings.selection.autotune import export_to
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import median, time_interleaved

    table = Table(title=f"SSC module layers at stage-1 shape ({M} ch, {SIDE}x{SIDE}), batch 1, 1 thread")
    for col in ("runtime", "layer", "MMACs", "us", "GMAC/s"):
        table.add_column(col, justify="left" if col in ("runtime", "layer") else "right")
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        for rt in args.runtimes.split(","):
            runners, feeds = {}, {}
            for j, (name, (mod, cin, _)) in enumerate(cases().items()):
                x = torch.randn(1, cin, SIDE, SIDE)
                with quiet_native():
                    path = export_to(rt, mod.eval(), x, Path(tmp) / f"{rt}-{j}")
                runners[name], feeds[name] = load_runner(rt, path, 1), x.numpy()
            times = {k: [] for k in runners}
            for _ in range(max(1, args.rounds // 3)):
                for k in runners:
                    times[k] += time_interleaved({k: runners[k]}, feeds[k], rounds=3, warmup=2)[k]
            for name, (_, _, macs) in cases().items():
                ms = median(times[name])
                table.add_row(rt, name, f"{macs / 1e6:.2f}" if macs else "-", f"{ms * 1e3:.0f}",
                              f"{macs / ms / 1e6:.1f}" if macs else "-")
    Console(width=140).print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
