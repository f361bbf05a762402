"""The accuracy gate of a quantized (int8 or fp16) artifact.

An int8 file cannot match fp32 logits to 1e-4, so it is gated on accuracy instead: top-1 on the
test split (at most ``--gate-images`` images), through the runtime, against top-1 of the fp32
PyTorch model on the same images. A drop of more than ``--max-drop`` points fails the export
(exit code 3, nothing written) and the message names the layers that lose most
(:mod:`ssc_deploy.export.quantize.layer_error`). An untrained net has no accuracy to keep: its
gate is skipped and the manifest says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ssc_deploy.errors import SscDeployError

DEFAULT_MAX_DROP = 1.0  # top-1 points
DEFAULT_GATE_IMAGES = 1000
UNTRAINED = "accuracy gate skipped: the net is untrained (no checkpoint), its accuracy means nothing"
_BATCH = 256


@dataclass(frozen=True)
class GateSet:
    """Labelled test images and the fp32 PyTorch model's logits on them."""

    images: np.ndarray  # (N, 3, S, S) float32, normalised
    labels: np.ndarray  # (N,) int64
    data: str
    fp32_logits: np.ndarray

    @property
    def fp32_top1(self) -> float:
        """Top-1 of the fp32 PyTorch model on these images (a fraction)."""
        return top1(self.fp32_logits, self.labels)


def check_gate_options(max_drop: float, gate_images: int) -> None:
    """One-line error for a negative or non-finite ``max_drop`` or fewer than one gate image."""
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not (
            math.isfinite(max_drop) and max_drop >= 0):
        raise SscDeployError(f"--max-drop must be a number of top-1 points >= 0, got {max_drop}")
    if isinstance(gate_images, bool) or not isinstance(gate_images, int) or gate_images < 1:
        raise SscDeployError(f"--gate-images must be at least 1, got {gate_images}")


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of rows whose largest logit is the label."""
    return float((np.asarray(logits).argmax(1) == labels).mean()) if len(labels) else 0.0


def gate_set(model: nn.Module, data: str, mean, std, in_size: int, n: int = DEFAULT_GATE_IMAGES) -> GateSet:
    """The first ``n`` test images of ``data`` with labels, and ``model``'s (fp32, eval) logits on them."""
    from ssc_deploy.data import eval_batch

    images, labels = eval_batch(data, n, mean, std, in_size)
    with torch.no_grad():
        logits = np.concatenate([model(torch.from_numpy(images[i:i + _BATCH])).numpy()
                                 for i in range(0, len(images), _BATCH)])
    return GateSet(images=images, labels=labels, data=data, fp32_logits=logits)


def measure(gate: GateSet, logits: np.ndarray, max_drop: float) -> dict[str, Any]:
    """The manifest's ``quantization.accuracy``: top-1 (fractions), drop (points), agreement, passed."""
    fp32, quantized = gate.fp32_top1, top1(logits, gate.labels)
    drop = round(100.0 * (fp32 - quantized), 4)
    agreement = float((np.asarray(logits).argmax(1) == gate.fp32_logits.argmax(1)).mean())
    return {"data": gate.data, "split": "test", "n_images": int(len(gate.labels)), "fp32_top1": fp32,
            "top1": quantized, "drop": drop, "agreement": agreement, "max_drop": float(max_drop),
            "passed": bool(drop <= max_drop)}


def require_accuracy(accuracy: dict[str, Any], what: str, worst_layers: Callable[[], str] | None = None) -> None:
    """The exit-code-3 error when ``accuracy`` failed the gate; ``worst_layers()`` names the culprits."""
    if accuracy["passed"]:
        return
    culprits = worst_layers() if worst_layers is not None else ""
    hint = (f"; worst layers: {culprits} (keep them in float with --keep-float LAYER,...)" if culprits
            else "")
    raise SscDeployError(
        f"{what}: top-1 {accuracy['top1']:.2%} vs fp32 {accuracy['fp32_top1']:.2%} on {accuracy['n_images']} "
        f"{accuracy['data']} test images: drop {accuracy['drop']:.2f} points > --max-drop {accuracy['max_drop']:g}"
        f" (agreement {accuracy['agreement']:.1%}){hint}; no artifact was written", exit_code=3)


def worst_layers(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, keep_float=(), n: int = 3) -> str:
    """The ``n`` layers of ``net`` with the lowest int8 SQNR on the calibration images, as one line.

    Empty when the per-layer error table cannot be computed (it only explains a failure).
    """
    try:
        from .layer_error import format_worst, layer_errors
    except ImportError:
        return ""
    try:
        return format_worst(layer_errors(net, example, calib, keep_float=keep_float), n)
    except SscDeployError:
        return ""
