"""``export_module``: an ``nn.Module`` -> verified artifacts + manifests; ``export_model`` loads one first.

>>> from ssc_deploy import create_model, export_module
>>> net = create_model("ssc-net-1-9")
>>> results = export_module(net, torch.zeros(1, 3, 32, 32), targets="all", out_dir="exports")

The steps, each in its own module: validate (options, packages, output paths; ``validate.py``,
the module itself in ``subject.py``), rewrite (lowering per target, deployment net, its parity;
``lowered.py``; for int8/fp16 files also their nets, calibration and gate images:
``quantized.py``), export one file (export, run, parity or accuracy gate, manifest;
``stage.py``) and commit (move the staged files into place; ``commit.py``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator, Sequence

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.quiet import quiet_native

from ssc_deploy.export.commit import ExportIncomplete, ExportResult, commit, staging
from ssc_deploy.export.quantize.keep_float import export_gated
from ssc_deploy.export.lowered import rewrite_for_targets
from ssc_deploy.export.lowerings import DEFAULT_LOWERING
from ssc_deploy.export.manifest import SourceInfo
from ssc_deploy.export.progress import ExportProgress, export_progress
from ssc_deploy.export.quantize.calibration import DEFAULT_CALIB
from ssc_deploy.export.quantize.gate import DEFAULT_ALPHA, DEFAULT_GATE_IMAGES, DEFAULT_MAX_DROP
from ssc_deploy.export.quantize.prepare import prepare
from ssc_deploy.export.subject import describe_module
from ssc_deploy.export.validate import ExportOptions, check_installed, check_options, plan_outputs, resolve_targets
from ssc_deploy.export.verify import verification_images

__all__ = ["DEFAULT_N_VERIFY", "ExportResult", "export_model", "export_module", "resolve_targets"]

DEFAULT_N_VERIFY = 32


def export_module(
    model: nn.Module,
    example_input: torch.Tensor,
    *,
    targets: str | Iterable[str] = ("onnx",),
    out_dir: str | os.PathLike = "exports",
    name: str | None = None,
    class_names: Sequence[str] | None = None,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    lowering: str = DEFAULT_LOWERING,
    opset: int = 17,
    nhwc: bool = True,
    strict: bool = False,
    atol: float = 1e-4,
    data: str | None = None,
    n_verify: int = DEFAULT_N_VERIFY,
    force: bool = False,
    progress: bool = True,
    trained: bool = False,
    checkpoint: str | os.PathLike | None = None,
    checkpoint_sha256: str | None = None,
    test_top1: float | None = None,
    source_data: str | None = None,
    precisions: str | Sequence[str] = ("fp32",),
    calib: int = DEFAULT_CALIB,
    max_drop: float = DEFAULT_MAX_DROP,
    gate_images: int = DEFAULT_GATE_IMAGES,
    int8_scheme: str | None = None,
    keep_float: str | Sequence[str] = (),
    gate_alpha: float = DEFAULT_ALPHA,
    int8_group_merge: int | str | None = None,
    int8_weights: str | None = None,
    int8_strip_names: bool = False,
    for_device: str | None = None,
    int8_lowering: str | None = None,
) -> list[ExportResult]:
    """Export a zoo module to each target at each precision, verified in the target's own runtime.

    ``example_input`` is a ``(1, 3, S, S)`` float32 tensor: the export traces it and the input
    size ``S`` comes from it. Every artifact is run on ``n_verify`` real test images (``data``,
    else ``source_data`` - the data the weights were trained on - else the default data) and
    compared with ``model``; all targets are staged in a scratch directory and moved into
    ``out_dir`` only when every fp32 file passes, so an fp32 failure leaves nothing new behind and
    loses nothing already there. An int8 or fp16 file that fails (its gate, after the bounded
    keep-float retry of :mod:`~ssc_deploy.export.quantize.keep_float`, or its export) costs only itself: the files that passed
    are written and :class:`ExportIncomplete` (exit code 3, ``.results`` the written files) names it.

    Manifest facts: ``name`` (file names; default ``model.model_name``), ``class_names``
    (default ``"0"``, ``"1"``, ...), ``mean``/``std`` of the input normalisation (default the
    default data's), ``trained`` (say True for trained weights: the bench then measures
    accuracy) and the ``checkpoint`` the weights came from (``checkpoint_sha256``, ``test_top1``).
    ``lowering``: how shifts and shuffles become plain ops (``"auto"``: the fastest per target,
    measured); ``opset`` (ONNX), ``nhwc`` (TFLite input layout: channel-last by default, as MediaPipe's ImageClassifier needs), ``strict`` (ExecuTorch: fail on
    undelegated ops), ``atol`` (largest allowed logit difference), ``force`` (overwrite files).

    ``precisions``: ``"fp32"`` (``NAME.SUFFIX``), ``"int8"`` and ``"fp16"`` (``NAME.int8.SUFFIX``,
    ``NAME.fp16.SUFFIX``; fp16 on tflite only), a comma list or a sequence. int8 files are
    calibrated on ``calib`` training images and, like fp16 files, gated on accuracy instead of
    ``atol``: top-1 on at most ``gate_images`` test images through the runtime may drop at most
    ``max_drop`` points below the fp32 PyTorch model's and that drop be significant (exact McNemar
    p of the flipped images below ``gate_alpha``; 1: the drop alone decides); skipped for an
    untrained net. ``keep_float="none"`` turns off the retry that keeps the worst layers in float.
    ``int8_scheme`` (onnx: ``u8s8``, ``u8s8-rr``, ``s8s8``; default by host) and ``keep_float``
    (layer names left in float) shape the int8 files, as does ``int8_group_merge`` (``K`` or
    ``"PREFIX=K,..."``: every k neighbouring groups of a grouped 1x1 conv as one block-diagonal group,
    exact; :mod:`~ssc_deploy.export.lowerings.group_merge`) and ``int8_weights`` (``per-channel``,
    the default; ``per-tensor-grouped``: one weight scale per grouped conv, the smaller file;
    ``per-tensor``); ``int8_strip_names`` empties the int8 .tflite's tensor names (all but input
    and output: about a tenth of an int8 SSC-Net file). ``for_device`` (``"arm64-emulated[:PROFILE]"``;
    None: the host) makes ``fast``/``fast-table`` choose for that ARM CPU profile
    (:func:`~ssc_deploy.export.lowerings.selection.choice.arm_choice`); ``int8_lowering`` names the int8 files' lowering.
    Raises :class:`SscDeployError` (one line) on bad input and failed verification.
    """
    options = _checked_options(targets, lowering=lowering, opset=opset, nhwc=nhwc, strict=strict, atol=atol,
                               n_verify=n_verify, precisions=precisions, calib=calib, max_drop=max_drop,
                               gate_images=gate_images, int8_scheme=int8_scheme, keep_float=keep_float,
                               gate_alpha=gate_alpha, int8_group_merge=int8_group_merge,
                               int8_weights=int8_weights, int8_strip_names=int8_strip_names,
                               for_device=for_device, int8_lowering=int8_lowering)
    subject = describe_module(model, example_input, name=name, class_names=class_names, mean=mean, std=std,
                              trained=trained, source_data=source_data,
                              source=SourceInfo(checkpoint=None if checkpoint is None else str(checkpoint),
                                                checkpoint_sha256=checkpoint_sha256, test_top1=test_top1))
    images, data_spec = verification_images(subject.mean, subject.std, subject.in_size, options.n_verify, data,
                                            source_data)
    from ssc_deploy.output_paths import input_files

    plan = plan_outputs(out_dir, subject.name, options.artifacts, force,
                        inputs=[] if checkpoint is None else input_files(checkpoint))  # with a .pt2's sidecar
    with staging(plan, subject.name) as scratch:
        with _working(progress, subject.name, options) as bar:
            float_targets = [t for t in options.targets if set(options.precisions) - {"int8"}]
            lowered = (rewrite_for_targets(model, images, data_spec, float_targets, options.lowering, options.atol,
                                           options.arm_profile)
                       if float_targets else None)  # int8 files have their own lowering (quantized.py)
            quantized = prepare(model, subject, images, data_spec, options) if options.quantized else None
            staged, failed = [], []
            for key in bar.each(options.artifacts, "export + verify"):
                try:
                    staged.append(export_gated(key, subject, lowered, options, scratch / plan.finals[key].name,
                                               quantized))
                except SscDeployError as err:
                    if key.precision == "fp32":
                        raise  # an fp32 file that fails costs the whole export: nothing is written
                    failed.append(str(err))
        results = commit(staged, plan)
        if failed:
            raise ExportIncomplete(results, failed)
        return results


def export_model(
    source: str | os.PathLike | None = None,
    targets: str | Sequence[str] = ("onnx",),
    out_dir: str | os.PathLike = "exports",
    model_name: str | None = None,
    lowering: str = DEFAULT_LOWERING,
    opset: int = 17,
    nhwc: bool = True,
    strict: bool = False,
    atol: float = 1e-4,
    data: str | None = None,
    n_verify: int = DEFAULT_N_VERIFY,
    force: bool = False,
    progress: bool = True,
    num_classes: int = 10,
    in_size: int = 32,
    precisions: str | Sequence[str] = ("fp32",),
    calib: int = DEFAULT_CALIB,
    max_drop: float = DEFAULT_MAX_DROP,
    gate_images: int = DEFAULT_GATE_IMAGES,
    int8_scheme: str | None = None,
    keep_float: str | Sequence[str] = (),
    gate_alpha: float = DEFAULT_ALPHA,
    int8_group_merge: int | str | None = None,
    int8_weights: str | None = None,
    int8_strip_names: bool = False,
    for_device: str | None = None,
    int8_lowering: str | None = None,
) -> list[ExportResult]:
    """Export a checkpoint (or, with ``source=None``, an untrained ``model_name``) with :func:`export_module`.

    ``model_name`` with a checkpoint names the architecture of a bare state_dict; ``num_classes``
    and ``in_size`` shape the untrained net; the precision options are :func:`export_module`'s.
    Options are checked before anything is loaded.
    """
    quant = dict(precisions=precisions, calib=calib, max_drop=max_drop, gate_images=gate_images,
                 int8_scheme=int8_scheme, keep_float=keep_float, gate_alpha=gate_alpha, int8_group_merge=int8_group_merge,
                 int8_weights=int8_weights, int8_strip_names=int8_strip_names, for_device=for_device,
                 int8_lowering=int8_lowering)
    _checked_options(targets, lowering=lowering, opset=opset, nhwc=nhwc, strict=strict, atol=atol, n_verify=n_verify,
                     **quant)
    if source is not None:
        from ssc_deploy.checkpoint import load_checkpoint

        ckpt = load_checkpoint(source, model_name=model_name)
        top1 = (ckpt.metrics or {}).get("test_top1")
        model, size = ckpt.build_model(), ckpt.in_size
        facts = dict(class_names=ckpt.classes, mean=ckpt.mean, std=ckpt.std, trained=True, checkpoint=str(source),
                     checkpoint_sha256=ckpt.sha256, test_top1=None if top1 is None else float(top1),
                     source_data=(ckpt.provenance or {}).get("data"))
    elif model_name:
        from ssc_deploy.models import create_model

        model, size, facts = create_model(model_name, num_classes=num_classes, in_size=in_size).eval(), in_size, {}
    else:
        raise SscDeployError("nothing to export: give a checkpoint or --model NAME")
    return export_module(model, torch.zeros(1, 3, size, size), targets=targets, out_dir=out_dir, lowering=lowering,
                         opset=opset, nhwc=nhwc, strict=strict, atol=atol, data=data, n_verify=n_verify, force=force,
                         progress=progress, **quant, **facts)


def _checked_options(targets, **options) -> ExportOptions:
    """The options checked and every target's packages found (their import chatter silenced)."""
    checked = check_options(targets, **options)
    with quiet_native():
        check_installed(checked.targets, checked.precisions)
    return checked


@contextlib.contextmanager
def _working(progress: bool, name: str, options: ExportOptions) -> Iterator[ExportProgress]:
    """The progress bar, the converters silenced and autograd off, for the rewrite and the exports."""
    with export_progress(progress, name, len(options.artifacts)) as bar, quiet_native(), torch.no_grad():
        yield bar
