"""Export step 3b, for int8 files: when the accuracy gate fails, keep the worst layers in float, a few
at a time within a bound, before giving up.

The layers are ranked by their isolated int8 SQNR on the calibration images (the table
``ssc-deploy inspect CKPT --quant-error`` prints, the ones a failed gate names); each try keeps
:data:`LAYERS_PER_TRY` more of them in float32 and exports and gates the file again, at most
:data:`MAX_TRIES` times. The file that passes records in its manifest which layers were kept, the
tries before it, the all-int8 file's size and the passing file's median latency against the
all-int8 file's, timed side by side here (1 thread, batch 1, interleaved; the CPU named)
(``quantization.kept_float_after_gate``). Off when ``--keep-float`` names layers (the user chose)
or is ``none``.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np

from ssc_deploy.export.lowered import LoweredNets
from ssc_deploy.export.quantize.gate import GateFailed, describe, worst_layer_names
from ssc_deploy.export.quantize.prepare import QuantizedInputs
from ssc_deploy.export.stage import StagedArtifact, export_target
from ssc_deploy.export.subject import ExportSubject
from ssc_deploy.export.validate import ArtifactKey, ExportOptions

LAYERS_PER_TRY = 2
MAX_TRIES = 3  # at most 6 layers in float


def export_gated(key: ArtifactKey, subject: ExportSubject, lowered: LoweredNets | None, options: ExportOptions,
                 path: Path, quantized: QuantizedInputs | None) -> StagedArtifact:
    """:func:`.stage.export_target`, and for an int8 file that fails its gate the bounded retry above;
    :class:`GateFailed` naming every layer tried when no try passes."""
    try:
        return export_target(key, subject, lowered, options, path, quantized)
    except GateFailed as first:
        if key.precision != "int8" or not options.retry_keep_float or quantized is None:
            raise
        all_int8_bytes = path.stat().st_size if path.is_file() else None
        all_int8 = path.with_name(path.name + ".all-int8")  # in scratch, kept to time against the file that passes
        if path.is_file():
            shutil.copyfile(path, all_int8)
        net = quantized.int8_nets.net_for(key.target)
        ranked = worst_layer_names(net, subject.example, quantized.calib_tensor(), options.quant.keep_float)
        kept, tries, last = list(options.quant.keep_float), [], first
        for _ in range(MAX_TRIES):
            more = [n for n in ranked if n not in kept][:LAYERS_PER_TRY]
            if not more:
                break
            kept += more
            record = {"layers": list(kept), "all_int8_bytes": all_int8_bytes, "all_int8_accuracy": _short(first.accuracy),
                      "tries": list(tries)}
            try:
                staged = export_target(key, subject, lowered, _keeping(options, kept), path,
                                       quantized, after_gate=record)
                record.update(speed_vs(key.target, path, all_int8, staged.manifest.input.layout,
                                       quantized.gate.images[:1] if quantized.gate is not None else None))
                _rewrite_manifest(staged)
                return staged
            except GateFailed as err:
                last = err
                tries.append({"layers": list(kept), "bytes": path.stat().st_size if path.is_file() else None,
                              **_short(err.accuracy)})
        if last is first:
            raise
        raise GateFailed(f"{key}: all int8: {describe(first.accuracy)}; with {', '.join(kept)} in float too: "
                         f"{describe(last.accuracy)}: > --max-drop {last.accuracy['max_drop']:g}; no {key} file was "
                         "written", last.accuracy) from None


def _keeping(options: ExportOptions, kept: list[str]) -> ExportOptions:
    """``options`` with the int8 files' ``keep_float`` set to ``kept``."""
    return replace(options, quant=replace(options.quant, keep_float=tuple(kept)))


def speed_vs(target: str, path: Path, all_int8: Path, layout: str, image: np.ndarray | None) -> dict:
    """``latency_ratio_vs_all_int8`` (median latency of ``path`` / the all-int8 file's, timed interleaved
    on one image, 1 thread) and the CPU it was timed on; empty when there is nothing to time."""
    if image is None or not all_int8.is_file():
        return {}
    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved

    x = image.transpose(0, 2, 3, 1) if layout == "NHWC" else image
    runners = {"kept": load_runner(target, path), "all_int8": load_runner(target, all_int8)}
    med = medians(time_interleaved(runners, x, rounds=10, calls=5, warmup=5))
    cpu = cpu_features()
    return {"latency_ratio_vs_all_int8": med["kept"] / med["all_int8"],
            "timed_on": f"{cpu.model} ({cpu.isa}), 1 thread, batch 1, median of 50 interleaved calls"}


def _rewrite_manifest(staged: StagedArtifact) -> None:
    """Write the staged file's manifest again (its retry record gained the timing)."""
    from ssc_deploy.export.manifest import manifest_path

    manifest_path(staged.path).write_text(staged.manifest.dumps(), encoding="utf-8")


def _short(accuracy: dict) -> dict:
    """What a try's gate found: top-1, drop (points) and McNemar p."""
    return {k: accuracy.get(k) for k in ("top1", "drop", "right_to_wrong", "wrong_to_right", "p")}
