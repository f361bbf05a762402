"""What an exported artifact is (its manifest, when present, and the op histogram read from the file),
and what int8 would cost a checkpoint layer by layer (``inspect --quant-error``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.quiet import quiet_native
from ssc_deploy.runtimes import SUFFIXES, by_suffix

from .manifest import SUFFIX, load_manifest, manifest_path


def target_of(path: str | Path) -> str:
    """The target a file name belongs to, from its suffix."""
    spec = by_suffix(path)
    if spec is None:
        expected = f"{', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]}"
        raise SscDeployError(f"{path}: unknown artifact type '{Path(path).suffix.lower()}' (expected {expected})")
    return spec.target


def inspect_artifact(path: str | Path) -> dict[str, Any]:
    """``{"file", "target", "bytes", "manifest" (or None), "op_histogram"}`` for an artifact.

    The histogram is read from the file itself with the target's own tools (ONNX nodes,
    .pte kernel and delegate calls, .tflite builtin ops).
    """
    from .targets import TARGETS

    path = Path(path)
    if path.name.endswith(SUFFIX):
        path = path.with_name(path.name[: -len(SUFFIX)])
    if not path.exists():
        raise SscDeployError(f"{path}: no such file")
    if path.is_dir():
        raise SscDeployError(f"{path}: is a directory, not an artifact")
    target = target_of(path)
    mod = TARGETS[target]
    with quiet_native():
        mod.check_installed()
    manifest = load_manifest(path) if manifest_path(path).exists() else None
    try:
        with quiet_native():
            ops = mod.op_histogram(path)
    except SscDeployError:
        raise
    except Exception as err:  # noqa: BLE001 - an unreadable file is one line
        first = one_line(err)
        raise SscDeployError(f"{path}: not a readable {target} file ({first})") from None
    return {"file": str(path), "target": target, "bytes": path.stat().st_size, "manifest": manifest, "op_histogram": ops}


QUANT_ERROR_LOWERING = "dwconv"  # ExecuTorch's int8_lowering: the net the PT2E scheme simulated here quantizes


def quant_error_report(checkpoint: str | Path | None = None, *, model_name: str | None = None, calib: int = 256,
                       lowering: str = QUANT_ERROR_LOWERING, keep_float: Sequence[str] = (),
                       data: str | None = None) -> dict[str, Any]:
    """The per-layer int8 error table of a checkpoint (or an untrained ``model_name``), as plain data.

    The deployment net (``lowering``) is quantized in PyTorch with the ExecuTorch target's PT2E
    scheme, calibrated on ``calib`` training images of ``data`` (default: the checkpoint's data,
    else digits); see :mod:`ssc_deploy.export.quantize.layer_error`. ``{"model", "checkpoint",
    "trained", "lowering", "scheme", "calibration", "keep_float", "seconds", "layers"}``, the
    layers worst first as :meth:`LayerError.as_dict`.
    """
    import time

    import torch

    from ssc_deploy.data import DEFAULT_DATA

    from .quantize.calibration import calibration_images, check_calib
    from .quantize.layer_error import SCHEME, layer_errors
    from .quantize.layers import check_keep_float
    from .rewrite import deployment_rewrite

    check_calib(calib)
    started = time.perf_counter()
    if checkpoint is not None:
        from ssc_deploy.checkpoint import load_checkpoint

        ckpt = load_checkpoint(checkpoint, model_name=model_name)
        model, name, mean, std, size = ckpt.build_model(), ckpt.model_name, ckpt.mean, ckpt.std, ckpt.in_size
        data = data or (ckpt.provenance or {}).get("data") or DEFAULT_DATA
    elif model_name:
        from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
        from ssc_deploy.models import create_model

        with torch.random.fork_rng():
            torch.manual_seed(0)  # the same untrained weights every run
            model = create_model(model_name)
        name, mean, std, size = model_name, DEFAULT_MEAN, DEFAULT_STD, 32
        data = data or DEFAULT_DATA
    else:
        raise SscDeployError("--quant-error: give a CHECKPOINT or --model NAME")
    net = deployment_rewrite(model.eval(), lowering)
    kept = check_keep_float(net, keep_float)
    images = calibration_images(data, calib, mean, std, size)
    x = torch.from_numpy(images.images)
    with quiet_native():
        errors = layer_errors(net, x[:1], x, keep_float=kept)
    return {"model": name, "checkpoint": None if checkpoint is None else str(checkpoint),
            "trained": checkpoint is not None, "lowering": lowering, "scheme": SCHEME,
            "calibration": images.facts(), "keep_float": kept, "seconds": round(time.perf_counter() - started, 2),
            "layers": [e.as_dict() for e in errors]}
