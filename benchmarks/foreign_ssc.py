"""Foreign SSC-Net-3-9 (masked 3x3 grouped convs, tests/support/foreign_ssc.py) before/after the graph rewrite.

Layers found, conv MACs before/after, and 1-thread latency on onnxruntime, ExecuTorch (XNNPACK) and
LiteRT, interleaved medians (``ssc_deploy.timing.time_interleaved``), next to the zoo's SSC-Net-3-9.
"Before" is what ``export_module`` exported for this net until issue 14 (the masked convs as 3x3
grouped convs); "after" is the rewritten graph (shift + 1x1), lowered by pad-slice and by dwconv.

    .venv/bin/python benchmarks/foreign_ssc.py [--rounds 30] [--out benchmarks/foreign-ssc-latest.json]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ssc_deploy.export.lowerings.selection.autotune import export_to  # noqa: E402
from ssc_deploy.export.foreign import foreign_rewrite  # noqa: E402
from ssc_deploy.export.rewrite import deployment_rewrite  # noqa: E402
from ssc_deploy.export.verify import verification_images  # noqa: E402
from ssc_deploy.models import create_model  # noqa: E402
from ssc_deploy.models.complexity import count_macs, count_params  # noqa: E402
from ssc_deploy.sessions import load_runner, run_each  # noqa: E402
from ssc_deploy.timing import medians, time_interleaved  # noqa: E402
from tests.support.foreign_ssc import ForeignSSCNet, OneHotConv, randomized  # noqa: E402

RUNTIMES = ("onnx", "executorch", "tflite")


def cpu() -> dict:
    """CPU model name and its vector flags (lscpu)."""
    text = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    fields = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
    flags = fields.get("Flags", "").split()
    vector = [f for f in flags if f.startswith(("avx", "sse4", "fma", "f16c", "amx", "vnni")) or "vnni" in f]
    return {"model": fields.get("Model name", "?").strip(), "vector_flags": sorted(vector)}


def effective_params(net: torch.nn.Module) -> int:
    """Parameters, counting a masked kernel's kept weights only."""
    total = count_params(net)
    for m in net.modules():
        if isinstance(m, OneHotConv):
            total -= int(m.onehot.numel() - m.onehot.sum())
    return total


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("foreign-ssc-latest.json"))
    args = ap.parse_args()
    torch.manual_seed(0)
    foreign = randomized(ForeignSSCNet(blocks=3, groups=9))
    zoo = randomized(create_model("ssc-net-3-9"))
    images, _ = verification_images([0.5] * 3, [0.25] * 3, 32, 16)
    x = torch.from_numpy(images)
    found = foreign_rewrite(foreign, x[:1])
    report = found.report
    with torch.no_grad():
        reference = foreign(x).numpy()
    nets = {
        "before (3x3 masked convs)": deployment_rewrite(foreign, "pad-slice"),
        "after, pad-slice": deployment_rewrite(found.module, "pad-slice"),
        "after, dwconv": deployment_rewrite(found.module, "dwconv"),
        "zoo ssc-net-3-9, pad-slice": deployment_rewrite(zoo, "pad-slice"),
    }
    result = {
        "cpu": cpu(), "threads": 1, "rounds": args.rounds, "torch": torch.__version__,
        "params": {"foreign_effective": effective_params(foreign), "foreign_stored": count_params(foreign),
                   "zoo": count_params(zoo)},
        "zoo_macs": count_macs(zoo),
        "found": [c.name for c in report.ssc_kernels],
        "left_alone": {c.name: c.note for c in report.convs if not c.rewritten and c.weight_shape[2:] != (1, 1)},
        "conv_macs_before": sum(c.macs_before for c in report.convs),
        "conv_macs_after": sum(c.macs_after for c in report.convs),
        "latency_ms": {}, "max_abs_diff": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for runtime in RUNTIMES:
            runners = {}
            for label, net in nets.items():
                path = export_to(runtime, net, x[:1], Path(tmp) / f"{runtime}-{len(runners)}")
                runners[label] = load_runner(runtime, path, threads=1)
                if not label.startswith("zoo"):
                    diff = float(np.abs(run_each(runners[label], images) - reference).max())
                    result["max_abs_diff"][f"{runtime}: {label}"] = diff
            result["latency_ms"][runtime] = medians(time_interleaved(runners, images[:1], rounds=args.rounds))
            print(runtime, result["latency_ms"][runtime], flush=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
