"""Export step 2b, for int8 and fp16 files: their deployment nets, calibration images and gate set,
and the call into each target's quantizer (:mod:`ssc_deploy.export.quantize`).

int8 files use, with ``--lowering fast`` on the host, the int8 candidate measured there
(:mod:`~ssc_deploy.export.lowerings.selection.int8`; whether int8 pays at all goes to the manifest), else the
lowering the runtime table names for them (``int8_lowering``: the one that keeps the int8 chain whole on
that runtime), whatever ``--lowering`` the fp32 files get (for an ARM device, ``--for``: the int8
candidate with the fewest instructions there), then
the group merge asked for (``QuantOptions.int8_group_merge``, exact; :mod:`~ssc_deploy.export.lowerings.group_merge`); fp16
files use the fp32 files' lowering.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.models.modes import eval_mode

from ssc_deploy.export.targets.common import TargetExport
from ssc_deploy.export.lowered import REWRITE_ATOL, REWRITE_CHECK_IMAGES, LoweredNets, rewrite_for_targets
from ssc_deploy.export.lowerings.group_merge import GroupMergeSpec, MergeReport, merge_grouped_convs
from ssc_deploy.export.lowerings.selection.choice import LoweringChoice
from ssc_deploy.export.quantize.calibration import CalibrationSet, calibration_images
from ssc_deploy.export.quantize.gate import GateSet, gate_set
from ssc_deploy.export.quantize.layers import DEFAULT_WEIGHTS, WEIGHT_MODES, check_keep_float, per_tensor_layers
from ssc_deploy.export.subject import ExportSubject
from ssc_deploy.export.validate import ExportOptions
from ssc_deploy.export.verify import compare

INT8 = "int8"


@dataclass(frozen=True)
class QuantizedInputs:
    """What every int8 and fp16 file of one export is made from and gated on."""

    int8_nets: LoweredNets | None  # the int8 targets' deployment nets (None: no int8 file)
    calib: CalibrationSet | None  # None: no int8 file
    gate: GateSet | None  # None: untrained net, no accuracy to keep
    merges: dict[str, MergeReport] = field(default_factory=dict)  # lowering -> the int8 net's group merge
    choices: dict[str, LoweringChoice] = field(default_factory=dict)  # int8 target -> its lowering choice

    def group_merge_facts(self, target: str, spec: GroupMergeSpec) -> dict | None:
        """The manifest's ``quantization.group_merge`` of ``target``'s int8 file (None: no merge asked)."""
        report = self.merges.get(self.int8_nets.lowerings[target])
        return None if report is None else report.facts(spec)

    def calib_tensor(self) -> torch.Tensor:
        """The calibration images as the (N, 3, S, S) tensor the quantizers take."""
        return torch.from_numpy(self.calib.images)


def prepare(model: nn.Module, subject: ExportSubject, images: np.ndarray, data: str,
            options: ExportOptions) -> QuantizedInputs:
    """The int8 deployment nets (``--keep-float`` checked against them), calibration set and gate set.

    ``images``/``data``: the verification images and their data spec; calibration takes the
    training split and the gate the test split of the same data.
    """
    int8_targets = list(options.targets) if INT8 in options.precisions else []
    nets, choices = _int8_nets(model, images, data, int8_targets, options) if int8_targets else (None, {})
    merges: dict[str, MergeReport] = {}
    quant = options.quant
    if nets is not None and quant.int8_group_merge:
        nets, merges = _merged(nets, quant.int8_group_merge, options.verify.atol)
    if nets is not None:
        for low in nets.nets.values():
            check_keep_float(low, quant.keep_float)
    calib = (calibration_images(data, quant.calib, subject.mean, subject.std, subject.in_size)
             if int8_targets else None)
    gate = None
    if subject.trained:
        with eval_mode(model):
            gate = gate_set(model, data, subject.mean, subject.std, subject.in_size, quant.gate_images)
    return QuantizedInputs(nets, calib, gate, merges, choices)


def export_file(target: str, precision: str, net: nn.Module, subject: ExportSubject, options: ExportOptions,
                path, metadata: dict[str, Any], inputs: QuantizedInputs) -> TargetExport:
    """Write ``target``'s ``precision`` file of the deployment ``net`` to ``path`` with its quantizer."""
    module = _quantizer(target)
    if precision == INT8:
        quant, extra = options.quant, {}
        weights = quant.int8_weights
        per_channel_only = getattr(module, "PER_CHANNEL_ONLY", None)  # why this runtime keeps per-channel weights
        if per_channel_only:
            weights = DEFAULT_WEIGHTS
        else:
            extra["per_tensor"] = per_tensor_layers(net, weights, quant.keep_float)
        info = module.export_int8(net, subject.example, inputs.calib_tensor(), path, options.target(target),
                                  keep_float=quant.keep_float, metadata=metadata, **extra)
        info.extra["quantization"].update(weights=WEIGHT_MODES[weights],
                                          per_tensor_layers=len(extra.get("per_tensor", ())))
        choice = inputs.choices.get(target)
        if choice is not None and choice.int8_pays is not None:
            info.extra["quantization"]["int8_pays"] = choice.int8_pays
        if choice is not None and choice.note:
            info.warnings.append(choice.note)
        if weights != quant.int8_weights:
            info.warnings.append(f"--int8-weights {quant.int8_weights}: {target} {per_channel_only}")
        return info
    return module.export_fp16(net, subject.example, path, options.target(target), metadata=metadata)


def _int8_nets(model: nn.Module, images: np.ndarray, data: str, targets: list[str],
               options: ExportOptions) -> tuple[LoweredNets, dict[str, LoweringChoice]]:
    """Each int8 target's deployment net under its :func:`~ssc_deploy.export.lowerings.selection.choice.int8_choice`
    (each lowering rewritten once), and those choices."""
    from ssc_deploy.export.lowerings.selection.choice import int8_choice

    choices = {t: int8_choice(t, options.lowering, options.arm_profile, options.quant.int8_lowering) for t in targets}
    parts = []
    by_lowering: dict[str, list[str]] = {}
    for t in targets:
        by_lowering.setdefault(choices[t].lowering, []).append(t)
    for low, ts in by_lowering.items():
        parts.append(rewrite_for_targets(model, images, data, ts, low, options.verify.atol))
    return replace(parts[0], lowerings={t: low for p in parts for t, low in p.lowerings.items()},
                   nets={k: v for p in parts for k, v in p.nets.items()},
                   rewrite_diff={k: v for p in parts for k, v in p.rewrite_diff.items()},
                   reasons={t: c.reason for t, c in choices.items()}), choices


def _merged(nets: LoweredNets, spec: GroupMergeSpec, atol: float) -> tuple[LoweredNets, dict[str, MergeReport]]:
    """``nets`` with their grouped 1x1 convs merged by ``spec`` (in place) and their parity re-checked;
    the exit-code-3 error if a merge changed the outputs beyond float rounding."""
    n = REWRITE_CHECK_IMAGES
    x = torch.from_numpy(nets.images[:n])
    reports, diffs = {}, dict(nets.rewrite_diff)
    for low, net in nets.nets.items():
        reports[low] = merge_grouped_convs(net, spec)
        with torch.no_grad():
            parity = compare(nets.reference[:n], net(x).numpy(), max(atol, REWRITE_ATOL), nets.data)
        if not parity.passed:
            raise SscDeployError(f"int8 group merge ({low}) changed the outputs by {parity.max_abs_diff:.3g} "
                                 f"(> {parity.atol:g}); nothing was exported", exit_code=3)
        diffs[low] = parity.max_abs_diff
    return replace(nets, rewrite_diff=diffs), reports


def _quantizer(target: str):
    """``ssc_deploy.export.targets.<target>.quantized`` (its int8 export, and tflite's fp16 export)."""
    try:
        return importlib.import_module(f"ssc_deploy.export.targets.{target}.quantized")
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("ssc_deploy."):
            raise
        raise SscDeployError(f"{target}: quantized export is not available in this ssc-deploy build") from None
