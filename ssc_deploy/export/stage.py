"""Export step 3, one file: export the deployment net, run the file in its runtime on the
verification images, require parity with PyTorch (fp32) or pass the accuracy gate (int8, fp16),
and write the manifest beside it (in scratch)."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

from ssc_deploy import __version__
from ssc_deploy.atomic import check_free_space
from ssc_deploy.checkpoint import sha256_file
from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.runtimes import by_target

from ssc_deploy.export.targets.common import TargetExport
from ssc_deploy.export.lowered import LoweredNets
from ssc_deploy.export.manifest import SCALE, InputSpec, Manifest, ModelInfo, OutputSpec, Parity, manifest_path
from ssc_deploy.export.quantize.gate import UNTRAINED, measure, require_accuracy, worst_layers
from ssc_deploy.export.quantize.prepare import QuantizedInputs, export_file
from ssc_deploy.export.subject import ExportSubject
from ssc_deploy.export.targets import TARGETS
from ssc_deploy.export.validate import FP32, ArtifactKey, ExportOptions
from ssc_deploy.export.verify import compare, require_parity

SPACE_MARGIN = 4 << 20  # converters' graphs, metadata and the manifest beside the weights


@dataclass(frozen=True)
class StagedArtifact:
    """A verified artifact and its manifest, written in the scratch directory."""

    target: str
    path: Path
    manifest: Manifest
    seconds: float
    precision: str = FP32

    @property
    def key(self) -> ArtifactKey:
        """The target and precision of this file."""
        return ArtifactKey(self.target, self.precision)


def export_target(target: str | ArtifactKey, subject: ExportSubject, lowered: LoweredNets | None, options: ExportOptions,
                  path: Path, quantized: QuantizedInputs | None = None,
                  after_gate: dict[str, Any] | None = None) -> StagedArtifact:
    """Export ``target`` (a target name, or a target and precision) to ``path``, verify it and write
    its manifest beside it.

    ``lowered``: the fp32 and fp16 files' deployment nets (None when there are none). fp32 files
    are verified against PyTorch to ``options.verify.atol``; int8 and fp16 files (made from
    ``quantized``: int8 nets, calibration and gate images) pass the accuracy gate instead. A
    converter crash becomes the one-line error (set ``SSC_DEPLOY_DEBUG=1`` for the traceback);
    parity beyond ``options.verify.atol`` or a failed gate is the exit-code-3 error. ``after_gate``: the
    record of the gate's retry (:mod:`~ssc_deploy.export.quantize.keep_float`) for the manifest's ``quantization``.
    """
    key = target if isinstance(target, ArtifactKey) else ArtifactKey(target)
    start = time.perf_counter()
    mod = TARGETS[key.target]
    check_free_space(path.parent, space_needed(subject), f"the {key} export", shown_as=path.parent.parent)
    metadata = {"ssc_deploy_model": subject.name, "classes": subject.classes, "mean": subject.mean,
                "std": subject.std, "scale": SCALE, "output": "logits"}
    nets = lowered if key.precision != "int8" else quantized.int8_nets
    net = nets.net_for(key.target)
    gate_logits = None
    with _one_line(key):
        if key.precision == FP32:
            info = mod.export(net, subject.example, path, options.target(key.target), metadata=metadata)
        else:
            metadata["precision"] = key.precision
            info = export_file(key.target, key.precision, net, subject, options, path, metadata, quantized)
        nhwc = info.layout == "NHWC"
        outputs = mod.run(path, nets.images, nhwc=nhwc)
        if key.precision != FP32 and quantized.gate is not None:
            gate_logits = mod.run(path, quantized.gate.images, nhwc=nhwc)
    output_shape = _check_outputs(outputs, subject, str(key))
    parity = compare(nets.reference, outputs, options.verify.atol, nets.data)
    quantization, warnings = None, list(info.warnings)
    if key.precision == FP32:
        require_parity(parity, key.target, info.output_name)
    else:
        quantization = _gate(key, net, subject, options, info, quantized, gate_logits, warnings)
        if after_gate is not None:
            quantization["kept_float_after_gate"] = after_gate
        parity = replace(parity, passed=True)  # gated on accuracy: a file that failed was never kept
    if hasattr(mod, "app_files"):  # files an app loads, made from the verified file (onnx: its .ort)
        with _one_line(key):
            info.exporter.update(mod.app_files(path, nets.images, nets.reference if key.precision == FP32 else outputs,
                                               options.verify.atol, key.precision))
    manifest = _manifest(key, path, info, subject, nets, parity, output_shape, quantization, warnings)
    try:
        manifest_path(path).write_text(manifest.dumps(), encoding="utf-8")
    except OSError as err:
        raise SscDeployError(f"{key}: cannot write the manifest ({err.strerror or err}); no artifact was written") from None
    return StagedArtifact(key.target, path, manifest, time.perf_counter() - start, key.precision)


@contextlib.contextmanager
def _one_line(key: ArtifactKey) -> Iterator[None]:
    """A converter's or runtime's unexpected exception as the one-line export failure."""
    try:
        yield
    except SscDeployError:
        raise
    except Exception as err:  # noqa: BLE001 - converter failures become one line
        if os.environ.get("SSC_DEPLOY_DEBUG"):
            raise
        first = one_line(err)
        raise SscDeployError(f"{key}: export failed ({type(err).__name__}: {first}); no artifact was written") from None


def _gate(key: ArtifactKey, net, subject: ExportSubject, options: ExportOptions, info: TargetExport,
          quantized: QuantizedInputs, gate_logits, warnings: list[str]) -> dict[str, Any]:
    """The manifest's ``quantization`` of an int8/fp16 file that passed the gate; exit-code-3 error if not."""
    quantization = dict(info.extra.get("quantization") or {})
    if key.precision == "int8":
        quantization["calibration"] = quantized.calib.facts()
        merge = quantized.group_merge_facts(key.target, options.quant.int8_group_merge)
        if merge is not None:
            quantization["group_merge"] = merge
    if quantized.gate is None:
        quantization["accuracy"] = None
        warnings.append(UNTRAINED)
        return quantization
    accuracy = measure(quantized.gate, gate_logits, options.quant.max_drop, options.quant.gate_alpha)
    worst = None
    if key.precision == "int8":
        def worst() -> str:
            return worst_layers(net, subject.example, quantized.calib_tensor(), options.quant.keep_float)
    require_accuracy(accuracy, str(key), worst)
    quantization["accuracy"] = accuracy
    return quantization


def space_needed(subject: ExportSubject) -> int:
    """Bytes one target's export may need in scratch: the float32 weights a few times over, and a margin."""
    return 3 * 4 * subject.params + SPACE_MARGIN


def _check_outputs(outputs, subject: ExportSubject, target: str) -> list[int]:
    """The artifact's own output shape for one image; one-line error unless it is one logit per class."""
    shape = [int(d) for d in getattr(outputs, "shape", ())]
    if len(shape) != 2 or shape[1] != len(subject.classes):
        raise SscDeployError(f"{target}: the artifact outputs shape {shape[1:]} per image, but there are "
                             f"{len(subject.classes)} class names; no artifact was written")
    return [1, shape[1]]


def _manifest(key: ArtifactKey, path: Path, info: TargetExport, subject: ExportSubject, lowered: LoweredNets,
              parity: Parity, output_shape: list[int], quantization: dict[str, Any] | None,
              warnings: list[str]) -> Manifest:
    """The one place a manifest is built."""
    target = key.target
    lowering = lowered.lowerings[target]
    return Manifest(
        file=path.name,
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        target=target,
        precision=key.precision,
        runtime=by_target(target).runtime,
        runtime_version=TARGETS[target].runtime_version(),
        exporter=info.exporter,
        model=ModelInfo(name=subject.name, family=subject.family, params=subject.params, macs=subject.macs,
                        lowering=lowering, lowering_reason=lowered.reasons.get(target), trained=subject.trained),
        input=InputSpec(name=info.input_name, shape=info.input_shape, dtype="float32", layout=info.layout,
                        mean=subject.mean, std=subject.std, scale=SCALE),
        output=OutputSpec(name=info.output_name, shape=output_shape, kind="logits"),
        classes=subject.classes,
        parity=parity,
        quantization=quantization,
        source=subject.source,
        delegation=info.extra.get("delegation"),
        op_histogram=info.op_histogram,
        rewrite={"max_abs_diff": lowered.rewrite_diff[lowering],
                 **({"graph": lowered.foreign.summary()} if lowered.foreign is not None else {})},
        warnings=warnings,
        ssc_deploy_version=__version__,
        created=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
