"""What only the TFLite target reads: the input layout and the int8 files' tensor names."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import ClassVar, Sequence

from ssc_deploy.export.options import DEFAULT_NHWC, TargetOptions


@dataclass(frozen=True)
class TfliteOptions(TargetOptions):
    """``nhwc``: channel-last (N, H, W, C) input, the layout MediaPipe's ImageClassifier needs (the default;
    False gives NCHW input like the other targets); ``strip_names`` (int8 only): empty the
    tensor names except input and output (about a tenth of an int8 SSC-Net file; outputs checked unchanged)."""

    target: ClassVar[str] = "tflite"
    int8_flags: ClassVar[dict[str, str]] = {"strip_names": "--strip-names"}

    nhwc: bool = DEFAULT_NHWC
    strip_names: bool = False

    @classmethod
    def nchw(cls) -> TfliteOptions:
        """The defaults with NCHW input."""
        return cls(nhwc=False)

    def checked(self, precisions: Sequence[str]) -> TfliteOptions:
        """The flags as booleans (one-line error for ``strip_names`` without int8)."""
        super().checked(precisions)
        return replace(self, nhwc=bool(self.nhwc), strip_names=bool(self.strip_names), strict=bool(self.strict))

OPTIONS = TfliteOptions
