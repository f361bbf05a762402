"""What only the ONNX target reads: the opset and the int8 scheme."""

from __future__ import annotations

import platform
from dataclasses import dataclass, replace
from typing import ClassVar, Sequence

from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.options import DEFAULT_OPSET, TargetOptions

MIN_OPSET, MAX_OPSET = 13, 21
SCHEMES = ("u8s8", "u8s8-rr", "s8s8")  # activations x weights (targets/onnx/quantized.py)
ARM_MACHINES = ("arm64", "aarch64", "armv8l", "armv7l")


# x86 flags of an int8 dot product that does not saturate (VNNI, AMX); without them onnxruntime's
# u8s8 kernels sum pairs of u8 x s8 products in int16 (vpmaddubsw) and saturate.
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


def default_scheme(machine: str | None = None, flags: Sequence[str] | None = None) -> str:
    """``s8s8`` on ARM hosts, ``u8s8`` on x86 hosts with VNNI or AMX, ``u8s8-rr`` on x86 hosts without
    them (``machine`` and ``flags`` default to this host's). Measured on an AVX2-only AMD EPYC
    (2026-12-02, trained SSC-Net-1-9, 360 digits test images): u8s8 84.2 % against fp32 98.6 %
    (per-tensor grouped weights 93.3 %), u8s8-rr 97.8 %."""
    machine = (machine or platform.machine()).lower()
    if machine in ARM_MACHINES:
        return "s8s8"
    if flags is None:
        from ssc_deploy.cpu_features import cpu_features

        flags = cpu_features().vector_flags
    return "u8s8" if any(f in VNNI_FLAGS for f in flags) else "u8s8-rr"


def check_scheme(scheme: str | None) -> str:
    """``scheme`` checked (None: this host's default); one-line error for an unknown one."""
    if scheme is None:
        return default_scheme()
    name = str(scheme).strip().lower().replace("_", "-")
    if name not in SCHEMES:
        raise SscDeployError(f"--int8-scheme: unknown scheme '{scheme}' (use one of: {', '.join(SCHEMES)})")
    return name


@dataclass(frozen=True)
class OnnxOptions(TargetOptions):
    """``opset``: the ONNX opset of the files; ``int8_scheme`` (int8 only): ``u8s8``, ``u8s8-rr`` or
    ``s8s8`` (None: this host's default, :func:`default_scheme`)."""

    target: ClassVar[str] = "onnx"
    int8_flags: ClassVar[dict[str, str]] = {"int8_scheme": "--int8-scheme"}

    opset: int = DEFAULT_OPSET
    int8_scheme: str | None = None

    def checked(self, precisions: Sequence[str]) -> OnnxOptions:
        """The opset in range and the scheme known (one-line error otherwise)."""
        super().checked(precisions)
        if not MIN_OPSET <= int(self.opset) <= MAX_OPSET:
            raise SscDeployError(f"opset {self.opset} is not supported (use {MIN_OPSET}..{MAX_OPSET})")
        scheme = self.int8_scheme
        if scheme is not None:
            scheme = check_scheme(scheme)
        return replace(self, opset=int(self.opset), int8_scheme=scheme, strict=bool(self.strict))

OPTIONS = OnnxOptions
