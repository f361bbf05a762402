"""What only the ExecuTorch target reads: ``strict`` (from :class:`TargetOptions`), nothing else yet."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Sequence

from ssc_deploy.export.options import TargetOptions


@dataclass(frozen=True)
class ExecutorchOptions(TargetOptions):
    """``strict``: fail when a compute op is not delegated to XNNPACK (default: a warning)."""

    target: ClassVar[str] = "executorch"

    def checked(self, precisions: Sequence[str]) -> ExecutorchOptions:
        """These options (``strict`` as a boolean)."""
        super().checked(precisions)
        return replace(self, strict=bool(self.strict))

OPTIONS = ExecutorchOptions
