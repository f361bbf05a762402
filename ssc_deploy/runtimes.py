"""The one table of export targets and the runtimes that run them (torch-free).

Every place that needs a target's suffix, the runtime that runs it, the distribution that
provides that runtime or the pip extra that installs it reads it here. The standalone device
runner (``runtime_bench/device_runner.py``) keeps its own copy of the runtime names, since it
must import nothing from this package; a test asserts the two agree.

>>> from ssc_deploy.runtimes import by_target, by_runtime, by_suffix
>>> by_target("onnx").runtime
'onnxruntime'
>>> by_suffix(".pte").target
'executorch'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ssc_deploy.errors import SscDeployError


@dataclass(frozen=True)
class RuntimeSpec:
    """One export target and the runtime that runs its files."""

    target: str  # export target name (``--target``)
    runtime: str  # runtime name (``--runtime``, manifest ``runtime``, bench rows)
    label: str  # display name in tables and reports
    suffix: str  # artifact file suffix
    dist: str  # the distribution that provides the runtime on the host
    alt_dists: tuple[str, ...]  # other distributions a device may run it with
    extra: str  # ``pip install 'ssc-deploy[EXTRA]'`` for the runtime
    default_lowering: str  # shift lowering of nets without shifts and of ``lowering=`` left out in the Python API
    # Fastest fp32 lowering measured on the AVX-512 x86 host (benchmarks/RESULTS.md): the avx512 row of
    # the known-fastest table behind ``--lowering fast`` when this CPU has no measurement (export/lowerings/selection/choice.py).
    fastest_lowering: str
    native_tool: str  # the runtime's own benchmark tool (``--runner RUNTIME=PATH``)
    precisions: tuple[str, ...] = ("fp32",)  # numeric precisions the target exports (``--precision``)
    int8_lowering: str | None = None  # shift lowering of int8 exports (keeps the int8 chain whole)


RUNTIME_TABLE: tuple[RuntimeSpec, ...] = (
    RuntimeSpec("onnx", "onnxruntime", "onnxruntime", ".onnx", "onnxruntime", (), "onnx",
                "pad-slice", "dwconv-aligned", "onnxruntime_perf_test", ("fp32", "int8"), "dwconv-nhwc"),
    RuntimeSpec("executorch", "executorch", "ExecuTorch", ".pte", "executorch", (), "executorch",
                "pad-slice", "dwconv", "executor_runner", ("fp32", "int8"), "dwconv"),
    RuntimeSpec("tflite", "tflite", "LiteRT", ".tflite", "ai-edge-litert", ("tflite-runtime",), "tflite",
                "pad-slice", "dwconv-nhwc", "benchmark_model", ("fp32", "int8", "fp16"), "dwconv-nhwc"),
)

TARGET_NAMES: tuple[str, ...] = tuple(s.target for s in RUNTIME_TABLE)
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
