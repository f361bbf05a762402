"""TFLite target: litert-torch conversion (NHWC I/O by default), TFLite Metadata; runs on the LiteRT interpreter."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import load_runner, run_each
from ssc_deploy.export.targets.tflite.session import tflite_interpreter

from ssc_deploy.export.targets.common import TargetExport, histogram, require, version_of
from ssc_deploy.export.targets.tflite import metadata as tflite_metadata
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
    """Convert ``net`` with litert-torch; with ``options.nhwc`` the input is channel-last (N, H, W, C),
    the layout MediaPipe's ImageClassifier needs. With the export's ``metadata`` facts the file gets
    TFLite Metadata (:mod:`~ssc_deploy.export.targets.tflite.metadata`)."""
    import litert_torch
    import torch

    nhwc = (options or TfliteOptions()).nhwc
    module = litert_torch.to_channel_last_io(net, args=[0]) if nhwc else net
    sample = example.permute(0, 2, 3, 1).contiguous() if nhwc else example
    litert_torch.convert(module.eval(), (sample,)).export(str(path))
    layout = "NHWC" if nhwc else "NCHW"
    app_facts, warnings = embed_metadata(path, metadata, layout)
    interp = tflite_interpreter(path)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    return TargetExport(
        input_name=inp["name"],
        output_name=out["name"],
        input_shape=[int(v) for v in inp["shape"]],
        layout=layout,
        op_histogram=op_histogram(path),
        exporter={"torch": torch.__version__, "litert-torch": version_of("litert-torch"),
                  "litert-converter": version_of("litert-converter"), **app_facts},
        warnings=warnings,
    )


def embed_metadata(path: Path, metadata: dict | None, layout: str) -> tuple[dict, list[str]]:
    """Write TFLite Metadata from the export's ``metadata`` facts into the .tflite at ``path``;
    returns the manifest's ``exporter`` facts (``tflite_metadata``: bytes added) and the warnings of a file
    MediaPipe's ImageClassifier would refuse (NCHW input, per-channel normalisation). Without
    MediaPipe (the ``app`` extra) the file has no metadata and the warning says so."""
    if not metadata:
        return {}, []
    try:
        tflite_metadata.check_installed()
    except SscDeployError as err:
        return {"tflite_metadata": None}, [f"no TFLite Metadata written: {err}"]
    from ssc_deploy import __version__

    precision = metadata.get("precision", "fp32")
    added = tflite_metadata.write_metadata(path, metadata, precision=precision, version=__version__)
    facts = {"tflite_metadata": {"bytes_added": added, "label_file": tflite_metadata.LABEL_FILE,
                                 "mediapipe": version_of("mediapipe")}}
    return facts, tflite_metadata.mediapipe_warnings(layout, metadata["mean"], metadata["std"])


def run(path: Path, images: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Logits for each NCHW image (batch 1 each) through the LiteRT interpreter, one thread; with
    ``nhwc`` each image is fed channel-last (the export's verify step)."""
    return run_each(load_runner(RUNTIME, path), images, nhwc)
