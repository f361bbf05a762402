"""The runtime table, the places that read it, the device runner's own copy of it, and the
in-process sessions and timing every measurement shares (on real onnxruntime sessions)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssc_deploy.errors import SscDeployError
from ssc_deploy.devices.runner import device_runner
from ssc_deploy.runtimes import (
    RUNTIME_NAMES,
    RUNTIME_TABLE,
    SUFFIXES,
    TARGET_NAMES,
    by_name,
    by_runtime,
    by_suffix,
    by_target,
    dist_pairs,
)


def test_rows_are_unique_and_lookups_find_them():
    for column in (TARGET_NAMES, RUNTIME_NAMES, SUFFIXES):
        assert len(set(column)) == len(RUNTIME_TABLE)
    for spec in RUNTIME_TABLE:
        assert by_target(spec.target) is spec and by_runtime(spec.runtime) is spec
        assert by_name(spec.target) is spec and by_name(spec.runtime) is spec
        assert by_suffix(spec.suffix) is spec and by_suffix(f"dir/model{spec.suffix.upper()}") is spec
        assert "fp32" in spec.precisions
    assert by_name("onnx") is by_name("onnxruntime") is by_target("onnx")
    assert by_suffix(".h5") is None and by_suffix("model") is None
    onnx, pte = by_target("onnx"), by_target("executorch")
    assert by_suffix("../m.onnx") is onnx and by_suffix(".hidden.onnx") is onnx  # paths, not bare suffixes
    assert by_suffix(Path("../a/.m.pte")) is pte


@pytest.mark.parametrize("lookup, name, message", [
    (by_target, "onnxruntime", "unknown target 'onnxruntime' (use one of: onnx, executorch, tflite)"),
    (by_runtime, "onnx", "unknown runtime 'onnx' (use one of: onnxruntime, executorch, tflite)"),
    (by_name, "tensorrt", "unknown runtime 'tensorrt' (use one of: onnx, executorch, tflite, onnxruntime)"),
])
def test_lookups_fail_in_one_line(lookup, name, message):
    with pytest.raises(SscDeployError) as err:
        lookup(name)
    assert str(err.value) == message


def test_the_device_runner_copy_agrees_with_the_table():
    assert device_runner.RUNTIMES == RUNTIME_NAMES
    assert set(device_runner.LOADERS) == set(device_runner.PREIMPORTS) == set(RUNTIME_NAMES)
    assert all(device_runner.PREIMPORTS[rt] for rt in RUNTIME_NAMES)
    # the runner imports what the table says a device imports to run each runtime's files
    assert all(spec.import_module == device_runner.PREIMPORTS[spec.runtime][0] for spec in RUNTIME_TABLE)
    tflite = by_runtime("tflite")
    assert tuple(dist for _, dist in device_runner.TFLITE_INTERPRETERS) == (tflite.dist, *tflite.alt_dists)
    source = Path(device_runner.__file__).read_text()
    for spec in RUNTIME_TABLE:  # the other install hints name the table's distributions
        assert spec is tflite or f"pip install {spec.dist}" in source, spec.runtime


def test_rows_are_built_by_keyword_and_name_their_modules():
    import dataclasses
    import importlib.util

    with pytest.raises(TypeError):
        type(RUNTIME_TABLE[0])(*dataclasses.astuple(RUNTIME_TABLE[0]))  # by position: refused
    for spec in RUNTIME_TABLE:
        assert dataclasses.replace(spec) == spec
        for column in ("session_module", "native_tool_module", "profiler_module", "arm_counts_module"):
            name = getattr(spec, column)
            assert name is None or name.startswith(f"ssc_deploy.export.targets.{spec.target}."), (spec.target, column)
            assert name is None or importlib.util.find_spec(name) is not None, name
        assert (spec.profiler_module is None) == bool(spec.no_profiler)
        assert (spec.arm_counts_module is not None) <= spec.emulated_counts
        assert {p for p, _ in spec.not_exported}.isdisjoint(spec.precisions)
        assert spec.default_lowering in spec.probe_lowerings and spec.fastest_lowering in spec.probe_lowerings
    assert by_target("tflite").no_profiler.startswith("LiteRT's Python wheel has no per-op profiler")


def test_the_rootfs_runtime_check_reports_what_the_host_has():
    """The check setup_rootfs runs under emulation, generated from the table, run here on the host."""
    from ssc_deploy.devices.emulated import OPTIONAL_RUNTIMES, runtime_check_code
    from ssc_deploy.devices.host import HostDevice

    out = subprocess.run([sys.executable, "-c", runtime_check_code()], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    meta = json.loads(out.stdout.strip().splitlines()[-1])
    assert meta["errors"] == {} and meta["machine"] and meta["python"]
    assert {k: v for k, v in meta["runtimes"].items() if k != "numpy"} == HostDevice().info().runtimes
    assert OPTIONAL_RUNTIMES == ("executorch",)


def test_consumers_read_the_table():
    from ssc_deploy.devices.native_tools import tool_module
    from ssc_deploy.export.targets import TARGETS

    assert tuple(TARGETS) == TARGET_NAMES
    for name, module in TARGETS.items():
        assert (module.SUFFIX, module.RUNTIME) == (by_target(name).suffix, by_target(name).runtime)
    assert [tool_module(rt).__name__ for rt in RUNTIME_NAMES] == [s.native_tool_module for s in RUNTIME_TABLE]
    assert dist_pairs()[-1] == ("tflite", "tflite-runtime")


def test_artifact_type_comes_from_the_suffix():
    from ssc_deploy.export.readers.artifact import target_of

    assert [target_of(f"m{s}") for s in SUFFIXES] == list(TARGET_NAMES)
    with pytest.raises(SscDeployError, match=r"^m\.h5: unknown artifact type '\.h5' \(expected \.onnx, \.pte or \.tflite\)$"):
        target_of("m.h5")


def test_the_android_probe_reports_what_the_host_has():
    from ssc_deploy.devices.android import _PROBE_PY, parse_info
    from ssc_deploy.devices.host import HostDevice

    out = subprocess.run([sys.executable, "-c", _PROBE_PY], capture_output=True, text=True, timeout=60).stdout
    assert parse_info(out)["pyinfo"]["runtimes"] == HostDevice().info().runtimes
    assert set(HostDevice().info().runtimes) == set(RUNTIME_NAMES)  # all three are installed here


def test_table_sessions_timing_and_runtime_free_modules_import_without_torch():
    code = (
        "import sys\n"
        "import ssc_deploy.runtimes, ssc_deploy.sessions, ssc_deploy.timing, ssc_deploy.quiet\n"
        "import ssc_deploy.export.targets, ssc_deploy.export.readers.artifact, ssc_deploy.runtime_bench.report\n"
        "import ssc_deploy.devices.host, ssc_deploy.devices.android, ssc_deploy.devices.native_tools\n"
        "print(sorted(m for m in ('torch', 'onnxruntime', 'executorch', 'ai_edge_litert') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def _conv_onnx(path: Path) -> np.ndarray:
    """A 1x1 conv (2 -> 4 channels) on a 1 x 2 x 3 x 3 input, written with onnx's helpers; returns its weight."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).standard_normal((4, 2, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w"], ["y"])], "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 3, 3])],
        [numpy_helper.from_array(w, "w")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8), str(path))
    return w


def test_load_runner_runs_images_one_by_one_and_profiles(tmp_path):
    from ssc_deploy.export.targets.onnx.session import OPTIMIZED_GRAPH
    from ssc_deploy.sessions import load_runner, run_each

    w = _conv_onnx(tmp_path / "conv.onnx")
    images = np.random.default_rng(1).standard_normal((3, 2, 3, 3)).astype(np.float32)
    expected = np.einsum("oi,nihw->nohw", w[:, :, 0, 0], images)
    for name in ("onnx", "onnxruntime"):
        session = load_runner(name, tmp_path / "conv.onnx")
        assert session.runtime == "onnxruntime" and session.input_shape == (1, 2, 3, 3)
        np.testing.assert_allclose(run_each(session, images), expected, rtol=1e-5, atol=1e-5)
    with pytest.raises(SscDeployError, match="loaded without profiling"):
        session.end_profile()

    profiled = load_runner("onnx", tmp_path / "conv.onnx", profile_dir=tmp_path)
    profiled(images[:1])
    trace = json.loads(profiled.end_profile().read_text())
    assert any(e.get("name") == "model_run" for e in trace)
    assert (tmp_path / OPTIMIZED_GRAPH).is_file()
    with pytest.raises(SscDeployError, match="unknown runtime 'coreml'"):
        load_runner("coreml", tmp_path / "conv.onnx")


def test_time_interleaved_times_every_runner_each_round():
    from ssc_deploy.timing import median, medians, time_interleaved

    calls = {"a": 0, "b": 0}

    def runner(key):
        def run(x):
            calls[key] += 1
            return x

        return run

    times = time_interleaved({k: runner(k) for k in calls}, np.zeros((1, 2)), rounds=4, calls=3, warmup=2)
    assert {k: len(v) for k, v in times.items()} == {"a": 4, "b": 4}
    assert calls == {"a": 2 + 4 * 3, "b": 2 + 4 * 3}
    assert all(t > 0 for v in times.values() for t in v)
    assert median([3.0, 1.0, 2.0, 10.0]) == 2.5 and medians({"x": [1.0, 5.0, 2.0]}) == {"x": 2.0}
