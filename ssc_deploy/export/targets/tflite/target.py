"""TFLite target: litert-torch conversion (optionally NHWC I/O); runs on the LiteRT interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import load_runner, run_each, tflite_interpreter

from ssc_deploy.export.targets.common import TargetExport, histogram, require, version_of
from ssc_deploy.export.targets.tflite.options import TfliteOptions

SPEC = by_target("tflite")
SUFFIX, RUNTIME = SPEC.suffix, SPEC.runtime


def check_installed() -> None:
    """Raise the one-line missing-package error unless litert-torch and ai-edge-litert import."""
    require("litert_torch", "litert-torch", "export")
    require("ai_edge_litert.interpreter", SPEC.dist, SPEC.extra)


def runtime_version() -> str | None:
    """Installed version of LiteRT (ai-edge-litert), or None."""
    return version_of(SPEC.dist)


def op_histogram(path: Path) -> dict[str, int]:
    """Builtin op names of the .tflite graph as stored (before any delegate takes ops), read by LiteRT."""
    return histogram(op["op_name"] for op in tflite_interpreter(path, delegates=False)._get_ops_details())


def export(net, example, path: Path, options: TfliteOptions | None = None, *,
           metadata: dict | None = None) -> TargetExport:
    """Convert ``net`` with litert-torch; with ``options.nhwc`` the input is channel-last (N, H, W, C).
    ``metadata`` is not stored (litert-torch writes none; the manifest beside the file has it)."""
    import litert_torch
    import torch

    nhwc = (options or TfliteOptions()).nhwc
    module = litert_torch.to_channel_last_io(net, args=[0]) if nhwc else net
    sample = example.permute(0, 2, 3, 1).contiguous() if nhwc else example
    litert_torch.convert(module.eval(), (sample,)).export(str(path))
    interp = tflite_interpreter(path)
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
    """Logits for each NCHW image (batch 1 each) through the LiteRT interpreter, one thread; with
    ``nhwc`` each image is fed channel-last (the export's verify step)."""
    return run_each(load_runner(RUNTIME, path), images, nhwc)
