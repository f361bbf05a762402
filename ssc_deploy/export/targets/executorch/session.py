"""ExecuTorch's in-process session (the runtime table's ``session_module`` of executorch).

The process-wide XNNPACK thread pool is sized by :func:`set_threads`, and the program is kept
alive as long as its method (the method runs out of the program's memory).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import Session

RUNTIME = by_target("executorch").runtime
_threads: int | None = None  # the process-wide XNNPACK thread count, as last set here


def set_threads(threads: int) -> None:
    """Size ExecuTorch's process-wide XNNPACK thread pool (its Python runtime otherwise uses every core).

    Loaded delegates hold on to the pool: it is resized only when the count changes, and every
    ExecuTorch program alive at one time must use the same thread count (resizing under loaded
    programs crashes).
    """
    global _threads
    try:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
    except ImportError:  # pragma: no cover - older runtimes: XNNPACK picks its own threads
        return
    if _threads != threads:
        _unsafe_reset_threadpool(threads)
        _threads = threads


def load(path: Path, threads: int, profile_dir: Path | None) -> Session:
    """The ``forward`` method of the program in ``path``; with ``profile_dir`` an ETDump records every run."""
    import torch
    from executorch.runtime import Runtime

    set_threads(threads)
    program = Runtime.get().load_program(str(path), enable_etdump=profile_dir is not None, debug_buffer_size=0)
    method = program.load_method("forward")
    shape = tuple(int(d) for d in method.metadata.input_tensor_meta(0).sizes())

    def run(x: np.ndarray) -> np.ndarray:
        return method.execute([torch.from_numpy(x)])[0].numpy()

    def stop() -> Path:
        etdump = profile_dir / "profile.etdp"
        program.write_etdump_result_to_file(str(etdump), str(profile_dir / "debug.bin"))
        return etdump

    return Session(RUNTIME, path, threads, shape, program, run, profile_dir, stop if profile_dir is not None else None)
