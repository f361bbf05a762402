"""onnxruntime's in-process session (the runtime table's ``session_module`` of onnx).

``intra_op_num_threads=threads``, ``inter_op_num_threads=1``, and no spinning workers (an idle
session's spinning threads would steal the cores of the one being timed).
"""

from __future__ import annotations

from pathlib import Path

from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import Session

RUNTIME = by_target("onnx").runtime
# Where a profiled session writes the graph it optimized, inside ``profile_dir``.
OPTIMIZED_GRAPH = "optimized.onnx"


def load(path: Path, threads: int, profile_dir: Path | None) -> Session:
    """An onnxruntime session of ``path`` on the CPU provider; with ``profile_dir`` its session profiler
    records every run and the optimized graph is written there as :data:`OPTIMIZED_GRAPH`."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_dir is not None:
        opts.optimized_model_filepath = str(profile_dir / OPTIMIZED_GRAPH)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_dir / "prof")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)
    name = inp.name
    stop = (lambda: Path(sess.end_profiling())) if profile_dir is not None else None
    return Session(RUNTIME, path, threads, shape, sess, lambda x: sess.run(None, {name: x})[0], profile_dir, stop)
