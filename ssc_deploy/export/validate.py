"""Export step 1, validate: the options, the targets' packages and the output paths, before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Iterable, NamedTuple, Sequence, Union


from ssc_deploy.atomic import check_writable_dir
from ssc_deploy.cpu_features import CpuFeatures, cpu_features
from ssc_deploy.errors import SscDeployError
from ssc_deploy.numeric import check_float, check_int
from ssc_deploy.runtimes import RUNTIME_TABLE, TARGET_NAMES, by_target

from ssc_deploy.export.lowerings.selection.choice import CHOSEN_HERE
from ssc_deploy.export.lowerings import DEFAULT_LOWERING, get_lowering
from ssc_deploy.export.lowerings.group_merge import parse_spec
from ssc_deploy.export.options import QuantOptions, TargetOptions, VerifyOptions
from ssc_deploy.export.quantize import PRECISIONS
from ssc_deploy.export.targets import TARGET_OPTIONS, TARGETS

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
    """How to export, every option object checked (by :func:`check_options`)."""

    targets: tuple[str, ...]
    precisions: tuple[str, ...]
    lowering: str
    verify: VerifyOptions
    quant: QuantOptions  # keep_float a tuple, int8_group_merge a GroupMergeSpec, int8_weights a mode
    per_target: dict[str, TargetOptions]  # every target's options (its defaults unless given)
    arm_profile: str | None = None  # --for arm64-emulated[:PROFILE]: the profile the files are for (None: the host)
    retry_keep_float: bool = True  # a failed int8 gate retries with its worst layers in float (no --keep-float given)

    def target(self, name: str) -> TargetOptions:
        """The options of target ``name``."""
        return self.per_target[name]

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


TargetsArg = Union[str, TargetOptions, Iterable[Union[str, TargetOptions]]]


def resolve_targets(targets: TargetsArg) -> list[str]:
    """Normalise ``"all"``, a comma list or an iterable of names (or target option objects, which name
    their target) into known target names (in order)."""
    items = [targets] if isinstance(targets, (str, TargetOptions)) else list(targets)
    names: list[str] = []
    for item in items:
        for name in ([item.target] if isinstance(item, TargetOptions) else str(item).split(",")):
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


def check_options(targets: TargetsArg, precisions: str | Iterable[str] = (FP32,), *,
                  lowering: str = DEFAULT_LOWERING, verify: VerifyOptions | None = None,
                  quant: QuantOptions | None = None, for_device: str | None = None) -> ExportOptions:
    """The option objects checked, the targets resolved (each with its options); one-line error for the
    first bad one."""
    verify, quant = _of_type("verify", verify, VerifyOptions), _of_type("quant", quant, QuantOptions)
    names = resolve_targets(targets)
    chosen = resolve_precisions(precisions)
    check_precisions(names, chosen)
    given = _given_target_options(targets)
    per_target = {t: (given.get(t) or TARGET_OPTIONS[t]()).checked(chosen) for t in names}
    checked_quant, retry = check_quant(quant, chosen)
    if lowering not in CHOSEN_HERE:  # fast, fast-table, auto: chosen per target (export/lowerings/selection/choice.py)
        get_lowering(lowering)
    arm_profile = check_for_device(for_device, lowering, names)
    if verify.n_verify is None:
        raise SscDeployError("n_verify takes a whole number, got None")
    verify = replace(verify, atol=check_float("atol", verify.atol, positive=True),
                     n_verify=check_int("n_verify", verify.n_verify, 1))
    return ExportOptions(tuple(names), tuple(chosen), lowering, verify, checked_quant, per_target, arm_profile, retry)


def check_quant(quant: QuantOptions, precisions: Sequence[str]) -> tuple[QuantOptions, bool]:
    """``quant`` checked against the precisions asked, and whether a failed int8 gate may retry with
    layers kept in float (no ``keep_float`` given)."""
    from ssc_deploy.export.quantize.calibration import check_calib
    from ssc_deploy.export.quantize.gate import check_gate_options
    from ssc_deploy.export.quantize.layers import check_weights_mode

    int8 = "int8" in precisions
    raw = quant.keep_float
    keep = tuple(dict.fromkeys(n.strip() for item in ([raw] if isinstance(raw, str) else raw or ())
                               for n in str(item).split(",") if n.strip()))
    retry = not keep
    if "none" in (k.lower() for k in keep):
        if len(keep) > 1:
            raise SscDeployError("--keep-float none: turns the gate's retry off; give it alone, or a list of layers")
        keep = ()
    if keep and not int8:
        raise SscDeployError("--keep-float applies to int8 exports only (add --precision int8)")
    merge = parse_spec(quant.int8_group_merge)
    if merge and not int8:
        raise SscDeployError("--group-merge applies to int8 exports only (add --precision int8)")
    if quant.int8_weights is not None and not int8:
        raise SscDeployError("--int8-weights applies to int8 exports only (add --precision int8)")
    weights = check_weights_mode(quant.int8_weights)
    if any(p != FP32 for p in precisions):
        check_calib(quant.calib)
        check_gate_options(quant.max_drop, quant.gate_images, quant.gate_alpha)
    if quant.int8_lowering is not None:
        get_lowering(quant.int8_lowering)
    return replace(quant, calib=int(quant.calib), max_drop=float(quant.max_drop), gate_images=int(quant.gate_images),
                   gate_alpha=float(quant.gate_alpha), keep_float=keep, int8_group_merge=merge,
                   int8_weights=weights), retry


def _of_type(name: str, value, cls: type):
    """``value`` (None: ``cls()``, the defaults); one-line error unless it is a ``cls``."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise SscDeployError(f"{name} must be a {cls.__name__}, got {type(value).__name__}")
    return value


def _given_target_options(targets: TargetsArg) -> dict[str, TargetOptions]:
    """The target option objects among ``targets``, by target (one-line error for a target given twice)."""
    items = [targets] if isinstance(targets, (str, TargetOptions)) else list(targets)
    given: dict[str, TargetOptions] = {}
    for item in items:
        if isinstance(item, TargetOptions):
            if item.target in given:
                raise SscDeployError(f"{item.target}: options given twice")
            given[item.target] = item
    return given


def select_target_options(names: TargetsArg, options: Iterable[TargetOptions],
                          precisions: str | Iterable[str]) -> list[TargetOptions]:
    """The CLI's way in: the option objects built from every flag, narrowed to the targets ``names``
    asks for. Each is checked even when its target is not asked for (a bad ``--opset`` is refused
    either way); an int8-only flag of a target not asked for is the one-line error."""
    chosen = resolve_targets(names)
    precision_names = resolve_precisions(precisions)
    out = []
    for opt in options:
        opt.checked(precision_names)
        if opt.target in chosen:
            out.append(opt)
            continue
        for name in opt.changed():
            if name in opt.int8_flags:
                raise SscDeployError(opt.int8_only_message(name))
    return sorted(out, key=lambda o: chosen.index(o.target))


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
        if "int8" in precisions or ("fp16" in precisions and "fp16" in by_target(name).precisions):
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
