"""Where an exported model's time goes: each runtime's own per-op profiler, summed by op class.

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
  delegate does, so the ExecuTorch profile of the same network answers for it.

Input values do not change these kernels' run time, so a fixed random input is used.
"""

from __future__ import annotations

import json
import re
import tempfile
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError, missing_package
from ssc_deploy.numeric import check_int, check_threads
from ssc_deploy.export.inspect import target_of
from ssc_deploy.runtimes import by_target
from ssc_deploy.timing import median

_EVENT_NUMBER = re.compile(r" #\d+$")
# ETDump bookkeeping events that wrap the per-op ones.
_ET_WRAPPERS = {"Method::execute", "DELEGATE_CALL", "OPERATOR_CALL", "Method::init", "Program::load_method"}


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
    """Profile an exported ``.pte`` or ``.onnx`` file with its runtime's own profiler."""
    path = Path(path)
    check_threads("--threads", threads)
    check_int("--runs", runs, 1)
    check_int("--warmup", warmup, 0)
    if not path.is_file():
        raise SscDeployError(f"no such file: {path}")
    target = target_of(path)
    if target == "executorch":
        return profile_executorch(path, threads, runs, warmup)
    if target == "onnx":
        return profile_onnx(path, threads, runs, warmup)
    raise SscDeployError(
        f"{path.name}: LiteRT's Python wheel has no per-op profiler; profile the .pte of the same "
        "network (LiteRT runs the same XNNPACK operators) or run benchmark_model --enable_op_profiling=true"
    )


def _random_input(shape: tuple[int, ...]) -> np.ndarray:
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def _profiled_runs(target: str, path: Path, threads: int, runs: int, warmup: int, workdir: Path):
    """A profiling session of ``path`` after ``warmup + runs`` runs on a fixed random input.

    Warm-up runs are recorded too; the callers keep only the last ``runs`` runs.
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


def profile_executorch(path: Path, threads: int = 1, runs: int = 50, warmup: int = 10) -> OpProfile:
    """ETDump profile of a ``.pte``: XNNPACK operators and portable kernels, per run."""
    try:
        from executorch.devtools import Inspector
    except ImportError as err:
        raise missing_package(by_target("executorch").dist, by_target("executorch").extra) from err
    from ssc_deploy.quiet import quiet_native

    with tempfile.TemporaryDirectory() as tmp:
        session = _profiled_runs("executorch", path, threads, runs, warmup, Path(tmp))
        with quiet_native():
            inspector = Inspector(etdump_path=str(session.end_profile()))
    ops: list[Op] = []
    wall: list[float] = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for ev in block.events:
            if ev.perf_data is None:
                continue
            raw = list(ev.perf_data.raw)[-runs:]
            if ev.name == "Method::execute":
                wall = raw
            elif ev.name not in _ET_WRAPPERS:
                op_class = _EVENT_NUMBER.sub("", ev.name) if ev.is_delegated_op else (
                    "portable " + ev.name.removeprefix("native_call_"))
                ops.append(Op(ev.name, op_class, median(raw)))
    if not wall:
        raise SscDeployError(f"{path.name}: the ETDump holds no execution events")
    return OpProfile(str(path), by_target("executorch").runtime, threads, runs, median(wall), ops)


def onnx_conv_class(op_type: str, attrs: dict, weight_dims: list[int] | None) -> str:
    """'Conv 1x1 dense', 'Conv 3x3 depthwise', 'Conv 1x1 grouped (9 ch/group)' or the op type."""
    if "Conv" not in op_type or not weight_dims or len(weight_dims) != 4:
        return op_type
    group = int(attrs.get("group", 1))
    k = f"{weight_dims[2]}x{weight_dims[3]}"
    if group == 1:
        kind = "dense"
    elif weight_dims[1] == 1:
        kind = "depthwise"
    else:
        kind = f"grouped ({weight_dims[1]} ch/group)"
    layout = " NCHWc" if op_type.startswith("com.microsoft.nchwc") else ""
    return f"Conv {k} {kind}{layout}"


def _unblocked_weight(nchwc_name: str, producers: dict, inits: dict[str, list[int]]) -> list[int] | None:
    """Weight dims of the original conv an NCHWc conv node came from (its own weights are padded
    to the channel block), given the source graph's tensor -> producing node and initializer
    dims. The layout transformer names the node after the fused chain's output tensor: a Conv's,
    or a ReLU/Clip's right after one. None when that chain cannot be traced."""
    node = producers.get(nchwc_name.removesuffix("_nchwc"))
    if node is not None and node.op_type in ("Relu", "Clip"):
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Conv" or len(node.input) < 2:
        return None
    return inits.get(node.input[1])


def profile_onnx(path: Path, threads: int = 1, runs: int = 50, warmup: int = 10) -> OpProfile:
    """onnxruntime profile of a ``.onnx``: node times of the optimized graph, convs with their MACs."""
    try:
        import onnx
    except ImportError as err:
        raise missing_package(by_target("onnx").dist, by_target("onnx").extra) from err
    from ssc_deploy.sessions import ONNX_OPTIMIZED_GRAPH

    with tempfile.TemporaryDirectory() as tmp:
        session = _profiled_runs("onnx", path, threads, runs, warmup, Path(tmp))
        optimized = onnx.load(str(Path(tmp) / ONNX_OPTIMIZED_GRAPH))
        records = json.loads(session.end_profile().read_text())
    # Keep the node events of the last ``runs`` runs (the profiler records from session creation).
    run_spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in records if e.get("name") == "model_run")[-runs:]
    if not run_spans:
        raise SscDeployError(f"{path.name}: onnxruntime's profile holds no runs")
    first = run_spans[0][0]
    records = [e for e in records if e.get("ts", -1) >= first]
    wall = [(end - start) / 1e3 for start, end in run_spans]
    inits = {i.name: list(i.dims) for i in optimized.graph.initializer}
    nodes = {n.name: n for n in optimized.graph.node}
    source = onnx.load(str(path), load_external_data=False).graph
    source_producers = {out: n for n in source.node for out in n.output}
    source_inits = {i.name: list(i.dims) for i in source.initializer}
    times: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple[str, float | None]] = {}
    for e in records:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        times[name].append(e["dur"] / 1e3)
        if name in info:
            continue
        node = nodes.get(name)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} if node else {}
        weight = inits.get(node.input[1]) if node is not None and len(node.input) > 1 else None
        op = (f"{node.domain}.{node.op_type}" if node.domain else node.op_type) if node else e["args"].get("op_name", "?")
        if node is not None and node.domain == "com.microsoft.nchwc":
            true_weight = _unblocked_weight(name, source_producers, source_inits)
        else:
            true_weight = weight
        macs = None
        out_shape = e["args"].get("output_type_shape") or []
        if true_weight and len(true_weight) == 4 and out_shape:
            dims = next(iter(out_shape[0].values()))
            spatial = int(np.prod(dims[2:4])) if len(dims) >= 4 else 1
            macs = float(spatial * int(np.prod(true_weight)))
        info[name] = (onnx_conv_class(op, attrs, true_weight or weight), macs)
    ops = [Op(name, info[name][0], median(v), info[name][1]) for name, v in times.items()]
    return OpProfile(str(path), by_target("onnx").runtime, threads, runs, median(wall), ops)


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
