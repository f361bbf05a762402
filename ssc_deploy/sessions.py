"""In-process runtime sessions: the one place that decides how an exported file is loaded and run here.

Export verification (each target's ``run``), ``--lowering auto``, the per-op profiler and the
benchmark scripts all load through :func:`load_runner`, so they run the same sessions:

- onnxruntime: ``intra_op_num_threads=threads``, ``inter_op_num_threads=1``, and no spinning
  workers (an idle session's spinning threads would steal the cores of the one being timed);
- ExecuTorch: the process-wide XNNPACK thread pool sized by :func:`set_executorch_threads`, and
  the program kept alive as long as its method (the method runs out of the program's memory);
- LiteRT: ``num_threads=threads`` with the default delegates (XNNPACK).

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
# Where a profiled onnxruntime session writes the graph it optimized, inside ``profile_dir``.
ONNX_OPTIMIZED_GRAPH = "optimized.onnx"

_et_threads: int | None = None  # ExecuTorch's process-wide XNNPACK thread count, as last set here


@dataclass
class Session:
    """A loaded model file: call it on one float32 batch in the file's layout for its output.

    ``handle`` is the runtime's own object (an onnxruntime ``InferenceSession``, an ExecuTorch
    ``Program``, a LiteRT ``Interpreter``); ``input_shape`` is the file's input shape (batch 1).
    """

    runtime: str
    path: Path
    threads: int
    input_shape: tuple[int, ...]
    handle: Any
    run: Runner
    profile_dir: Path | None = None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.run(x)

    def end_profile(self) -> Path:
        """Stop profiling; the runtime's profile file (onnxruntime's JSON trace, ExecuTorch's ETDump)."""
        if self.profile_dir is None:
            raise SscDeployError(f"{self.path.name}: the session was loaded without profiling")
        if self.runtime == "onnxruntime":
            return Path(self.handle.end_profiling())
        etdump = self.profile_dir / "profile.etdp"
        self.handle.write_etdump_result_to_file(str(etdump), str(self.profile_dir / "debug.bin"))
        return etdump


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


def tflite_interpreter(path: str | Path, threads: int = 1, delegates: bool = True):
    """A LiteRT interpreter for ``path`` with tensors allocated; ``delegates=False`` keeps the graph
    as stored (no delegate takes ops), for reading its op list."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.AUTO if delegates else OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    interp = Interpreter(model_path=str(path), num_threads=threads, experimental_op_resolver_type=resolver)
    interp.allocate_tensors()
    return interp


def _onnxruntime(path: Path, threads: int, profile_dir: Path | None) -> Session:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if profile_dir is not None:
        opts.optimized_model_filepath = str(profile_dir / ONNX_OPTIMIZED_GRAPH)
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_dir / "prof")
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    shape = tuple(d if isinstance(d, int) else 1 for d in inp.shape)
    name = inp.name
    return Session("onnxruntime", path, threads, shape, sess, lambda x: sess.run(None, {name: x})[0], profile_dir)


def _executorch(path: Path, threads: int, profile_dir: Path | None) -> Session:
    import torch
    from executorch.runtime import Runtime

    set_executorch_threads(threads)
    program = Runtime.get().load_program(str(path), enable_etdump=profile_dir is not None, debug_buffer_size=0)
    method = program.load_method("forward")
    shape = tuple(int(d) for d in method.metadata.input_tensor_meta(0).sizes())

    def run(x: np.ndarray) -> np.ndarray:
        return method.execute([torch.from_numpy(x)])[0].numpy()

    return Session("executorch", path, threads, shape, program, run, profile_dir)


def _tflite(path: Path, threads: int, profile_dir: Path | None) -> Session:
    if profile_dir is not None:
        raise SscDeployError(f"{path.name}: LiteRT's Python wheel has no per-op profiler")
    interp = tflite_interpreter(path, threads)
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]

    def run(x: np.ndarray) -> np.ndarray:
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(out["index"]).copy()

    return Session("tflite", path, threads, tuple(int(d) for d in inp["shape"]), interp, run)


_LOADERS = {"onnxruntime": _onnxruntime, "executorch": _executorch, "tflite": _tflite}


def load_runner(runtime: str, path: str | Path, threads: int = 1, profile_dir: str | Path | None = None) -> Session:
    """Load ``path`` in ``runtime`` (a runtime or target name: ``onnx`` means onnxruntime) with
    ``threads`` threads; the result runs one contiguous float32 batch in the file's own layout.

    With ``profile_dir`` the runtime's own profiler records every run (onnxruntime's session
    profiler, also writing its optimized graph there as ``ONNX_OPTIMIZED_GRAPH``; ExecuTorch's
    ETDump); :meth:`Session.end_profile` returns the profile. LiteRT has no profiler here.
    """
    from ssc_deploy.runtimes import by_name

    spec = by_name(runtime)
    try:
        return _LOADERS[spec.runtime](Path(path), threads, None if profile_dir is None else Path(profile_dir))
    except ImportError as err:
        raise missing_package(spec.dist, spec.extra) from err


def run_each(runner: Runner, images: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Outputs of the NCHW ``images`` run one at a time (batch 1), concatenated; with ``nhwc``
    each image is fed channel-last."""
    images = np.asarray(images, dtype=np.float32)
    if nhwc:
        images = images.transpose(0, 2, 3, 1)
    return np.concatenate([runner(np.ascontiguousarray(images[i : i + 1])) for i in range(len(images))], 0)
