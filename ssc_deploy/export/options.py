"""The option objects of :func:`~ssc_deploy.export.exporter.export_module`, each default defined once.

Grouped the way ExecuTorch's ``to_edge_transform_and_lower(ep, partitioner=[...])`` and Optimum's
``quantization_config=...`` group theirs: facts about the model (:class:`ModelFacts`), how every
file is verified (:class:`VerifyOptions`), how int8 and fp16 files are made and gated
(:class:`QuantOptions`), and one object per target for what only that target reads
(:class:`TargetOptions`; the subclasses live in ``targets/<runtime>/options.py``)::

    from ssc_deploy.export import OnnxOptions, QuantOptions, TfliteOptions, VerifyOptions, export_module
    export_module(net, example, targets=[OnnxOptions(opset=13), TfliteOptions(nhwc=False)], precisions="fp32,int8",
                  verify=VerifyOptions(n_verify=8), quant=QuantOptions(calib=64))

All are frozen; :func:`~ssc_deploy.export.validate.check_options` checks them before any work.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, ClassVar, Sequence

if TYPE_CHECKING:
    from ssc_deploy.export.lowerings.group_merge import GroupMergeSpec

# Every export default, defined here only (this module imports neither torch nor numpy, so the CLI
# and the bench read them without loading either).
DEFAULT_N_VERIFY = 32  # test images every file is run on and compared with PyTorch
DEFAULT_ATOL = 1e-4  # largest allowed logit difference of an fp32 file
DEFAULT_OPSET = 17  # ONNX opset (OnnxOptions)
DEFAULT_NHWC = True  # TFLite input channel-last, the layout MediaPipe's ImageClassifier needs (TfliteOptions)
DEFAULT_CALIB = 256  # int8 calibration images (training split, fixed seed)
DEFAULT_MAX_DROP = 1.0  # top-1 points an int8/fp16 file may lose against fp32 PyTorch
DEFAULT_GATE_IMAGES = 10_000  # the whole test split of digits and CIFAR
DEFAULT_ALPHA = 0.05  # the gate fails a drop beyond max_drop only when McNemar p < this (accuracy_stats.ALPHA)


@dataclass(frozen=True)
class ModelFacts:
    """What the manifests say about the model (every field optional; :func:`load_for_export` fills them
    from a checkpoint).

    ``name`` names the files (default: the zoo name the module carries); ``class_names`` default to
    ``"0"``, ``"1"``, ...; ``mean``/``std`` of the input normalisation to the default data's;
    ``trained`` (True: the bench measures accuracy and int8/fp16 files are gated); the checkpoint the
    weights came from (``checkpoint``, ``checkpoint_sha256``, ``test_top1``) and the data they were
    trained on (``source_data``: the default verification, calibration and gate data).
    """

    name: str | None = None
    class_names: Sequence[str] | None = None
    mean: Sequence[float] | None = None
    std: Sequence[float] | None = None
    trained: bool = False
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    test_top1: float | None = None
    source_data: str | None = None


@dataclass(frozen=True)
class VerifyOptions:
    """How every file is checked in its own runtime: on ``n_verify`` test images of ``data`` (else the
    model's ``source_data``, else the default data; calibration and the gate use the same data), an
    fp32 file within ``atol`` of PyTorch's logits."""

    data: str | None = None
    n_verify: int = DEFAULT_N_VERIFY
    atol: float = DEFAULT_ATOL


@dataclass(frozen=True)
class QuantOptions:
    """How int8 and fp16 files are made and gated (ignored for fp32-only exports; the int8-only
    fields are refused without int8).

    int8 files are calibrated on ``calib`` training images; int8 and fp16 files pass when their
    top-1 on at most ``gate_images`` test images drops at most ``max_drop`` points below the fp32
    PyTorch model's, or the drop is not significant (exact McNemar p of the flipped images not below
    ``gate_alpha``; 1: the drop alone decides). ``keep_float``: layer names left in float (a comma
    string or a sequence; ``"none"`` turns off the retry that keeps the worst layers in float when
    the gate fails). ``int8_weights``: ``per-channel`` (default), ``per-tensor-grouped`` or
    ``per-tensor``; ``int8_group_merge``: ``K`` or ``"PREFIX=K,..."`` (every k neighbouring groups
    of a grouped 1x1 conv as one, exact); ``int8_lowering``: the int8 files' lowering (None: the
    runtime table's).
    """

    calib: int = DEFAULT_CALIB
    max_drop: float = DEFAULT_MAX_DROP
    gate_images: int = DEFAULT_GATE_IMAGES
    gate_alpha: float = DEFAULT_ALPHA
    keep_float: str | Sequence[str] = ()
    int8_weights: str | None = None
    int8_group_merge: int | str | GroupMergeSpec | None = None  # as given; a GroupMergeSpec once checked
    int8_lowering: str | None = None


@dataclass(frozen=True)
class TargetOptions:
    """What one target alone reads; a target named by a string gets its subclass's defaults.

    ``strict``: an op the file leaves outside the runtime's fast path (an ExecuTorch op not
    delegated to XNNPACK; for int8 files also a broken int8 chain or a TFLite op outside XNNPACK)
    is an error instead of a warning.
    """

    target: ClassVar[str] = ""
    # field -> its CLI flag, for fields that apply to this target's int8 files only
    int8_flags: ClassVar[dict[str, str]] = {}

    strict: bool = False

    @classmethod
    def nchw(cls) -> TargetOptions:
        """The defaults, with NCHW input where the target has a layout choice: what measurement code
        feeds every runtime (:func:`~ssc_deploy.export.lowerings.selection.autotune.export_to`)."""
        return cls()

    def changed(self) -> list[str]:
        """The fields set to something other than their default (``strict`` aside: the CLI sets it for all)."""
        default = type(self)()
        return [f.name for f in fields(self) if f.name != "strict" and getattr(self, f.name) != getattr(default, f.name)]

    def checked(self, precisions: Sequence[str]) -> TargetOptions:
        """These options with their values checked (one-line error for a bad one or an int8-only one
        without int8); subclasses add their own checks."""
        from ssc_deploy.errors import SscDeployError

        for name in self.changed():
            if name in self.int8_flags and "int8" not in precisions:
                raise SscDeployError(self.int8_only_message(name))
        return self

    def int8_only_message(self, name: str) -> str:
        """The one-line error for an int8-only field of this target given without it or without int8."""
        t = self.target
        return f"{self.int8_flags[name]} applies to {t} int8 exports only (--target {t} --precision int8)"
