"""The accuracy gate of a quantized (int8 or fp16) artifact.

An int8 file cannot match fp32 logits to 1e-4, so it is gated on accuracy instead: top-1 on the
test split (the whole split up to ``--gate-images``, 10000 by default: all of digits' 360 and
CIFAR's 10000), through the runtime, against top-1 of the fp32 PyTorch model on the same images.
The images are paired, so the gate counts the ones that flip (fp32 right -> file wrong, and the
reverse) and tests them with the exact McNemar test. The file fails when its drop is more than
``--max-drop`` points AND significant (p < ``--gate-alpha``, 0.05): a drop of 4 images of 360 with
none gained back (1.11 points, p = 0.125) is within what the choice of test images alone gives,
so it passes with its interval stated (``--gate-alpha 1``: the drop alone decides). A failed
file's message names the layers that lose most (:mod:`ssc_deploy.export.quantize.layer_error`).
An untrained net has no accuracy to keep: its gate is skipped and the manifest says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from ssc_deploy.accuracy_stats import ALPHA, describe_flips, flips, gate_fails, wilson_interval
from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.options import DEFAULT_ALPHA, DEFAULT_GATE_IMAGES
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


def check_gate_options(max_drop: float, gate_images: int, alpha: float = DEFAULT_ALPHA) -> None:
    """One-line error for a negative or non-finite ``max_drop``, fewer than one gate image or an
    ``alpha`` outside (0, 1]."""
    if isinstance(max_drop, bool) or not isinstance(max_drop, (int, float)) or not (
            math.isfinite(max_drop) and max_drop >= 0):
        raise SscDeployError(f"--max-drop must be a number of top-1 points >= 0, got {max_drop}")
    if isinstance(gate_images, bool) or not isinstance(gate_images, int) or gate_images < 1:
        raise SscDeployError(f"--gate-images must be at least 1, got {gate_images}")
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha <= 1:
        raise SscDeployError(f"--gate-alpha must be a significance level in (0, 1], got {alpha}")


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


def measure(gate: GateSet, logits: np.ndarray, max_drop: float, alpha: float = DEFAULT_ALPHA) -> dict[str, Any]:
    """The manifest's ``quantization.accuracy``: top-1s with their 95 % Wilson intervals (fractions),
    the drop with its paired 95 % interval (points), agreement, the flips against fp32 and their
    exact McNemar p, and passed (:func:`ssc_deploy.accuracy_stats.gate_fails`)."""
    n = int(len(gate.labels))
    fp32, quantized = gate.fp32_top1, top1(logits, gate.labels)
    f = flips(gate.labels, gate.fp32_logits.argmax(1), np.asarray(logits).argmax(1))
    drop = round(100.0 * (fp32 - quantized), 4)
    lo, hi = f.delta_interval()
    return {"data": gate.data, "split": "test", "n_images": n, "fp32_top1": fp32,
            "top1": quantized, "drop": drop, "agreement": 1.0 - f.changed / n if n else 0.0,
            "max_drop": float(max_drop), "passed": not gate_fails(drop, max_drop, f.p, alpha),
            "fp32_top1_ci": list(wilson_interval(f.both_right + f.right_to_wrong, n)) if n else None,
            "top1_ci": list(wilson_interval(f.both_right + f.wrong_to_right, n)) if n else None,
            "drop_ci": [round(-100.0 * hi, 4), round(-100.0 * lo, 4)] if n else None,
            "right_to_wrong": f.right_to_wrong, "wrong_to_right": f.wrong_to_right, "p": f.p, "alpha": float(alpha)}


def describe(accuracy: dict[str, Any]) -> str:
    """``top-1 96.94% vs fp32 98.06% on 360 digits test images: drop 1.11 points (95 % interval -0.14 to
    2.77), 4 right->wrong, 0 wrong->right, McNemar p = 0.125 (not significant)``."""
    text = (f"top-1 {accuracy['top1']:.2%} vs fp32 {accuracy['fp32_top1']:.2%} on {accuracy['n_images']} "
            f"{accuracy['data']} test images: drop {accuracy['drop']:.2f} points")
    if accuracy.get("drop_ci") is None or accuracy.get("p") is None:
        return text
    lo, hi = accuracy["drop_ci"]
    flipped = describe_flips(accuracy["right_to_wrong"], accuracy["wrong_to_right"], accuracy.get("alpha", ALPHA))
    return text + f" (95 % interval {lo:.2f} to {hi:.2f}), {flipped}"


class GateFailed(SscDeployError):
    """An int8/fp16 file failed the accuracy gate (exit code 3); ``accuracy`` is what was measured."""

    def __init__(self, message: str, accuracy: dict[str, Any]) -> None:
        super().__init__(message, exit_code=3)
        self.accuracy = accuracy


def require_accuracy(accuracy: dict[str, Any], what: str, worst_layers: Callable[[], str] | None = None) -> None:
    """:class:`GateFailed` when ``accuracy`` failed the gate; ``worst_layers()`` names the culprits."""
    if accuracy["passed"]:
        return
    culprits = worst_layers() if worst_layers is not None else ""
    hint = (f"; worst layers: {culprits} (keep them in float with --keep-float LAYER,...)" if culprits
            else "")
    raise GateFailed(
        f"{what}: {describe(accuracy)}: > --max-drop {accuracy['max_drop']:g} (agreement {accuracy['agreement']:.1%})"
        f"{hint}; no {what} file was written", accuracy)


def worst_layer_names(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, keep_float=()) -> list[str]:
    """Every int8 conv/linear layer of ``net`` not in ``keep_float``, lowest int8 SQNR first (empty
    when the per-layer error table cannot be computed)."""
    try:
        from ssc_deploy.export.quantize.layer_error import layer_errors

        return [e.name for e in layer_errors(net, example, calib, keep_float=keep_float) if not e.float_kept]
    except (ImportError, SscDeployError):
        return []


def worst_layers(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, keep_float=(), n: int = 3) -> str:
    """The ``n`` layers of ``net`` with the lowest int8 SQNR on the calibration images, as one line.

    Empty when the per-layer error table cannot be computed (it only explains a failure).
    """
    try:
        from ssc_deploy.export.quantize.layer_error import format_worst, layer_errors
    except ImportError:
        return ""
    try:
        return format_worst(layer_errors(net, example, calib, keep_float=keep_float), n)
    except SscDeployError:
        return ""
