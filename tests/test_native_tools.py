"""The native benchmark tools' output parsers on outputs in their documented formats, the
command lines they are given, and the ABI check on real ELF executables."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ssc_deploy.devices.base import DeviceError
from ssc_deploy.devices.native_tools import check_tool, elf_machine, native_command, tool_module
from ssc_deploy.runtimes import RUNTIME_NAMES, by_runtime
from support.fake_tools import build_fake_benchmark_model

# Each runtime's parser, from the module its row of the runtime table names.
parse_benchmark_model = tool_module("tflite").parse
parse_onnxruntime_perf_test = tool_module("onnxruntime").parse
parse_executor_runner = tool_module("executorch").parse

BENCHMARK_MODEL_FULL = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [2]
INFO: Graph: [/data/local/tmp/ssc-deploy/m.tflite]
INFO: Loaded model /data/local/tmp/ssc-deploy/m.tflite
INFO: Initialized TensorFlow Lite runtime.
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
INFO: The input model file size (MB): 0.593
INFO: Initialized session in 12.345ms.
INFO: Running benchmark for at least 5 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=118 first=6912 curr=4012 min=3950 max=6912 avg=4231.7 std=290
INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=250 first=4102 curr=3990 min=3.801e+03 max=4.5e+03 avg=3.9802e+03 std=81
INFO: Inference timings in us: Init: 12345, First inference: 6912, Warmup (avg): 4231.7, Inference (avg): 3980.2
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your one's own risk.
INFO: Memory footprint delta from the start of the tool (MB): init=3.5 overall=10.2
INFO: Overall peak memory footprint (MB) via periodic monitoring: 15.375
"""

# An older build: no INFO: prefixes, no memory lines, no summary line.
BENCHMARK_MODEL_MINIMAL = """\
Initialized session in 3.1ms.
count=10 first=1200 curr=1000 min=990 max=1200 avg=1020 std=60
"""

ORT_PERF_TEST = """\
Session creation time cost: 0.0523 s
First inference time cost: 3 ms
Total inference time cost: 0.2049 s
Total inference requests: 50
Average inference time cost: 4.098 ms
Total inference run time: 0.205 s
Number of inferences per second: 243.9
Avg CPU usage: 98 %
Peak working set size: 41943040 bytes
Avg CPU usage:98
Peak working set size:41943040
Runs:50
Min Latency: 0.003901 s
Max Latency: 0.00512 s
P50 Latency: 4.05e-03 s
P90 Latency: 0.0043 s
P95 Latency: 0.0045 s
P99 Latency: 0.0050 s
P999 Latency: 0.00512 s
"""

ORT_PERF_TEST_MINIMAL = "Setting intra_op_num_threads to 1\nAverage inference time cost: 1.5E+01 ms\n"

EXECUTOR_RUNNER_OLD = """\
I 00:00:00.001234 executorch:executor_runner.cpp:73] Model file /data/local/tmp/m.pte is loaded.
I 00:00:00.001301 executorch:executor_runner.cpp:82] Using method forward
I 00:00:00.051002 executorch:executor_runner.cpp:171] Model executed successfully 20 time(s) in 84.200000 ms.
I 00:00:00.051010 executorch:executor_runner.cpp:175] 1 outputs:
"""

EXECUTOR_RUNNER_NEW = """\
I 00:00:00.001 executorch:executor_runner.cpp:73] Model file m.pte is loaded.
I 00:00:00.010 executorch:executor_runner.cpp:190] Iteration 0 of 4: 5.5 ms
I 00:00:00.015 executorch:executor_runner.cpp:190] Iteration 1 of 4: 4.0 ms
I 00:00:00.019 executorch:executor_runner.cpp:190] Iteration 2 of 4: 4.2 ms
I 00:00:00.023 executorch:executor_runner.cpp:190] Iteration 3 of 4: 3.9e+00 ms
I 00:00:00.024 executorch:executor_runner.cpp:200] Model executed successfully 4 time(s) in 17.6 ms.
"""


def test_benchmark_model_uses_the_timed_runs_in_ms():
    r = parse_benchmark_model(BENCHMARK_MODEL_FULL)
    lat = r["latency_ms"]
    assert lat["mean"] == pytest.approx(3.9802)  # scientific notation, us -> ms
    assert lat["min"] == pytest.approx(3.801) and lat["max"] == pytest.approx(4.5)
    assert lat["std"] == pytest.approx(0.081) and lat["count"] == 250
    assert "median" not in lat  # benchmark_model gives no median
    assert r["init_ms"] == pytest.approx(12.345)
    assert r["first_inference_ms"] == pytest.approx(6.912)
    assert r["warmup_mean_ms"] == pytest.approx(4.2317)
    assert r["peak_memory_mb"] == pytest.approx(15.375)
    assert r["memory_delta_overall_mb"] == pytest.approx(10.2)


def test_benchmark_model_without_optional_lines():
    r = parse_benchmark_model(BENCHMARK_MODEL_MINIMAL)
    assert r["latency_ms"]["mean"] == pytest.approx(1.02)
    assert "peak_memory_mb" not in r and "init_ms" not in r


def test_benchmark_model_summary_line_only():
    r = parse_benchmark_model("INFO: Inference timings in us: Init: 100, First inference: 2e3, Warmup (avg): 1500, Inference (avg): 1.25e+03\n")
    assert r["latency_ms"] == {"mean": pytest.approx(1.25)}
    assert r["first_inference_ms"] == pytest.approx(2.0)


def test_onnxruntime_perf_test_percentiles_and_memory():
    r = parse_onnxruntime_perf_test(ORT_PERF_TEST)
    lat = r["latency_ms"]
    assert lat["mean"] == pytest.approx(4.098)
    assert lat["median"] == pytest.approx(4.05)  # P50, seconds in scientific notation -> ms
    assert lat["min"] == pytest.approx(3.901) and lat["max"] == pytest.approx(5.12)
    assert lat["p99"] == pytest.approx(5.0) and lat["p999"] == pytest.approx(5.12)
    assert lat["count"] == 50
    assert r["peak_memory_mb"] == pytest.approx(40.0)
    assert r["init_ms"] == pytest.approx(52.3)
    assert r["throughput_per_s"] == pytest.approx(243.9)


def test_onnxruntime_perf_test_minimal():
    r = parse_onnxruntime_perf_test(ORT_PERF_TEST_MINIMAL)
    assert r["latency_ms"] == {"mean": pytest.approx(15.0)}
    assert "peak_memory_mb" not in r


def test_executor_runner_total_only():
    r = parse_executor_runner(EXECUTOR_RUNNER_OLD)
    assert r["latency_ms"] == {"mean": pytest.approx(4.21), "count": 20}
    assert r["total_ms"] == pytest.approx(84.2)


def test_executor_runner_per_iteration_lines():
    r = parse_executor_runner(EXECUTOR_RUNNER_NEW)
    lat = r["latency_ms"]
    assert lat["median"] == pytest.approx(4.1)
    assert lat["min"] == pytest.approx(3.9) and lat["max"] == pytest.approx(5.5)
    assert lat["count"] == 4


@pytest.mark.parametrize(
    "parser,text",
    [
        (parse_benchmark_model, "INFO: Loaded model m.tflite\nERROR: Failed to allocate tensors!\n"),
        (parse_onnxruntime_perf_test, "Load model from m.onnx failed: Protobuf parsing failed.\n"),
        (parse_executor_runner, "E executor_runner.cpp:70] Failed to open model file\n"),
    ],
)
def test_parsers_refuse_output_without_timings(parser, text):
    with pytest.raises(ValueError, match="no .*line"):
        parser(text)


def test_native_commands_use_the_documented_flags():
    assert native_command("tflite", "/d/benchmark_model", "/d/m.tflite", 2, 5, 50) == [
        "/d/benchmark_model", "--graph=/d/m.tflite", "--num_threads=2", "--warmup_runs=5", "--num_runs=50",
        "--use_xnnpack=true", "--report_peak_memory_footprint=true",
    ]
    assert native_command("onnxruntime", "/d/onnxruntime_perf_test", "/d/m.onnx", 1, 5, 30) == [
        "/d/onnxruntime_perf_test", "-e", "cpu", "-m", "times", "-r", "30", "-x", "1", "-I", "/d/m.onnx",
    ]
    pinned = native_command("executorch", "/d/executor_runner", "/d/m.pte", 4, 0, 10, pin_cores="4-7")
    assert pinned[:3] == ["taskset", "-c", "4-7"]
    assert "--model_path=/d/m.pte" in pinned and "--num_executions=10" in pinned and "--cpu_threads=4" in pinned
    with pytest.raises(DeviceError, match=r"^unknown runtime 'tensorrt' for a native tool \(use onnxruntime, "):
        native_command("tensorrt", "t", "m", 1, 1, 1)


def test_every_runtime_names_its_tool_module():
    for name in RUNTIME_NAMES:
        tool = tool_module(name)
        assert callable(tool.command) and callable(tool.parse) and isinstance(tool.WARMUP_IN_RUNS, bool)
        assert tool.__name__ == by_runtime(name).native_tool_module
    # Only executor_runner lacks a warm-up flag, so only its warm-up runs are folded into the count.
    assert [n for n in RUNTIME_NAMES if tool_module(n).WARMUP_IN_RUNS] == ["executorch"]


def test_elf_machine_and_abi_check(tmp_path: Path):
    host_sh = Path(shutil.which("sh")).resolve()
    assert elf_machine(host_sh) in ("x86_64", "aarch64")
    script = tmp_path / "tool.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    assert elf_machine(script) is None
    assert check_tool(script, "aarch64") == script  # scripts run anywhere
    with pytest.raises(DeviceError, match="native tool not found"):
        check_tool(tmp_path / "missing_benchmark_model", "aarch64")
    arm = build_fake_benchmark_model(tmp_path, "aarch64")
    if arm is None:
        pytest.skip("aarch64-linux-gnu-gcc is not installed (.ci/setup-devices.sh installs it)")
    assert elf_machine(arm) == "aarch64"
    assert check_tool(arm, "arm64-v8a") == arm
    with pytest.raises(DeviceError, match="built for aarch64, but the device is x86_64"):
        check_tool(arm, "x86_64")
