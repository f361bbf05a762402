"""LiteRT's in-process session (the runtime table's ``session_module`` of tflite).

``num_threads=threads`` with the default delegates (XNNPACK). The Python wheel has no per-op profiler.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import Session

RUNTIME = by_target("tflite").runtime


def tflite_interpreter(path: str | Path, threads: int = 1, delegates: bool = True):
    """A LiteRT interpreter for ``path`` with tensors allocated; ``delegates=False`` keeps the graph
    as stored (no delegate takes ops), for reading its op list."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def load(path: Path, threads: int, profile_dir: Path | None) -> Session:
    """A LiteRT interpreter of ``path``; one-line error when profiling is asked (no profiler in the wheel)."""
    if profile_dir is not None:
        raise SscDeployError(f"{path.name}: LiteRT's Python wheel has no per-op profiler")
    interp = tflite_interpreter(path, threads)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    return Session(RUNTIME, path, threads, tuple(int(d) for d in inp["shape"]), interp, run)
