"""Export step 1, validate: the options, the targets' packages and the output paths, before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence


from ssc_deploy.atomic import check_writable_dir
from ssc_deploy.cpu_features import CpuFeatures, cpu_features
from ssc_deploy.errors import SscDeployError
from ssc_deploy.numeric import check_float, check_int
from ssc_deploy.runtimes import RUNTIME_TABLE, TARGET_NAMES, by_target

from ssc_deploy.export.lowerings.selection.choice import CHOSEN_HERE
from ssc_deploy.export.lowerings import get_lowering
from ssc_deploy.export.lowerings.group_merge import NO_MERGE, GroupMergeSpec, parse_spec
from ssc_deploy.export.quantize import PRECISIONS
from ssc_deploy.export.targets import TARGETS

MIN_OPSET, MAX_OPSET = 13, 21
FP32 = "fp32"
# Why a target has no file of a precision, and the packages each target's int8 quantizer needs
# beyond its fp32 export: (module, distribution); both are columns of the runtime table.
NOT_EXPORTED = {(spec.target, precision): why for spec in RUNTIME_TABLE for precision, why in spec.not_exported}
QUANTIZER_PACKAGES = {spec.target: spec.quantizer for spec in RUNTIME_TABLE}


class ArtifactKey(NamedTuple):
    """One file an export writes: a target at a precision (shown as ``onnx`` or ``onnx int8``)."""

    target: str
    precision: str = FP32

    def __str__(self) -> str:
        return self.target if self.precision == FP32 else f"{self.target} {self.precision}"


@dataclass(frozen=True)
class ExportOptions:
    """How to export: checked by :func:`check_options`."""

    targets: tuple[str, ...]
    lowering: str
    opset: int
    nhwc: bool
    strict: bool
    atol: float
    n_verify: int
    precisions: tuple[str, ...] = (FP32,)
    calib: int = 256
    max_drop: float = 1.0
    gate_images: int = 10_000
    int8_scheme: str | None = None  # onnx int8; None: this host's default
    keep_float: tuple[str, ...] = ()
    gate_alpha: float = 0.05  # the gate fails a drop beyond max_drop only when McNemar p < this
    retry_keep_float: bool = True  # a failed int8 gate retries with its worst layers in float (no --keep-float given)
    int8_group_merge: GroupMergeSpec = NO_MERGE  # int8: grouped 1x1 convs merged (lowerings/group_merge.py)
    int8_weights: str = "per-channel"  # int8 weight granularity (quantize/layers.py WEIGHT_MODES)
    int8_strip_names: bool = False  # tflite int8: tensor names emptied (targets/tflite/graph.py)
    arm_profile: str | None = None  # --for arm64-emulated[:PROFILE]: the profile the files are for (None: the host)
    int8_lowering: str | None = None  # int8 files' lowering (None: chosen, export/lowerings/selection/choice.py int8_choice)

    @property
    def artifacts(self) -> list[ArtifactKey]:
        """Every file to write, target by target, each target's precisions in the order given."""
        return [ArtifactKey(t, p) for t in self.targets for p in self.precisions]

    @property
    def quantized(self) -> bool:
        """Whether any file is not fp32 (then calibration and the accuracy gate are needed)."""
        return any(p != FP32 for p in self.precisions)


@dataclass(frozen=True)
class OutputPlan:
    """Where each artifact goes (its manifest beside it)."""

    out_dir: Path
    finals: dict[ArtifactKey, Path]  # artifact -> its path
    created: bool  # out_dir did not exist before this export


def resolve_targets(targets: str | Iterable[str]) -> list[str]:
    """Normalise ``"all"``, a comma list or an iterable of names into known target names (in order)."""
    items = [targets] if isinstance(targets, str) else list(targets)
    names: list[str] = []
    for item in items:
        for name in str(item).split(","):
            name = name.strip().lower()
            if not name:
                continue
            if name == "all":
                names.extend(TARGET_NAMES)
            elif name in TARGET_NAMES:
                names.append(name)
            else:
                raise SscDeployError(f"unknown target '{name}' (use one of: {', '.join(TARGET_NAMES)}, all)")
    if not names:
        raise SscDeployError(f"no target given (use one of: {', '.join(TARGET_NAMES)}, all)")
    return list(dict.fromkeys(names))


def resolve_precisions(precisions: str | Iterable[str]) -> list[str]:
    """Normalise a comma list or an iterable of precision names (``fp32``, ``int8``, ``fp16``), in order."""
    items = [precisions] if isinstance(precisions, str) else list(precisions)
    names = [n.strip().lower() for item in items for n in str(item).split(",") if n.strip()]
    for name in names:
        if name not in PRECISIONS:
            raise SscDeployError(f"--precision: unknown precision '{name}' (use one of: {', '.join(PRECISIONS)})")
    if not names:
        raise SscDeployError(f"no precision given (use one of: {', '.join(PRECISIONS)})")
    return list(dict.fromkeys(names))


def not_exported_reason(target: str, precision: str, cpu: CpuFeatures | None = None) -> str:
    """Why ``target`` has no ``precision`` file, with what this CPU (``cpu``, default this host's) has:
    the measurement behind a reason was made on one CPU, and the line must stay true on another."""
    why = NOT_EXPORTED.get((target, precision), "not supported")
    if precision != "fp16" or (target, precision) not in NOT_EXPORTED:
        return why
    cpu = cpu or cpu_features()
    flags = set(cpu.vector_flags)
    native = sorted(flags & {"avx512_fp16", "fphp", "asimdhp"})
    here = (f"this CPU ({cpu.model or 'unknown'}) has {', '.join(native)}, not measured here" if native
            else f"this CPU ({cpu.model or 'unknown'}) has no fp16 arithmetic either")
    return f"{why}; {here}"


def check_precisions(targets: Sequence[str], precisions: Sequence[str]) -> None:
    """One-line error for the first target asked for a precision it has no file of (before any work)."""
    for t in targets:
        for p in precisions:
            if p not in by_target(t).precisions:
                where = ", ".join(s for s in TARGET_NAMES if p in by_target(s).precisions)
                why = not_exported_reason(t, p)
                raise SscDeployError(f"{t} has no {p} export: {why} ({p} is exported for: {where})")


def check_options(targets: str | Iterable[str], *, lowering: str, opset: int, nhwc: bool, strict: bool,
                  atol: float, n_verify: int, precisions: str | Iterable[str] = (FP32,), calib: int = 256,
                  max_drop: float = 1.0, gate_images: int = 10_000, int8_scheme: str | None = None,
                  keep_float: Iterable[str] = (), gate_alpha: float = 0.05, int8_group_merge=None, int8_weights: str | None = None,
                  int8_strip_names: bool = False, for_device: str | None = None,
                  int8_lowering: str | None = None) -> ExportOptions:
    """The options with the targets resolved; one-line error for the first bad one."""
    from ssc_deploy.export.quantize.calibration import check_calib
    from ssc_deploy.export.quantize.gate import check_gate_options
    from ssc_deploy.export.quantize.layers import check_weights_mode
    from ssc_deploy.export.targets.onnx.quantized import check_scheme

    names = resolve_targets(targets)
    chosen = resolve_precisions(precisions)
    check_precisions(names, chosen)
    keep = tuple(dict.fromkeys(n.strip() for item in ([keep_float] if isinstance(keep_float, str) else keep_float)
                               for n in str(item).split(",") if n.strip()))
    retry = not keep
    if "none" in (k.lower() for k in keep):
        if len(keep) > 1:
            raise SscDeployError("--keep-float none: turns the gate's retry off; give it alone, or a list of layers")
        keep = ()
    if keep and "int8" not in chosen:
        raise SscDeployError("--keep-float applies to int8 exports only (add --precision int8)")
    if int8_scheme is not None and ("int8" not in chosen or "onnx" not in names):
        raise SscDeployError("--int8-scheme applies to onnx int8 exports only (--target onnx --precision int8)")
    if int8_scheme is not None:
        int8_scheme = check_scheme(int8_scheme)
    merge = parse_spec(int8_group_merge)
    if merge and "int8" not in chosen:
        raise SscDeployError("--group-merge applies to int8 exports only (add --precision int8)")
    if int8_weights is not None and "int8" not in chosen:
        raise SscDeployError("--int8-weights applies to int8 exports only (add --precision int8)")
    weights = check_weights_mode(int8_weights)
    if int8_strip_names and ("int8" not in chosen or "tflite" not in names):
        raise SscDeployError("--strip-names applies to tflite int8 exports only (--target tflite --precision int8)")
    if any(p != FP32 for p in chosen):
        check_calib(calib)
        check_gate_options(max_drop, gate_images, gate_alpha)
    if lowering not in CHOSEN_HERE:  # fast, fast-table, auto: chosen per target (export/lowerings/selection/choice.py)
        get_lowering(lowering)
    if int8_lowering is not None:
        get_lowering(int8_lowering)
    arm_profile = check_for_device(for_device, lowering, names)
    if not MIN_OPSET <= int(opset) <= MAX_OPSET:
        raise SscDeployError(f"opset {opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
    check_float("atol", atol, positive=True)
    check_int("n_verify", n_verify, 1)
    return ExportOptions(tuple(names), lowering, int(opset), bool(nhwc), bool(strict), float(atol), int(n_verify),
                         tuple(chosen), int(calib), float(max_drop), int(gate_images), int8_scheme, keep,
                         float(gate_alpha), retry, merge, weights,
                         bool(int8_strip_names), arm_profile, int8_lowering)


def check_for_device(for_device: str | None, lowering: str, targets: Sequence[str]) -> str | None:
    """The ARM profile ``--for`` names (None: the host); one-line errors for an unknown device or
    profile, and for an emulated device that is not set up when its instructions would be counted."""
    from ssc_deploy.devices.arm_profiles import DEVICE, profile_from_spec

    from ssc_deploy.export.lowerings.selection.arm import COUNTED_TARGETS, check_can_count
    from ssc_deploy.export.lowerings.selection.choice import FAST, measuring_enabled

    if for_device is None or for_device.strip() in ("", "host"):
        return None
    profile = profile_from_spec(for_device)
    if profile is None:
        raise SscDeployError(f"--for: unknown device '{for_device}' (use host or {DEVICE}[:PROFILE])")
    if lowering == FAST and measuring_enabled() and set(targets) & set(COUNTED_TARGETS):
        check_can_count()
    return profile.name


def check_installed(targets: Iterable[str], precisions: Iterable[str] = (FP32,)) -> None:
    """Raise the one-line 'install the extra' error for the first target whose packages are missing."""
    from ssc_deploy.export.targets.common import require

    for name in targets:
        TARGETS[name].check_installed()
        if "int8" in precisions or (name == "tflite" and "fp16" in precisions):
            module, dist = QUANTIZER_PACKAGES[name]
            require(module, dist, by_target(name).extra)


def artifact_name(name: str, key: ArtifactKey) -> str:
    """``NAME.SUFFIX`` for fp32 (as before precisions existed), ``NAME.PRECISION.SUFFIX`` otherwise."""
    suffix = by_target(key.target).suffix
    return f"{name}{suffix}" if key.precision == FP32 else f"{name}.{key.precision}{suffix}"


def plan_outputs(out_dir: str | os.PathLike, name: str, artifacts: Iterable[ArtifactKey | str],
                 force: bool, inputs: Iterable[str | os.PathLike] = ()) -> OutputPlan:
    """Create ``out_dir`` if needed and check that every artifact and manifest may be written.

    ``artifacts``: what to write (a bare target name means its fp32 file). Existing files are
    refused unless ``force``; a directory in a file's place always is; a file that is one of
    ``inputs`` (the checkpoint or program exported, its sidecar) is named as such.
    """
    from ssc_deploy.export.sidecars import sidecars
    from ssc_deploy.output_paths import check_outputs

    out_dir = Path(out_dir)
    keys = [a if isinstance(a, ArtifactKey) else ArtifactKey(a) for a in artifacts]
    finals = {k: out_dir / artifact_name(name, k) for k in keys}
    check_outputs([("--out", p) for f in finals.values() for p in (f, *sidecars(f))],
                  inputs=[(p, "an input, the one being exported") for p in inputs], force=force)
    created = not out_dir.exists()
    check_writable_dir(out_dir)
    existing = [p for f in finals.values() for p in (f, *sidecars(f)) if p.exists() or p.is_symlink()]
    for p in existing:
        if p.is_dir():  # --force replaces files only: os.replace cannot put a file over a directory
            raise SscDeployError(f"{p}: exists and is a directory; nothing was exported")
    if existing and not force:
        raise SscDeployError(f"{existing[0]}: already exists (use --force to overwrite)")
    return OutputPlan(out_dir, finals, created)
