"""TFLite target: litert-torch conversion (optionally NHWC I/O); runs on the LiteRT interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ._common import TargetExport, histogram, require, version_of

NAME = "tflite"
SUFFIX = ".tflite"
RUNTIME = "tflite"


def check_installed() -> None:
    """Raise the one-line missing-package error unless litert-torch and ai-edge-litert import."""
    require("litert_torch", "litert-torch", "export")
    require("ai_edge_litert.interpreter", "ai-edge-litert", "tflite")


def runtime_version() -> str | None:
    return version_of("ai-edge-litert")


def _interpreter(path: Path, delegates: bool = True):
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_path=str(path), num_threads=1, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def op_histogram(path: Path) -> dict[str, int]:
    """Builtin op names of the .tflite graph as stored (before any delegate takes ops), read by LiteRT."""
    return histogram(op["op_name"] for op in _interpreter(path, delegates=False)._get_ops_details())


def export(net, example, path: Path, *, nhwc: bool = False, **_) -> TargetExport:
    """Convert ``net`` with litert-torch; with ``nhwc`` the input is channel-last (N, H, W, C)."""
    import litert_torch
    import torch

    module = litert_torch.to_channel_last_io(net, args=[0]) if nhwc else net
    sample = example.permute(0, 2, 3, 1).contiguous() if nhwc else example
    litert_torch.convert(module.eval(), (sample,)).export(str(path))
    interp = _interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return TargetExport(
        input_name=inp["name"],
        output_name=out["name"],
        input_shape=[int(v) for v in inp["shape"]],
        layout="NHWC" if nhwc else "NCHW",
        op_histogram=op_histogram(path),
        exporter={"torch": torch.__version__, "litert-torch": version_of("litert-torch"),
                  "litert-converter": version_of("litert-converter")},
    )


def run(path: Path, images: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Logits for each NCHW image (batch 1 each) through the LiteRT interpreter, one thread."""
    interp = _interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    outs = []
    for img in images:
        x = img.transpose(1, 2, 0) if nhwc else img
        interp.set_tensor(inp["index"], np.ascontiguousarray(x[None], dtype=np.float32))
        interp.invoke()
        outs.append(interp.get_tensor(out["index"]).copy())
    return np.concatenate(outs, 0)
