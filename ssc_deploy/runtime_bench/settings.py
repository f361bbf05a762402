"""What shapes a benchmark run (:class:`BenchSettings`, stored with it) and its checks before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssc_deploy.errors import SscDeployError

from .runtime_choice import check_runtime_names

DEFAULT_BASELINES = ("mobilenetv2", "igcv3-d-0.7x")
# Verification: an artifact whose logits differ more than this from PyTorch fails the row.
DEFAULT_ATOL = 1e-3


@dataclass
class BenchSettings:
    """Everything that shapes a benchmark run (stored with it)."""

    runtimes: list[str] | None = None  # None: what the artifacts need, else every installed one
    threads: list[int] = field(default_factory=lambda: [1])
    warmup: int = 10
    runs: int = 50
    data: str | None = None
    n_eval: int = 200
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    ratio_to: str | None = None  # the baseline ratio columns compare with (first baseline by default)
    atol: float = DEFAULT_ATOL
    timeout: float = 900.0
    runners: dict[str, str] = field(default_factory=dict)  # native tools: runtime -> path
    pin_cores: str | None = None
    lowering: str = "pad-slice"

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored in the result's ``settings``."""
        return dict(self.__dict__)

    def baseline_names(self) -> list[str]:
        """The baselines asked for, normalised (blank names dropped)."""
        return [b.strip().lower() for b in self.baselines if b.strip()]


def check_settings(settings: BenchSettings) -> None:
    """One-line :class:`SscDeployError` for settings no measurement could use."""
    if settings.warmup < 0 or settings.runs < 1:
        raise SscDeployError("--runs must be at least 1 and --warmup at least 0")
    if not settings.threads or any(t < 1 for t in settings.threads):
        raise SscDeployError("--threads takes positive thread counts, e.g. 1,2")
    if settings.lowering != "auto":
        try:  # needs torch; a board without it exports nothing, so there is nothing to check
            from ssc_deploy.export.lowerings import get_lowering
        except ImportError:
            pass
        else:
            get_lowering(settings.lowering)  # one line up front, not a failed row per checkpoint
    check_runtime_names(settings.runners, "--runner: ")
