"""The ORT-format file beside every exported .onnx: what onnxruntime's mobile (and other reduced)
builds load, made by onnxruntime's own converter and checked against the .onnx on real images.

``NAME.onnx`` -> ``NAME.ort`` and ``NAME.required_operators.config`` (the operator kernels a reduced
build must include: ``build.sh --include_ops_by_config``), both made with
``onnxruntime.tools.convert_onnx_models_to_ort`` (fixed optimisation style, level ``all``, the
x86-only NCHWc transformer left out, as the converter does for any non-amd64 target) in a temp
directory beside the file and renamed into place.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from ssc_deploy.errors import SscDeployError

ORT_SUFFIX = ".ort"
CONFIG_SUFFIX = ".required_operators.config"
INT8_RTOL = 1e-2  # int8 .ort vs its .onnx: of the largest |logit| (+1)


def ort_path(onnx_path: str | Path) -> Path:
    """Where the ORT-format file of ``onnx_path`` goes (``NAME.int8.onnx`` -> ``NAME.int8.ort``)."""
    return Path(onnx_path).with_suffix(ORT_SUFFIX)


def config_path(onnx_path: str | Path) -> Path:
    """Where the reduced build's operator config of ``onnx_path`` goes."""
    return Path(onnx_path).with_suffix(CONFIG_SUFFIX)


def companions(onnx_path: str | Path) -> list[Path]:
    """The files written beside ``onnx_path``: its .ort and its operator config."""
    return [ort_path(onnx_path), config_path(onnx_path)]


def convert(onnx_path: Path) -> tuple[Path, Path, float]:
    """Write ``onnx_path``'s .ort and operator config beside it (temp + rename); returns both and the seconds."""
    from onnxruntime.tools.convert_onnx_models_to_ort import OptimizationStyle, convert_onnx_models_to_ort

    onnx_path = Path(onnx_path)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=".ort.", dir=onnx_path.parent) as tmp:
        chatter = io.StringIO()  # the converter prints each step
        with contextlib.redirect_stdout(chatter):
            convert_onnx_models_to_ort(onnx_path, output_dir=Path(tmp), optimization_styles=[OptimizationStyle.Fixed])
        made = [Path(tmp) / p.name for p in companions(onnx_path)]
        missing = [p.name for p in made if not p.is_file()]
        if missing:
            raise SscDeployError(f"{onnx_path.name}: onnxruntime's ORT converter wrote no {missing[0]}")
        for src, dst in zip(made, companions(onnx_path)):
            os.replace(src, dst)
    return ort_path(onnx_path), config_path(onnx_path), time.perf_counter() - start


def run_ort(path: Path, images: np.ndarray) -> np.ndarray:
    """Outputs of the .ort file for each NCHW image (batch 1 each), on one onnxruntime thread."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))])


def required_operators(config: Path) -> list[str]:
    """``domain;opset;Op,Op`` lines of the operator config as ``domain:opset:Op`` names."""
    ops = []
    for line in config.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            domain, opset, names = line.split(";", 2)
            ops += [f"{domain}:{opset}:{op}" for op in names.split(",") if op]
    return ops


def write_ort(onnx_path: Path, images: np.ndarray, reference: np.ndarray, atol: float,
              vs: str = "pytorch") -> dict[str, Any]:
    """Convert ``onnx_path`` to its .ort and operator config, run the .ort on ``images`` and require its
    outputs to match ``reference`` (one-line error otherwise): PyTorch's logits to ``atol``, the bar of
    the fp32 .onnx (``vs="pytorch"``), or an int8 .onnx's own outputs (``vs="onnx"``) to ``atol`` or
    :data:`INT8_RTOL` of their range, whichever is larger (the offline-optimised graph rounds a little
    differently; one int8 step is far more than ``atol``).

    Returns the manifest's record: file names, bytes, conversion seconds, the operators and the parity.
    """
    ort_file, config, seconds = convert(Path(onnx_path))
    try:
        got = run_ort(ort_file, np.ascontiguousarray(images, dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - a file onnxruntime cannot load is one line
        raise SscDeployError(f"{ort_file.name}: onnxruntime cannot run the ORT-format file ({type(err).__name__})") from None
    diff = float(np.abs(got - reference).max())
    agree = float((got.argmax(1) == reference.argmax(1)).mean())
    if vs != "pytorch":
        atol = max(atol, INT8_RTOL * (float(np.abs(reference).max()) + 1.0))
    if not diff <= atol:
        raise SscDeployError(f"{ort_file.name}: the ORT-format file's outputs differ from {vs}'s by {diff:.2e} "
                             f"(> atol {atol:g}); no artifact was written")
    return {"ort_format": {
        "file": ort_file.name, "bytes": ort_file.stat().st_size, "seconds": round(seconds, 3),
        "operator_config": config.name, "required_operators": required_operators(config),
        "parity": {"vs": vs, "n_images": int(len(images)), "max_abs_diff": diff, "top1_agreement": agree,
                   "atol": atol, "passed": True},
    }}
