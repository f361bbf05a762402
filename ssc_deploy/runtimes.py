"""The one table of export targets and the runtimes that run them (torch-free).

Every place that needs a target's suffix, the runtime that runs it, the distribution that
provides that runtime, the pip extra that installs it, or any other fact that differs per
runtime reads it here; code that differs per runtime lives in the runtime's folder
(``ssc_deploy/export/targets/<target>/``) and a column names the module. Outside this table,
the standalone runner and those folders no module spells a runtime name
(``tests/test_runtime_names.py``). The standalone device runner
(``devices/runner/``) keeps its own copy of the runtime names, since it must
import nothing from this package; a test asserts the two agree.

>>> from ssc_deploy.runtimes import by_target, by_runtime, by_suffix
>>> by_target("onnx").runtime
'onnxruntime'
>>> by_suffix(".pte").target
'executorch'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from ssc_deploy.errors import SscDeployError

_TARGETS = "ssc_deploy.export.targets"  # each runtime's folder (its per-runtime modules) lives under this package


@dataclass(frozen=True, kw_only=True)
class RuntimeSpec:
    """One export target and the runtime that runs its files; every per-runtime fact is a column here.

    Rows are built by keyword. Behaviour that differs per runtime (loading a file in-process,
    its native benchmark tool, its per-op profiler) lives in modules of the runtime's folder
    (``ssc_deploy/export/targets/<target>/``) that the ``*_module`` columns name.
    """

    target: str  # export target name (``--target``)
    runtime: str  # runtime name (``--runtime``, manifest ``runtime``, bench rows)
    label: str  # display name in tables and reports
    suffix: str  # artifact file suffix
    dist: str  # the distribution that provides the runtime on the host
    alt_dists: tuple[str, ...] = ()  # other distributions a device may run it with
    import_module: str  # the module a device imports to run its files (the runtime check of a device)
    extra: str  # ``pip install 'ssc-deploy[EXTRA]'`` for the runtime
    default_lowering: str  # shift lowering of nets without shifts and of ``lowering=`` left out in the Python API
    # Fastest fp32 lowering measured on the AVX-512 x86 host (benchmarks/RESULTS.md): the avx512 row of
    # the known-fastest table behind ``--lowering fast`` when this CPU has no measurement (export/lowerings/selection/choice.py).
    fastest_lowering: str
    # The fastest fp32 lowering on other vector ISA classes, where one was measured: (isa, lowering).
    isa_fastest: tuple[tuple[str, str], ...] = ()
    # The fp32 lowerings the quick per-machine probe times (export/lowerings/selection/probe.py).
    probe_lowerings: tuple[str, ...]
    # Lowerings written for a few runtimes only (registered with ``runtimes=``; ``--lowering auto`` elsewhere skips them).
    own_lowerings: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ("fp32",)  # numeric precisions the target exports (``--precision``)
    # Why the target has no file of a precision it lacks (measured: benchmarks/int8-feasibility.md): (precision, why).
    not_exported: tuple[tuple[str, str], ...] = ()
    # The package its int8 (and fp16) quantizer needs beyond the fp32 export: (module, distribution).
    quantizer: tuple[str, str]
    int8_lowering: str | None = None  # shift lowering of int8 exports (keeps the int8 chain whole)
    # The int8 lowerings the host's int8 probe times against the fp32 file (export/lowerings/selection/int8.py):
    # int8_lowering, the other depthwise one, the group merges (k = 3, 9) and, for onnxruntime, the batched
    # MatMul (LiteRT leaves int8 BATCH_MATMUL outside XNNPACK; ExecuTorch's quantizer does not annotate bmm).
    int8_candidates: tuple[str, ...] = ()
    # The in-process loader (``load(path, threads, profile_dir) -> sessions.Session``), ssc_deploy/sessions.py.
    session_module: str
    native_tool: str  # the runtime's own benchmark tool (``--runner RUNTIME=PATH``)
    # Its command line and output parser (``command``, ``parse``, ``WARMUP_IN_RUNS``), devices/native_tools.py.
    native_tool_module: str
    # The per-op profile reader (``read(session, runs) -> (wall ms, ops)`` of a profiled session),
    # ssc_deploy/op_profile.py; None with ``no_profiler`` saying why and what to do instead.
    profiler_module: str | None = None
    no_profiler: str = ""
    # Whether arm64-emulated counts its files' instructions (export --for arm64-emulated picks by them), and
    # the module of its counts known per CPU profile (``INSTRUCTIONS``), export/lowerings/selection/arm.py.
    emulated_counts: bool = False
    arm_counts_module: str | None = None
    # Whether the arm64 rootfs has the runtime only when set up with ``--with-executorch``.
    rootfs_optional: bool = False


RUNTIME_TABLE: tuple[RuntimeSpec, ...] = (
    RuntimeSpec(
        target="onnx", runtime="onnxruntime", label="onnxruntime", suffix=".onnx",
        dist="onnxruntime", import_module="onnxruntime", extra="onnx",
        default_lowering="pad-slice", fastest_lowering="dwconv-aligned",
        probe_lowerings=("pad-slice", "dwconv", "dwconv-aligned"), own_lowerings=("dwconv-aligned", "dwconv-nhwc", "dwconv-nhwc-bmm", "pad-slice-bmm",
                                                                          "dwconv-nhwc-merge3", "dwconv-nhwc-merge9"),
        precisions=("fp32", "int8"),
        not_exported=(("fp16", "onnxruntime's CPU provider has no fp16 conv kernels, so an fp16 file would run "
                               "no faster"),),
        quantizer=("onnxruntime.quantization", "onnxruntime"), int8_lowering="dwconv-nhwc",
        int8_candidates=("dwconv-nhwc", "dwconv-nhwc-bmm", "dwconv-nhwc-merge3", "dwconv-nhwc-merge9"),
        session_module=f"{_TARGETS}.onnx.session",
        native_tool="onnxruntime_perf_test", native_tool_module=f"{_TARGETS}.onnx.native_tool",
        profiler_module=f"{_TARGETS}.onnx.op_profile",
        emulated_counts=True, arm_counts_module=f"{_TARGETS}.onnx.arm_counts",
    ),
    RuntimeSpec(
        target="executorch", runtime="executorch", label="ExecuTorch", suffix=".pte",
        dist="executorch", import_module="executorch.runtime", extra="executorch",
        # avx2 from issue 15 (AMD EPYC, AVX2 only): dwconv 13.6 ms vs pad-slice 11.8 ms.
        default_lowering="pad-slice", fastest_lowering="dwconv", isa_fastest=(("avx2", "pad-slice"),),
        probe_lowerings=("pad-slice", "dwconv"),
        precisions=("fp32", "int8"),
        not_exported=(("fp16", "ExecuTorch 1.5.1 stores XNNPACK conv weights as fp32 (same size) and fp16 ran "
                               "1.64x slower than fp32 on the CPU it was measured on (an AMD EPYC without "
                               "AVX512-FP16)"),),
        quantizer=("torchao.quantization.pt2e", "torchao"), int8_lowering="dwconv",
        int8_candidates=("dwconv", "dwconv-merge3", "dwconv-merge9"),
        session_module=f"{_TARGETS}.executorch.session",
        native_tool="executor_runner", native_tool_module=f"{_TARGETS}.executorch.native_tool",
        profiler_module=f"{_TARGETS}.executorch.op_profile", rootfs_optional=True,
    ),
    RuntimeSpec(
        target="tflite", runtime="tflite", label="LiteRT", suffix=".tflite",
        dist="ai-edge-litert", alt_dists=("tflite-runtime",), import_module="ai_edge_litert.interpreter",
        extra="tflite",
        default_lowering="pad-slice", fastest_lowering="dwconv-nhwc",
        probe_lowerings=("pad-slice", "dwconv", "dwconv-nhwc"), own_lowerings=("dwconv-nhwc", "dwconv-nhwc-bmm", "dwconv-nhwc-merge3", "dwconv-nhwc-merge9"),
        precisions=("fp32", "int8", "fp16"),
        quantizer=("ai_edge_quantizer", "ai-edge-quantizer"), int8_lowering="dwconv-nhwc",
        int8_candidates=("dwconv-nhwc", "dwconv", "dwconv-nhwc-merge3", "dwconv-merge3", "dwconv-nhwc-merge9"),
        session_module=f"{_TARGETS}.tflite.session",
        native_tool="benchmark_model", native_tool_module=f"{_TARGETS}.tflite.native_tool",
        no_profiler="LiteRT's Python wheel has no per-op profiler; profile the .pte of the same network "
                    "(LiteRT runs the same XNNPACK operators) or run benchmark_model --enable_op_profiling=true",
        emulated_counts=True, arm_counts_module=f"{_TARGETS}.tflite.arm_counts",
    ),
)

TARGET_NAMES: tuple[str, ...] = tuple(s.target for s in RUNTIME_TABLE)
DEFAULT_TARGET: str = TARGET_NAMES[0]  # ``--target``'s default: the first row
RUNTIME_NAMES: tuple[str, ...] = tuple(s.runtime for s in RUNTIME_TABLE)
SUFFIXES: tuple[str, ...] = tuple(s.suffix for s in RUNTIME_TABLE)


def by_target(name: str) -> RuntimeSpec:
    """The row of export target ``name``; one-line error for an unknown one."""
    for spec in RUNTIME_TABLE:
        if spec.target == name:
            return spec
    raise SscDeployError(f"unknown target '{name}' (use one of: {', '.join(TARGET_NAMES)})")


def by_runtime(name: str) -> RuntimeSpec:
    """The row of runtime ``name``; one-line error for an unknown one."""
    for spec in RUNTIME_TABLE:
        if spec.runtime == name:
            return spec
    raise SscDeployError(f"unknown runtime '{name}' (use one of: {', '.join(RUNTIME_NAMES)})")


def by_name(name: str) -> RuntimeSpec:
    """The row a target or runtime name names (``onnx`` and ``onnxruntime`` are one row).

    For APIs that take either word, such as :func:`ssc_deploy.sessions.load_runner`; one-line
    error for a name that is neither.
    """
    for spec in RUNTIME_TABLE:
        if name in (spec.target, spec.runtime):
            return spec
    known = ", ".join(dict.fromkeys(TARGET_NAMES + RUNTIME_NAMES))
    raise SscDeployError(f"unknown runtime '{name}' (use one of: {known})")


def dist_pairs() -> tuple[tuple[str, str], ...]:
    """(runtime, distribution) for every distribution that may provide a runtime, preferred first."""
    return tuple((spec.runtime, dist) for spec in RUNTIME_TABLE for dist in (spec.dist, *spec.alt_dists))


def by_suffix(suffix_or_path: str | Path) -> RuntimeSpec | None:
    """The row whose artifacts end in this suffix (or whose file this is); None when no row does."""
    text = str(suffix_or_path)
    bare = text.startswith(".") and text.count(".") == 1 and "/" not in text
    suffix = text.lower() if bare else Path(text).suffix.lower()
    for spec in RUNTIME_TABLE:
        if spec.suffix == suffix:
            return spec
    return None


def runtime_module(spec: RuntimeSpec, column: str) -> ModuleType:
    """The per-runtime module the ``column`` of ``spec`` names (``session_module``, ``native_tool_module``,
    ``profiler_module``, ``arm_counts_module``), imported now; the runtime itself is imported only when the module uses it."""
    name = getattr(spec, column)
    if name is None:
        raise SscDeployError(f"{spec.label} has no {column.removesuffix('_module').replace('_', ' ')}")
    return importlib.import_module(name)


def meant_for(lowering: str) -> tuple[str, ...]:
    """The targets whose rows list ``lowering`` among their ``own_lowerings`` (a lowering's ``runtimes=``)."""
    return tuple(spec.target for spec in RUNTIME_TABLE if lowering in spec.own_lowerings)
