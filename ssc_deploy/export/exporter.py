"""``export_module``: an ``nn.Module`` -> verified artifacts + manifests; ``load_for_export`` loads a
checkpoint (or builds an untrained zoo net) into what it takes, ``export_model`` does both.

>>> from ssc_deploy import create_model, export_module
>>> net = create_model("ssc-net-1-9")
>>> results = export_module(net, torch.zeros(1, 3, 32, 32), targets="all", out_dir="exports")

The options are frozen objects (:mod:`ssc_deploy.export.options`: ``ModelFacts``, ``VerifyOptions``,
``QuantOptions`` and one per target). The steps, each in its own module: validate (options,
packages, output paths; ``validate.py``, the module itself in ``subject.py``), rewrite (lowering per
target, deployment net, its parity; ``lowered.py``; for int8/fp16 files also their nets, calibration
and gate images: ``quantize/prepare.py``), export one file (export, run, parity or accuracy gate,
manifest; ``stage.py``) and commit (move the staged files into place; ``commit.py``).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator, Sequence

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError
from ssc_deploy.quiet import quiet_native
from ssc_deploy.runtimes import DEFAULT_TARGET

from ssc_deploy.export.commit import ExportIncomplete, ExportResult, commit, staging
from ssc_deploy.export.lowered import rewrite_for_targets
from ssc_deploy.export.lowerings import DEFAULT_LOWERING
from ssc_deploy.export.options import DEFAULT_N_VERIFY, ModelFacts, QuantOptions, VerifyOptions
from ssc_deploy.export.progress import ExportProgress, export_progress
from ssc_deploy.export.quantize.keep_float import export_gated
from ssc_deploy.export.quantize.prepare import prepare
from ssc_deploy.export.subject import describe_module
from ssc_deploy.export.validate import (ExportOptions, TargetsArg, check_installed, check_options, plan_outputs,
                                        resolve_targets)
from ssc_deploy.export.verify import verification_images

__all__ = ["DEFAULT_N_VERIFY", "ExportResult", "check_export_options", "export_model", "export_module",
           "load_for_export", "resolve_targets"]


def export_module(
    model: nn.Module,
    example_input: torch.Tensor,
    facts: ModelFacts | None = None,
    *,
    targets: TargetsArg = (DEFAULT_TARGET,),
    precisions: str | Sequence[str] = ("fp32",),
    out_dir: str | os.PathLike = "exports",
    verify: VerifyOptions | None = None,
    quant: QuantOptions | None = None,
    lowering: str = DEFAULT_LOWERING,
    for_device: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[ExportResult]:
    """Export a module to each target at each precision, verified in the target's own runtime.

    ``example_input`` is a ``(1, 3, S, S)`` float32 tensor: the export traces it and the input
    size ``S`` comes from it. ``facts`` (:class:`~ssc_deploy.export.options.ModelFacts`: name,
    class names, normalisation, checkpoint) go in the manifests. Every artifact is run on
    ``verify.n_verify`` real test images and compared with ``model`` (:class:`VerifyOptions`); all
    targets are staged in a scratch directory and moved into ``out_dir`` only when every fp32 file
    passes, so an fp32 failure leaves nothing new behind and loses nothing already there. An int8
    or fp16 file that fails (its gate, after the bounded keep-float retry of
    :mod:`~ssc_deploy.export.quantize.keep_float`, or its export) costs only itself: the files that
    passed are written and :class:`ExportIncomplete` (exit code 3, ``.results`` the written files)
    names it.

    ``targets``: names (``"all"``, a comma list) and/or target option objects, which name their
    target and carry what only it reads (``OnnxOptions(opset=13)``, ``TfliteOptions(nhwc=True)``,
    ``ExecutorchOptions(strict=True)``; a name alone gets the defaults). ``precisions``: ``"fp32"``
    (``NAME.SUFFIX``), ``"int8"`` and ``"fp16"`` (``NAME.int8.SUFFIX``, ``NAME.fp16.SUFFIX``; fp16
    on tflite only), a comma list or a sequence; int8 and fp16 files are made and gated as ``quant``
    says (:class:`QuantOptions`; the gate is skipped for an untrained net). ``lowering``: how shifts
    and shuffles become plain ops (``"fast"``: the fastest per target, measured once per machine;
    ``"auto"``: measured on this net); ``for_device`` (``"arm64-emulated[:PROFILE]"``; None: the
    host) makes ``fast``/``fast-table`` choose for that ARM CPU profile
    (:func:`~ssc_deploy.export.lowerings.selection.choice.arm_choice`); ``force`` overwrites files.
    Raises :class:`SscDeployError` (one line) on bad input and failed verification.
    """
    facts = facts or ModelFacts()
    options = check_export_options(targets, precisions, lowering=lowering, verify=verify, quant=quant,
                               for_device=for_device)
    subject = describe_module(model, example_input, facts)
    images, data_spec = verification_images(subject.mean, subject.std, subject.in_size, options.verify.n_verify,
                                            options.verify.data, facts.source_data)
    from ssc_deploy.output_paths import input_files

    plan = plan_outputs(out_dir, subject.name, options.artifacts, force,
                        inputs=[] if facts.checkpoint is None else input_files(facts.checkpoint))  # with a .pt2's sidecar
    with staging(plan, subject.name) as scratch:
        with _working(progress, subject.name, options) as bar:
            float_targets = [t for t in options.targets if set(options.precisions) - {"int8"}]
            lowered = (rewrite_for_targets(model, images, data_spec, float_targets, options.lowering,
                                           options.verify.atol, options.arm_profile)
                       if float_targets else None)  # int8 files have their own lowering (quantize/prepare.py)
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


def load_for_export(source: str | os.PathLike | None = None, *, model_name: str | None = None,
                    num_classes: int = 10, in_size: int = 32) -> tuple[nn.Module, torch.Tensor, ModelFacts]:
    """``(net, example_input, facts)`` for :func:`export_module`: a checkpoint's net and what it records
    (classes, normalisation, sha256, test top-1, training data), or with ``source=None`` an untrained
    ``model_name`` of ``num_classes`` classes at ``in_size`` pixels (default facts).

    ``model_name`` with a checkpoint names the architecture of a bare state_dict. One-line error for
    a checkpoint that cannot be read or an unknown model.
    """
    if source is not None:
        from ssc_deploy.checkpoint import load_checkpoint

        ckpt = load_checkpoint(source, model_name=model_name)
        top1 = (ckpt.metrics or {}).get("test_top1")
        facts = ModelFacts(class_names=ckpt.classes, mean=ckpt.mean, std=ckpt.std, trained=True,
                           checkpoint=str(source), checkpoint_sha256=ckpt.sha256,
                           test_top1=None if top1 is None else float(top1),
                           source_data=(ckpt.provenance or {}).get("data"))
        return ckpt.build_model(), _example(ckpt.in_size), facts
    if model_name:
        from ssc_deploy.models import create_model

        return create_model(model_name, num_classes=num_classes, in_size=in_size).eval(), _example(in_size), ModelFacts()
    raise SscDeployError("nothing to export: give a checkpoint or --model NAME")


def export_model(
    source: str | os.PathLike | None = None,
    *,
    model_name: str | None = None,
    targets: TargetsArg = (DEFAULT_TARGET,),
    precisions: str | Sequence[str] = ("fp32",),
    out_dir: str | os.PathLike = "exports",
    verify: VerifyOptions | None = None,
    quant: QuantOptions | None = None,
    lowering: str = DEFAULT_LOWERING,
    for_device: str | None = None,
    force: bool = False,
    progress: bool = True,
) -> list[ExportResult]:
    """:func:`load_for_export` then :func:`export_module`, the options checked before anything is loaded
    (an untrained ``model_name`` at its default size; other sizes: :func:`load_for_export`)."""
    export = dict(targets=targets, precisions=precisions, lowering=lowering, verify=verify, quant=quant,
                  for_device=for_device)
    check_export_options(**export)
    return export_module(*load_for_export(source, model_name=model_name), out_dir=out_dir, force=force,
                         progress=progress, **export)


def _example(in_size: int) -> torch.Tensor:
    return torch.zeros(1, 3, in_size, in_size)


def check_export_options(targets: TargetsArg = (DEFAULT_TARGET,), precisions: str | Iterable[str] = ("fp32",),
                         **options) -> ExportOptions:
    """:func:`~ssc_deploy.export.validate.check_options`, and every target's packages found (their import
    chatter silenced): what :func:`export_module` checks before any work, to call before loading a model."""
    checked = check_options(targets, precisions, **options)
    with quiet_native():
        check_installed(checked.targets, checked.precisions)
    return checked


@contextlib.contextmanager
def _working(progress: bool, name: str, options: ExportOptions) -> Iterator[ExportProgress]:
    """The progress bar, the converters silenced and autograd off, for the rewrite and the exports."""
    with export_progress(progress, name, len(options.artifacts)) as bar, quiet_native(), torch.no_grad():
        yield bar
