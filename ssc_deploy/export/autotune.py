"""``--lowering auto``: pick the lowering that runs fastest on the target runtime, by measurement.

For each candidate lowering the net is rewritten, exported to the target runtime, checked
against the PyTorch net on real images and timed on this host (batch 1, pinned threads).
Candidates are timed interleaved, round-robin, so load from other processes hits them all
alike; the fastest one that passes parity wins. The same runners serve the before/after
benchmark in ``benchmarks/lowering_speed.py``.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError

RUNTIMES = ("onnx", "executorch", "tflite")
AUTO = "auto"
# Measured slower than dwconv / pad-slice on all three runtimes on the x86 host
# (benchmarks/RESULTS.md), so auto does not spend exports on them; name them explicitly to compare.
_EXCLUDED: frozenset[str] = frozenset(
    {"shift-conv", "shift-conv-foldshuffle", "dwconv-foldshuffle", "pad-slice-foldshuffle"}
)

Runner = Callable[[np.ndarray], np.ndarray]
_et_threads: int | None = None  # ExecuTorch's process-wide XNNPACK thread count, as last set here


def _target(runtime: str):
    if runtime == "onnx":
        from . import onnx_target as target
    elif runtime == "executorch":
        from . import executorch_target as target
    elif runtime == "tflite":
        from . import tflite_target as target
    else:
        raise SscDeployError(f"unknown runtime '{runtime}' (known: {', '.join(RUNTIMES)})")
    return target


def export_to(runtime: str, net, example, path: Path) -> Path:
    """Export the (already lowered) ``net`` at ``example``'s shape for ``runtime``; returns the file."""
    target = _target(runtime)
    target.check_installed()
    path = Path(path).with_suffix(target.SUFFIX)
    target.export(net, example, path)
    return path


def set_executorch_threads(threads: int) -> None:
    """Size ExecuTorch's process-wide XNNPACK thread pool (its Python runtime otherwise uses every core).

    Loaded delegates hold on to the pool: it is resized only when the count changes, and every
    ExecuTorch program alive at one time must use the same thread count (resizing under loaded
    programs crashes).
    """
    global _et_threads
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    except ImportError:  # pragma: no cover - older runtimes: XNNPACK picks its own threads
        return
    if _et_threads != threads:
        _unsafe_reset_threadpool(threads)
        _et_threads = threads


def load_runner(runtime: str, path: Path, threads: int = 1) -> Runner:
    """A callable running one NCHW float32 batch through the exported file with ``threads`` threads."""
    path = str(path)
    if runtime == "onnx":
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Idle sessions' spinning workers would steal the cores from the one being timed.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        name = sess.get_inputs()[0].name
        return lambda x: sess.run(None, {name: x})[0]
    if runtime == "executorch":
        import torch
        from executorch.runtime import Runtime

        set_executorch_threads(threads)
        # Keep the program alive as long as its method: the method runs out of the program's memory.
        program = Runtime.get().load_program(path)
        method = program.load_method("forward")

        def run_et(x: np.ndarray) -> np.ndarray:
            return method.execute([torch.from_numpy(x)])[0].numpy()

        run_et.program = program  # type: ignore[attr-defined]
        return run_et
    if runtime == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        interp = Interpreter(model_path=path, num_threads=threads)
        interp.allocate_tensors()
        inp, out = interp.get_input_details()[0]["index"], interp.get_output_details()[0]["index"]

        def run_tfl(x: np.ndarray) -> np.ndarray:
            interp.set_tensor(inp, x)
            interp.invoke()
            return interp.get_tensor(out).copy()

        return run_tfl
    raise SscDeployError(f"unknown runtime '{runtime}' (known: {', '.join(RUNTIMES)})")


def time_interleaved(
    runners: dict[str, Runner], x: np.ndarray, rounds: int = 30, calls: int = 5, warmup: int = 5
) -> dict[str, list[float]]:
    """Per-call latencies in ms: ``rounds`` rounds, each running every runner ``calls`` times in turn."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    for run in runners.values():
        for _ in range(warmup):
            run(x)
    times: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(rounds):
        for key, run in runners.items():
            t0 = time.perf_counter()
            for _ in range(calls):
                run(x)
            times[key].append((time.perf_counter() - t0) * 1e3 / calls)
    return times


def sgemm_gmacs(n: int = 1024, threads: int = 1, repeats: int = 5) -> float:
    """The host's single-precision GEMM rate in GMAC/s (``torch.mm`` n x n, best of ``repeats``)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        torch.mm(a, b)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            torch.mm(a, b)
            best = min(best, time.perf_counter() - t0)
    finally:
        torch.set_num_threads(old)
    return n**3 / best / 1e9


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
    from .lowerings import available_lowerings

    return [
        name
        for name, entry in available_lowerings().items()
        if name not in _EXCLUDED and (runtime is None or entry.runtimes is None or runtime in entry.runtimes)
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

    from .rewrite import deployment_rewrite

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
                out = np.concatenate([run(images[i : i + 1]) for i in range(len(images))], 0)
                diff = float(np.abs(out - reference).max())
            except Exception as err:  # noqa: BLE001 - one bad candidate must not stop the search
                text = str(err) if isinstance(err, SscDeployError) else f"{type(err).__name__}: {err}"
                results[name] = CandidateResult(name, False, error=(text.splitlines() or [""])[0][:300])
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
    for name, ts in times.items():
        results[name].median_ms = statistics.median(ts)
    best = min(runners, key=lambda n: results[n].median_ms)
    return AutotuneResult(runtime, best, [results[n] for n in names])


def choose_lowerings(model, lowering: str, targets: Iterable[str], images: np.ndarray, **kwargs) -> dict[str, str]:
    """The lowering each target gets: ``lowering`` for all, or with ``"auto"`` each target's
    :func:`autotune` winner (``kwargs`` go to :func:`autotune`)."""
    targets = list(targets)
    if lowering != AUTO:
        return {t: lowering for t in targets}
    return {t: autotune(model, t, images, **kwargs).best for t in targets}
