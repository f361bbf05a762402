"""The standalone device runner and the host device that runs it, on real artifacts and runtimes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from ssc_deploy.devices import DeviceError, resolve_device
from ssc_deploy.devices.host import RUNNER, HostDevice, parse_runner_output
from ssc_deploy.devices.runner.device_runner import summarize_latency

KEYS = {"ok", "runtime", "runtime_version", "threads", "load_ms", "latency_ms", "runs", "warmup", "throughput_ips",
        "peak_rss_mb", "top1", "top5", "n_eval", "parity", "machine", "python"}


def _tiny_net():
    import torch
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10)).eval()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    """The same tiny net exported with the stack's plain calls, plus inputs with labels and PyTorch logits."""
    import torch

    d = tmp_path_factory.mktemp("runner")
    net = _tiny_net()
    x1 = torch.randn(1, 3, 16, 16)
    torch.onnx.export(net, (x1,), str(d / "m.onnx"), opset_version=17, dynamo=False)
    import litert_torch

    litert_torch.convert(net, (x1,)).export(str(d / "m.tflite"))
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    prog = to_edge_transform_and_lower(torch.export.export(net, (x1,)), partitioner=[XnnpackPartitioner()])
    (d / "m.pte").write_bytes(prog.to_executorch().buffer)
    x = torch.randn(12, 3, 16, 16)
    with torch.no_grad():
        ref = net(x).numpy()
    labels = np.random.default_rng(1).integers(0, 10, size=12).astype(np.int64)
    np.savez(d / "in.npz", x=x.numpy(), labels=labels, reference=ref)
    return {"onnxruntime": d / "m.onnx", "tflite": d / "m.tflite", "executorch": d / "m.pte", "inputs": d / "in.npz",
            "dir": d}


def run_runner(*args: str, env: dict | None = None) -> tuple[int, list[str]]:
    proc = subprocess.run([sys.executable, str(RUNNER), *args], capture_output=True, text=True, timeout=300, env=env)
    return proc.returncode, proc.stdout.strip().splitlines()


@pytest.mark.parametrize("runtime", ["onnxruntime", "tflite", "executorch"])
def test_runner_measures_each_runtime(artifacts, runtime):
    rc, lines = run_runner("--artifact", str(artifacts[runtime]), "--runtime", runtime, "--threads", "1",
                           "--warmup", "1", "--runs", "5", "--inputs", str(artifacts["inputs"]))
    res = json.loads(lines[-1])
    assert rc == 0, res
    assert KEYS <= set(res)
    assert res["ok"] is True and res["runtime"] == runtime and res["threads"] == 1 and res["runs"] == 5
    lat = res["latency_ms"]
    assert 0 < lat["min"] <= lat["p10"] <= lat["median"] <= lat["p90"]
    assert res["peak_rss_mb"] > 10 and res["load_ms"] > 0
    assert res["parity"]["max_abs_diff"] < 1e-4 and res["parity"]["top1_agreement"] == 1.0
    with np.load(artifacts["inputs"]) as z:
        expected = float(np.mean(z["reference"].argmax(1) == z["labels"]))
        expected5 = float(np.mean((np.argsort(-z["reference"], 1)[:, :5] == z["labels"][:, None]).any(1)))
    assert res["n_eval"] == 12
    assert res["top1"] == pytest.approx(expected) and res["top5"] == pytest.approx(expected5)
    assert 0 < res["model_rss_mb"] < res["peak_rss_mb"]
    assert res["planned_activation_bytes"] == (_planned_by_executorch(artifacts[runtime])
                                               if runtime == "executorch" else None)


def _planned_by_executorch(pte: Path) -> int:
    """The forward plan's non-constant buffer bytes as ExecuTorch's own deserializer reads them (entry 0 reserved)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(pte.read_bytes())
    program = getattr(program, "program", program)
    (plan,) = [p for p in program.execution_plan if p.name == "forward"]
    return sum(plan.non_const_buffer_sizes[1:])


def test_runner_evaluates_only_n_eval_images(artifacts):
    rc, lines = run_runner("--artifact", str(artifacts["onnxruntime"]), "--runtime", "onnxruntime", "--runs", "2",
                           "--warmup", "0", "--inputs", str(artifacts["inputs"]), "--n-eval", "5")
    res = json.loads(lines[-1])
    assert rc == 0, res
    assert res["n_eval"] == 5 and res["parity"]["n"] == 5


def test_runner_without_inputs_times_a_random_input(artifacts):
    rc, lines = run_runner("--artifact", str(artifacts["onnxruntime"]), "--runtime", "onnxruntime", "--runs", "3",
                           "--warmup", "0")
    res = json.loads(lines[-1])
    assert rc == 0 and res["ok"] and res["top1"] is None and res["parity"] is None
    assert res["input_shape"] == [1, 3, 16, 16]


def test_runner_imports_no_torch_and_no_ssc_deploy(artifacts):
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['device_runner.py', '--artifact', {str(artifacts['onnxruntime'])!r}, '--runtime', 'onnxruntime',"
        f" '--runs', '2', '--warmup', '0', '--inputs', {str(artifacts['inputs'])!r}]\n"
        "try:\n"
        f"    runpy.run_path({str(RUNNER)!r}, run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'ssc_deploy'))\n"
        "print('IMPORTED', bad)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          cwd=str(artifacts["dir"]))
    assert '"ok": true' in proc.stdout
    assert "IMPORTED []" in proc.stdout


@pytest.mark.parametrize("content", [b"", b"this is not a model at all" * 10])
def test_runner_reports_a_corrupt_artifact_as_one_json_line(tmp_path, content):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(content)
    rc, lines = run_runner("--artifact", str(bad), "--runtime", "onnxruntime", "--runs", "2")
    res = json.loads(lines[-1])
    assert rc == 1 and res["ok"] is False
    assert "broken.onnx" in res["error"] and "\n" not in res["error"]


def test_runner_reports_missing_file_and_wrong_runtime(artifacts, tmp_path):
    rc, lines = run_runner("--artifact", str(tmp_path / "nope.tflite"), "--runtime", "tflite")
    assert rc == 1 and "no such artifact" in json.loads(lines[-1])["error"]
    rc, lines = run_runner("--artifact", str(artifacts["onnxruntime"]), "--runtime", "tflite", "--runs", "2")
    res = json.loads(lines[-1])
    assert rc == 1 and "LiteRT could not load m.onnx" in res["error"]


def test_runner_names_a_layout_mismatch(artifacts):
    rc, lines = run_runner("--artifact", str(artifacts["onnxruntime"]), "--runtime", "onnxruntime", "--runs", "2",
                           "--inputs", str(artifacts["inputs"]), "--layout", "NHWC")
    res = json.loads(lines[-1])
    assert rc == 1 and "does not match the model's [1, 3, 16, 16]" in res["error"]


def test_runner_reports_a_runtime_that_is_not_installed(artifacts, tmp_path):
    # A directory first on sys.path whose 'onnxruntime' cannot be imported, as on a board without it.
    shadow = tmp_path / "shadow"
    (shadow / "onnxruntime").mkdir(parents=True)
    (shadow / "onnxruntime" / "__init__.py").write_text("raise ImportError('No module named onnxruntime')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow))
    rc, lines = run_runner("--artifact", str(artifacts["onnxruntime"]), "--runtime", "onnxruntime", "--runs", "2",
                           env=env)
    res = json.loads(lines[-1])
    assert rc == 1 and "'onnxruntime' is not installed" in res["error"]


def test_runner_rejects_bad_inputs_file(artifacts, tmp_path):
    bad = tmp_path / "in.npz"
    np.savez(bad, y=np.zeros(3))
    rc, lines = run_runner("--artifact", str(artifacts["onnxruntime"]), "--runtime", "onnxruntime", "--inputs", str(bad))
    assert rc == 1 and "has no array 'x'" in json.loads(lines[-1])["error"]


def test_summarize_latency_matches_numpy():
    vals = [5.0, 1.0, 3.0, 2.0, 4.0, 10.0, 7.0]
    s = summarize_latency(vals)
    assert s["median"] == pytest.approx(np.median(vals))
    assert s["p10"] == pytest.approx(np.percentile(vals, 10)) and s["p90"] == pytest.approx(np.percentile(vals, 90))
    assert s["min"] == 1.0 and s["mean"] == pytest.approx(np.mean(vals))


def test_host_device_runs_the_runner(artifacts):
    dev = resolve_device("host")
    assert isinstance(dev, HostDevice)
    info = dev.info()
    assert info.kind == "host" and info.cores >= 1 and info.machine and not info.emulated
    assert "onnxruntime" in info.runtimes
    paths = dev.stage([artifacts["tflite"], artifacts["inputs"]])
    assert Path(paths[artifacts["tflite"]]) == artifacts["tflite"].resolve()
    res = dev.run_runner(["--artifact", paths[artifacts["tflite"]], "--runtime", "tflite", "--runs", "3", "--warmup",
                          "1", "--threads", "2", "--inputs", paths[artifacts["inputs"]]], timeout=120)
    assert res["ok"] and res["threads"] == 2 and res["n_eval"] == 12


def test_host_device_errors(artifacts):
    with pytest.raises(DeviceError, match="did not finish within 1 s"):
        HostDevice().run_runner(["--artifact", str(artifacts["onnxruntime"]), "--runtime", "onnxruntime",
                                 "--runs", "100000000"], timeout=1)
    with pytest.raises(DeviceError, match="exited with code 1 and no result"):
        HostDevice(python="/bin/false").run_runner(["--artifact", "x.onnx"], timeout=10)
    rc, out, _ = HostDevice().run_command(["echo", "hi"], timeout=10)
    assert rc == 0 and out.strip() == "hi"


def test_parse_runner_output_takes_the_last_line_only():
    assert parse_runner_output('noise\n{"ok": true}\n') == {"ok": True}
    assert parse_runner_output('{"ok": true}\ntrailing noise') is None
    assert parse_runner_output("") is None


def test_the_runner_files_ship_with_the_package():
    """pyproject's package data takes every file of the runner's folder (it is not a Python package)."""
    import fnmatch
    import tomllib

    from ssc_deploy.devices.host import RUNNER_DIR, RUNNER_FILES

    text = (Path(__file__).resolve().parent.parent / "pyproject.toml").read_text()
    patterns = tomllib.loads(text)["tool"]["setuptools"]["package-data"]["ssc_deploy.devices"]
    shipped = [f for f in RUNNER_DIR.iterdir() if f.suffix == ".py"]
    assert sorted(shipped) == sorted(RUNNER_FILES) and all(f.is_file() for f in RUNNER_FILES)
    for f in shipped:
        assert any(fnmatch.fnmatch(f"runner/{f.name}", pat) for pat in patterns), f.name

