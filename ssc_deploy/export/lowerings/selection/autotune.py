"""``--lowering auto``: pick the lowering that runs fastest on the target runtime, by measurement.

Also the engine of the default ``--lowering fast``, which runs it once per machine on a small
probe net with few candidates (:mod:`ssc_deploy.export.lowerings.selection.probe`) and caches the winner.

For each candidate lowering the net is rewritten, exported to the target runtime, checked
against the PyTorch net on real images and timed on this host (batch 1, pinned threads).
Candidates are timed interleaved, round-robin, so load from other processes hits them all
alike; the fastest one that passes parity wins. Sessions come from :mod:`ssc_deploy.sessions`
and timings from :mod:`ssc_deploy.timing`, as in the before/after benchmark
(``benchmarks/lowering_speed.py``).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.runtimes import by_name
from ssc_deploy.sessions import Runner, load_runner, run_each
from ssc_deploy.timing import medians, time_interleaved

AUTO = "auto"
# Measured slower than dwconv / pad-slice on all three runtimes on the x86 host
# (benchmarks/RESULTS.md), so auto does not spend exports on them; name them explicitly to compare.
_EXCLUDED: frozenset[str] = frozenset(
    {"shift-conv", "shift-conv-foldshuffle", "dwconv-foldshuffle", "pad-slice-foldshuffle"}
)


def _target(runtime: str):
    """The target module for a target or runtime name (one-line error for neither)."""
    from ssc_deploy.export.targets import TARGETS

    return TARGETS[by_name(runtime).target]


def export_to(runtime: str, net, example, path: Path) -> Path:
    """Export the (already lowered) ``net`` at ``example``'s shape for ``runtime``, NCHW input on every
    runtime (:meth:`~ssc_deploy.export.options.TargetOptions.nchw`); returns the file."""
    from ssc_deploy.export.targets import TARGET_OPTIONS

    target = _target(runtime)
    target.check_installed()
    path = Path(path).with_suffix(target.SUFFIX)
    target.export(net, example, path, TARGET_OPTIONS[by_name(runtime).target].nchw())
    return path


@dataclass
class CandidateResult:
    """One lowering's outcome on one runtime."""

    lowering: str
    ok: bool
    max_abs_diff: float | None = None
    median_ms: float | None = None
    error: str | None = None


@dataclass
class AutotuneResult:
    """The winner and every candidate's measurement."""

    runtime: str
    best: str
    candidates: list[CandidateResult] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"runtime": self.runtime, "best": self.best, "candidates": [asdict(c) for c in self.candidates]}


def candidate_lowerings(runtime: str | None = None) -> list[str]:
    """Registered lowerings meant for ``runtime`` (all when their entry names no runtimes)."""
    from ssc_deploy.export.lowerings import available_lowerings

    target = None if runtime is None else by_name(runtime).target
    return [
        name
        for name, entry in available_lowerings().items()
        if name not in _EXCLUDED and (target is None or entry.runtimes is None or target in entry.runtimes)
    ]


def autotune(
    model,
    runtime: str,
    images: np.ndarray,
    candidates: Iterable[str] | None = None,
    atol: float = 1e-4,
    threads: int = 1,
    rounds: int = 10,
    workdir: str | Path | None = None,
) -> AutotuneResult:
    """Return the fastest lowering of ``model`` on ``runtime`` among those that pass parity.

    ``images`` (N, C, H, W float32, real data) serve both for parity (max abs diff of the
    runtime's logits vs the BN-folded PyTorch net in the reference pad-slice lowering, at most
    ``atol`` times the logit scale)
    and, first image, for timing. A candidate that fails to lower, export or match is
    reported with its error and skipped.
    """
    import torch

    from ssc_deploy.export.rewrite import deployment_rewrite

    names = list(candidates) if candidates is not None else candidate_lowerings(runtime)
    if not names:
        raise SscDeployError(f"no lowering candidates for runtime '{runtime}'")
    _target(runtime).check_installed()
    images = np.ascontiguousarray(images, dtype=np.float32)
    ref_net = deployment_rewrite(model, "pad-slice")
    with torch.no_grad():
        reference = ref_net(torch.from_numpy(images)).numpy()
    scale = max(1.0, float(np.abs(reference).max()))
    example = torch.from_numpy(images[:1])
    results: dict[str, CandidateResult] = {}
    runners: dict[str, Runner] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for name in names:
            try:
                net = deployment_rewrite(model, name)
                path = export_to(runtime, net, example, Path(tmp) / name.replace("/", "_"))
                run = load_runner(runtime, path, threads)
                out = run_each(run, images)
                diff = float(np.abs(out - reference).max())
            except Exception as err:  # noqa: BLE001 - one bad candidate must not stop the search
                text = str(err) if isinstance(err, SscDeployError) else f"{type(err).__name__}: {err}"
                results[name] = CandidateResult(name, False, error=one_line(text))
                continue
            ok = diff <= atol * scale
            results[name] = CandidateResult(name, ok, max_abs_diff=diff,
                                            error=None if ok else f"parity: max abs diff {diff:.2e}")
            if ok:
                runners[name] = run
        if not runners:
            details = "; ".join(f"{r.lowering}: {r.error}" for r in results.values())
            raise SscDeployError(f"no lowering passed export and parity on {runtime}: {details}")
        times = time_interleaved(runners, images[:1], rounds=rounds)
    for name, ms in medians(times).items():
        results[name].median_ms = ms
    best = min(runners, key=lambda n: results[n].median_ms)
    return AutotuneResult(runtime, best, [results[n] for n in names])

