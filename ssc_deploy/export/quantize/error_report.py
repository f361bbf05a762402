"""What int8 would cost a checkpoint, layer by layer (``inspect --quant-error``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from ssc_deploy.errors import SscDeployError
from ssc_deploy.quiet import quiet_native

from ssc_deploy.export.options import DEFAULT_CALIB

QUANT_ERROR_LOWERING = "dwconv"  # ExecuTorch's int8_lowering: the net the PT2E scheme simulated here quantizes


def quant_error_report(checkpoint: str | Path | None = None, *, model_name: str | None = None, calib: int = DEFAULT_CALIB,
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

    from ssc_deploy.export.quantize.calibration import calibration_images, check_calib
    from ssc_deploy.export.quantize.layer_error import SCHEME, layer_errors
    from ssc_deploy.export.quantize.layers import check_keep_float
    from ssc_deploy.export.rewrite import deployment_rewrite

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
