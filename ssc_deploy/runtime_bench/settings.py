"""What shapes a benchmark run (:class:`BenchSettings`, stored with it) and its checks before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from ssc_deploy.errors import SscDeployError
from ssc_deploy.numeric import check_cpu_list, check_float, check_int, check_threads

from .precision import check_precisions
from .runtime_choice import check_runtime_names

DEFAULT_BASELINES = ("mobilenetv2", "igcv3-d-0.7x")
# Verification: an artifact whose logits differ more than this from PyTorch fails the row.
DEFAULT_ATOL = 1e-3
# warm-up, timed runs and evaluation images when not given: on real devices, and on emulated ones,
# whose latencies are not ARM figures (qemu runs 50-400x slower): there a run is a correctness check,
# parity with PyTorch on a few test images, and under 5 minutes with the default baselines.
DEFAULT_COUNTS = {"warmup": 10, "runs": 50, "n_eval": 200}
EMULATED_COUNTS = {"warmup": 1, "runs": 3, "n_eval": 32}


@dataclass
class BenchSettings:
    """Everything that shapes a benchmark run (stored with it)."""

    runtimes: list[str] | None = None  # None: what the artifacts need, else every installed one
    threads: list[int] = field(default_factory=lambda: [1])
    warmup: int | None = None  # None: DEFAULT_COUNTS, or EMULATED_COUNTS on an emulated device (for_device)
    runs: int | None = None
    data: str | None = None
    n_eval: int | None = None  # test images for accuracy and parity, 0: all
    baselines: list[str] = field(default_factory=lambda: list(DEFAULT_BASELINES))
    ratio_to: str | None = None  # the baseline ratio columns compare with (first baseline by default)
    atol: float = DEFAULT_ATOL
    timeout: float = 900.0
    runners: dict[str, str] = field(default_factory=dict)  # native tools: runtime -> path
    pin_cores: str | None = None
    lowering: str = "pad-slice"
    precisions: list[str] | None = None  # None: the artifacts' own (fp32 for exports), else e.g. ["fp32", "int8"]

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored in the result's ``settings``: counts left to the defaults are the real
        devices' ones, and ``emulated_counts`` says what emulated devices used instead."""
        out = dict(self.for_device(False).__dict__)
        emulated = self.for_device(True)
        out["emulated_counts"] = {k: getattr(emulated, k) for k in EMULATED_COUNTS}
        return out

    def for_device(self, emulated: bool) -> "BenchSettings":
        """These settings with every count left to the default filled in for a real or an emulated device."""
        counts = EMULATED_COUNTS if emulated else DEFAULT_COUNTS
        return replace(self, **{k: v for k, v in counts.items() if getattr(self, k) is None})

    def inputs_n_eval(self, emulated: list[bool]) -> int:
        """Images the inputs file needs for devices that are (or are not) emulated: the most any needs, 0: all."""
        counts = [self.for_device(e).n_eval for e in emulated] or [self.for_device(False).n_eval]
        return 0 if 0 in counts else max(counts)

    def baseline_names(self) -> list[str]:
        """The baselines asked for, normalised (blank names dropped)."""
        return [b.strip().lower() for b in self.baselines if b.strip()]


def check_settings(settings: BenchSettings) -> None:
    """One-line :class:`SscDeployError` for settings no measurement could use."""
    check_int("--runs", settings.runs, 1)
    check_int("--warmup", settings.warmup, 0)
    check_int("--n-eval", settings.n_eval, 0)
    if not settings.threads:
        raise SscDeployError("--threads takes positive thread counts, e.g. 1,2")
    check_threads("--threads", settings.threads)
    settings.atol = check_float("--atol", settings.atol, positive=True)
    settings.timeout = check_float("--timeout", settings.timeout, positive=True)
    settings.pin_cores = check_cpu_list("--pin-cores", settings.pin_cores)
    if settings.lowering != "auto":
        try:  # needs torch; a board without it exports nothing, so there is nothing to check
            from ssc_deploy.export.lowerings import get_lowering
        except ImportError:
            pass
        else:
            get_lowering(settings.lowering)  # one line up front, not a failed row per checkpoint
    check_runtime_names(settings.runners, "--runner: ")
    if settings.precisions is not None:
        if not settings.precisions:
            raise SscDeployError("--precision takes precisions, e.g. fp32,int8")
        settings.precisions = check_precisions(settings.precisions)
