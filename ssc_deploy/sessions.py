"""In-process runtime sessions: the one place that decides how an exported file is loaded and run here.

Export verification (each target's ``run``), ``--lowering auto``, the per-op profiler and the
benchmark scripts all load through :func:`load_runner`, so they run the same sessions. How each
runtime loads a file is its folder's ``session.py`` (the runtime table's ``session_module``:
threads, spinning workers, delegates, profiling, in ``ssc_deploy/export/targets/<target>/``).

The standalone device runner (``devices/runner/device_runner.py``) keeps its own loaders, since
it must import nothing from this package. Torch-free at import: each runtime is imported when
a file of it is loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ssc_deploy.errors import SscDeployError, missing_package

Runner = Callable[[np.ndarray], np.ndarray]


@dataclass
class Session:
    """A loaded model file: call it on one float32 batch in the file's layout for its output.

    ``handle`` is the runtime's own object (an onnxruntime ``InferenceSession``, an ExecuTorch
    ``Program``, a LiteRT ``Interpreter``); ``input_shape`` is the file's input shape (batch 1);
    ``stop_profile`` (set by a loader given ``profile_dir``) ends profiling and returns the profile.
    """

    runtime: str
    path: Path
    threads: int
    input_shape: tuple[int, ...]
    handle: Any
    run: Runner
    profile_dir: Path | None = None
    stop_profile: Callable[[], Path] | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    def end_profile(self) -> Path:
        """Stop profiling; the runtime's profile file (onnxruntime's JSON trace, ExecuTorch's ETDump)."""
        if self.profile_dir is None or self.stop_profile is None:
            raise SscDeployError(f"{self.path.name}: the session was loaded without profiling")
        return self.stop_profile()


def load_runner(runtime: str, path: str | Path, threads: int = 1, profile_dir: str | Path | None = None) -> Session:
    """Load ``path`` in ``runtime`` (a runtime or target name: ``onnx`` means onnxruntime) with
    ``threads`` threads; the result runs one contiguous float32 batch in the file's own layout.

    With ``profile_dir`` the runtime's own profiler records every run (onnxruntime's session
    profiler, also writing its optimized graph there; ExecuTorch's ETDump);
    :meth:`Session.end_profile` returns the profile. LiteRT has no profiler here.
    """
    from ssc_deploy.runtimes import by_name, runtime_module

    spec = by_name(runtime)
    loader = runtime_module(spec, "session_module")
    try:
        return loader.load(Path(path), threads, None if profile_dir is None else Path(profile_dir))
    except ImportError as err:
        raise missing_package(spec.dist, spec.extra) from err


def run_each(runner: Runner, images: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Outputs of the NCHW ``images`` run one at a time (batch 1), concatenated; with ``nhwc``
    each image is fed channel-last."""
    images = np.asarray(images, dtype=np.float32)
    if nhwc:
        images = images.transpose(0, 2, 3, 1)
    return np.concatenate([runner(np.ascontiguousarray(images[i : i + 1])) for i in range(len(images))], 0)
