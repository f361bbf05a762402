"""Tiny stand-ins for the native benchmark tools (real executables, cross-compiled for aarch64
when ``aarch64-linux-gnu-gcc`` is installed) and a tiny real ONNX model for transport tests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

# Prints benchmark_model's documented lines (INFO: prefixes, one figure in scientific notation)
# and echoes its arguments so tests can check the command line it was given.
FAKE_BENCHMARK_MODEL_C = r"""
#include <stdio.h>
int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) printf("INFO: arg %s\n", argv[i]);
    printf("INFO: Initialized TensorFlow Lite runtime.\n");
    printf("INFO: count=5 first=5100 curr=4200 min=4100 max=5100 avg=4380 std=380\n");
    printf("INFO: count=20 first=4050 curr=4010 min=3.9e+03 max=4500 avg=4.0105e+03 std=120\n");
    printf("INFO: Inference timings in us: Init: 12345, First inference: 5100, Warmup (avg): 4380, Inference (avg): 4010.5\n");
    printf("INFO: Memory footprint delta from the start of the tool (MB): init=3.5 overall=10.25\n");
    return 0;
}
"""


def build_fake_benchmark_model(out_dir: Path, arch: str) -> Path | None:
    """Compile the fake tool for ``aarch64`` (static, cross gcc) or ``x86_64`` (host gcc); None if no compiler."""
    cc = {"aarch64": "aarch64-linux-gnu-gcc", "x86_64": "gcc"}[arch]
    if shutil.which(cc) is None:
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "fake_benchmark_model.c"
    src.write_text(FAKE_BENCHMARK_MODEL_C)
    exe = out_dir / f"benchmark_model-{arch}"
    subprocess.run([cc, "-O1", "-static", "-o", str(exe), str(src)], check=True, capture_output=True)
    return exe


def tiny_onnx(path: Path) -> Path:
    """A real ONNX model (1x3x8x8 -> GlobalAveragePool -> Flatten -> 1x3) built with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]), helper.make_node("Flatten", ["p"], ["y"], axis=1)],
        "tiny", [x], [y],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def tiny_inputs(path: Path, n: int = 4) -> Path:
    """An inputs .npz for the runner: x, labels and the reference logits (the model's exact mean)."""
    import numpy as np

    rng = np.random.default_rng(0)
    x = rng.standard_normal((n, 3, 8, 8)).astype(np.float32)
    ref = x.mean(axis=(2, 3))
    np.savez(path, x=x, labels=ref.argmax(1).astype(np.int64), reference=ref)
    return path
