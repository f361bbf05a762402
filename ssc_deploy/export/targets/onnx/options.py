"""What only the ONNX target reads: the opset and the int8 scheme."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Sequence

from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.options import DEFAULT_OPSET, TargetOptions

MIN_OPSET, MAX_OPSET = 13, 21


@dataclass(frozen=True)
class OnnxOptions(TargetOptions):
    """``opset``: the ONNX opset of the files; ``int8_scheme`` (int8 only): ``u8s8``, ``u8s8-rr`` or
    ``s8s8`` (None: this host's default, :func:`~ssc_deploy.export.targets.onnx.quantized.default_scheme`)."""

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
            from ssc_deploy.export.targets.onnx.quantized import check_scheme

            scheme = check_scheme(scheme)
        return replace(self, opset=int(self.opset), int8_scheme=scheme, strict=bool(self.strict))

OPTIONS = OnnxOptions
