"""Where an exported model's time goes: each runtime's own per-op profiler, summed by op class.

Each runtime's profile reader is its folder's ``op_profile.py`` (the runtime table's ``profiler_module``:
``read(session, runs) -> (wall times, ops)`` of a session loaded with profiling and run here):

- ExecuTorch: an ETDump recorded by the runtime (``enable_etdump``) and read back with
  ``executorch.devtools.Inspector``. The XNNPACK delegate reports each of its operators
  ("Convolution (NHWC, F32) IGEMM", "Fully Connected (NC, F32) GEMM", "Transpose (ND, X32)",
  ...); ops left to the portable kernels appear as ``portable <op>`` - a silent CPU fallback
  shows up here.
- onnxruntime: its session profiler, node times of the optimized graph; convs are classed by
  kernel size and grouping (dense / grouped (k ch/group) / depthwise, NCHWc where the layout
  transformer took them) and their MACs are read from the weights.
- LiteRT: its Python wheel carries no op profiler (the native ``benchmark_model
  --enable_op_profiling`` has one); on CPU it runs the same XNNPACK operators ExecuTorch's
  delegate does, so the ExecuTorch profile of the same network answers for it (the table's
  ``no_profiler`` says so).

Input values do not change these kernels' run time, so a fixed random input is used.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import tempfile

import numpy as np

from ssc_deploy.errors import SscDeployError, missing_package
from ssc_deploy.numeric import check_int, check_threads
from ssc_deploy.export.readers.artifact import target_of
from ssc_deploy.runtimes import by_target, runtime_module
from ssc_deploy.timing import median

@dataclass
class Op:
    """One op of the graph: its runtime name, op class, median time a run and MACs if known."""

    name: str
    op_class: str
    ms: float
    macs: float | None = None


@dataclass
class OpClass:
    """One op class: how many ops of it a run executes, their summed median times, and their MACs."""

    name: str
    nodes: int
    ms: float
    macs: float | None = None

    @property
    def gmacs(self) -> float | None:
        """Achieved GMAC/s of this class (None without MACs)."""
        return self.macs / self.ms / 1e6 if self.macs and self.ms > 0 else None


@dataclass
class OpProfile:
    """A per-op profile of one exported file: every op in graph order, and the op classes."""

    file: str
    runtime: str
    threads: int
    runs: int
    wall_ms: float
    ops: list[Op] = field(default_factory=list)

    @property
    def classes(self) -> list[OpClass]:
        """Ops summed by class, slowest class first (MACs summed where every op of a class has them)."""
        acc: dict[str, list] = {}
        for op in self.ops:
            row = acc.setdefault(op.op_class, [0, 0.0, 0.0, True])
            row[0] += 1
            row[1] += op.ms
            row[2] += op.macs or 0.0
            row[3] = row[3] and op.macs is not None
        classes = [OpClass(k, n, ms, macs if known else None) for k, (n, ms, macs, known) in acc.items()]
        return sorted(classes, key=lambda c: -c.ms)

    @property
    def kernel_ms(self) -> float:
        """Time a run spends inside profiled ops (sum of per-op medians)."""
        return sum(op.ms for op in self.ops)

    def share(self, name: str) -> float:
        """Fraction of the profiled time spent in op class ``name`` (0 when absent)."""
        total = self.kernel_ms
        return sum(op.ms for op in self.ops if op.op_class == name) / total if total else 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        d["kernel_ms"] = self.kernel_ms
        d["classes"] = [dict(asdict(c), gmacs=c.gmacs) for c in self.classes]
        return d


def profile_table(profile: OpProfile, title: str | None = None):
    """A rich table of ``profile``'s op classes: ops a run, ms a run, share, MMACs and GMAC/s."""
    from rich.table import Table

    total = profile.kernel_ms
    table = Table(title=title or f"{Path(profile.file).name} on {profile.runtime}, {profile.threads} thread(s): "
                                 f"{profile.wall_ms:.3f} ms a run (median of {profile.runs}), "
                                 f"{total:.3f} ms in profiled ops")
    for col in ("op class", "ops/run", "ms/run", "share", "MMACs", "GMAC/s"):
        table.add_column(col, justify="left" if col == "op class" else "right")
    for c in profile.classes:
        table.add_row(c.name, str(c.nodes), f"{c.ms:.3f}", f"{100 * c.ms / total:.1f}%" if total else "-",
                      f"{c.macs / 1e6:.2f}" if c.macs else "-", f"{c.gmacs:.1f}" if c.gmacs else "-")
    return table


def profile_file(path: str | Path, threads: int = 1, runs: int = 50, warmup: int = 10) -> OpProfile:
    """Profile an exported file with its runtime's own profiler (the runtime table's ``profiler_module``:
    ``.pte`` and ``.onnx``; a runtime without one says why and what to do instead)."""
    path = Path(path)
    check_threads("--threads", threads)
    check_int("--runs", runs, 1)
    check_int("--warmup", warmup, 0)
    if not path.is_file():
        raise SscDeployError(f"no such file: {path}")
    spec = by_target(target_of(path))
    if spec.profiler_module is None:
        raise SscDeployError(f"{path.name}: {spec.no_profiler}")
    profiler = runtime_module(spec, "profiler_module")
    with tempfile.TemporaryDirectory() as tmp:
        session = _profiled_runs(spec.target, path, threads, runs, warmup, Path(tmp))
        try:
            wall, ops = profiler.read(session, runs)
        except ImportError as err:  # the profile reader of the runtime (ExecuTorch's devtools, onnx)
            raise missing_package(spec.dist, spec.extra) from err
    return OpProfile(str(path), spec.runtime, threads, runs, median(wall), ops)


def _random_input(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _profiled_runs(target: str, path: Path, threads: int, runs: int, warmup: int, workdir: Path):
    """A profiling session of ``path`` after ``warmup + runs`` runs on a fixed random input.

    Warm-up runs are recorded too; the profile readers keep only the last ``runs`` runs.
    """
    from ssc_deploy.quiet import quiet_native
    from ssc_deploy.sessions import load_runner

    try:
        with quiet_native():
            session = load_runner(target, path, threads, profile_dir=workdir)
    except SscDeployError:
        raise
    except Exception as err:  # the runtime's own message names the problem
        raise SscDeployError(f"{path.name}: {by_target(target).label} cannot load it ({err})") from err
    x = _random_input(session.input_shape)
    for _ in range(warmup + runs):
        session(x)
    return session


# How ExecuTorch's XNNPACK delegate runs each torch layer (its partitioner turns stride-1 dense
# 1x1 convs into fully-connected ops; other convs run as indirect GEMM unless depthwise).
_XNNPACK_FC = "Fully Connected (NC, F32) GEMM"
_XNNPACK_DW = "Convolution (NHWC, F32) DWConv"
_XNNPACK_IGEMM = "Convolution (NHWC, F32) IGEMM"


def layer_classes(model, example) -> list[tuple[str, str, float]]:
    """(XNNPACK op class, layer kind, MACs) of every conv and linear layer of ``model``, in execution order."""
    from torch import nn

    from ssc_deploy.models.complexity import layer_macs
    from ssc_deploy.models.layer_calls import layer_calls

    found: list[tuple[str, str, float]] = []
    for call in layer_calls(model, example):
        mod, macs = call.module, float(layer_macs(call.module, call.out_shape))
        if isinstance(mod, nn.Linear):
            found.append((_XNNPACK_FC, "linear", macs))
            continue
        kh, kw = mod.kernel_size
        stride = "" if tuple(mod.stride) == (1, 1) else f" stride {mod.stride[0]}"
        if mod.groups == mod.in_channels == mod.out_channels and mod.groups > 1:
            xnn, kind = _XNNPACK_DW, f"depthwise {kh}x{kw}{stride}"
        elif mod.groups > 1:
            xnn, kind = _XNNPACK_IGEMM, f"grouped {kh}x{kw}{stride}, {mod.in_channels // mod.groups} ch/group"
        elif kh * kw == 1 and not stride and tuple(mod.padding) == (0, 0):
            xnn, kind = _XNNPACK_FC, "dense 1x1"
        else:
            xnn, kind = _XNNPACK_IGEMM, f"dense {kh}x{kw}{stride}"
        found.append((xnn, kind, macs))
    return found


def attribute_macs(profile: OpProfile, model, example) -> bool:
    """Match an ExecuTorch profile's conv / FC ops to ``model``'s layers: MACs and a finer class.

    The delegate keeps the graph's order, so the i-th op of an XNNPACK class is the i-th layer of
    that kind; a class is matched only where the counts agree (returns whether all were).
    """
    layers: dict[str, list[tuple[str, float]]] = defaultdict(list)
    for xnn, kind, macs in layer_classes(model, example):
        layers[xnn].append((kind, macs))
    ops: dict[str, list[Op]] = defaultdict(list)
    for op in profile.ops:
        ops[op.op_class].append(op)
    ok = True
    for xnn, kinds in layers.items():
        if len(ops.get(xnn, [])) != len(kinds):
            ok = False
            continue
        for op, (kind, macs) in zip(ops[xnn], kinds):
            op.op_class, op.macs = f"{xnn}: {kind}", macs
    return ok
