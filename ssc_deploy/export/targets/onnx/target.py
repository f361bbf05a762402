"""ONNX target: TorchScript-based ``torch.onnx.export``, onnxsim, checker, metadata; runs on onnxruntime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import load_runner, run_each

from ssc_deploy.export.targets.common import TargetExport, histogram, require, version_of
from ssc_deploy.export.targets.onnx.options import OnnxOptions

SPEC = by_target("onnx")
SUFFIX, RUNTIME = SPEC.suffix, SPEC.runtime
INPUT_NAME = "input"
OUTPUT_NAME = "logits"


def check_installed() -> None:
    """Raise the one-line missing-package error unless onnx, onnxsim and onnxruntime import."""
    require("onnx", "onnx", SPEC.extra)
    require("onnxsim", "onnxsim", "export")
    require("onnxruntime", SPEC.dist, SPEC.extra)


def runtime_version() -> str | None:
    """Installed version of onnxruntime, or None."""
    return version_of(SPEC.dist)


def export(net, example, path: Path, options: OnnxOptions | None = None, *,
           metadata: dict[str, str] | None = None) -> TargetExport:
    """Export ``net`` at the static shape of ``example`` to ``path`` (simplified and checked) at
    ``options.opset``; ``metadata`` goes in the graph's metadata_props."""
    import onnx
    import onnxsim
    import torch

    opset = (options or OnnxOptions()).opset
    torch.onnx.export(
        net, (example,), str(path), opset_version=opset, dynamo=False,
        input_names=[INPUT_NAME], output_names=[OUTPUT_NAME], do_constant_folding=True,
    )
    model = onnx.load(str(path))
    simplified, ok = onnxsim.simplify(model)
    if ok:
        model = simplified
    for key, value in (metadata or {}).items():
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value if isinstance(value, str) else json.dumps(value)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return TargetExport(
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_shape=list(example.shape),
        layout="NCHW",
        op_histogram=histogram(n.op_type for n in model.graph.node),
        exporter={"torch": torch.__version__, "onnx": onnx.__version__, "onnxsim": version_of("onnxsim"),
                  "opset": opset, "simplified": bool(ok)},
    )


def op_histogram(path: Path) -> dict[str, int]:
    """Node op types of the ONNX graph in ``path``."""
    import onnx

    return histogram(n.op_type for n in onnx.load(str(path)).graph.node)


def app_files(path: Path, images: np.ndarray, reference: np.ndarray, atol: float, precision: str = "fp32") -> dict:
    """Write the ORT-format file and operator config beside the verified .onnx at ``path``, checked on
    ``images`` against ``reference`` (fp32: PyTorch's logits; int8: the .onnx's outputs); returns the
    manifest's ``exporter`` record of them."""
    from ssc_deploy.export.targets.onnx.ort_format import write_ort

    return write_ort(path, images, reference, atol, vs="pytorch" if precision == "fp32" else "onnx")


def companions(path: Path) -> list[Path]:
    """The files :func:`app_files` writes beside ``path`` (committed and refused like the artifact)."""
    from ssc_deploy.export.targets.onnx.ort_format import companions as ort_companions

    return ort_companions(path)


def run(path: Path, images: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Logits for each NCHW image (batch 1 each), one onnxruntime thread (the export's verify step)."""
    return run_each(load_runner(RUNTIME, path), images, nhwc)
