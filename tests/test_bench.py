"""``ssc-deploy bench``: real exports, real runtimes in subprocesses, outputs, ratios, failures."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from ssc_deploy.cli import main
from ssc_deploy.devices.base import DeviceInfo
from ssc_deploy.devices.host import HostDevice
from ssc_deploy.errors import SscDeployError
from ssc_deploy.models import list_models, register_model
from ssc_deploy.models.layers import Shift, conv_bn, ssc_offsets
from ssc_deploy.runtime_bench.harness import BenchSettings, run_bench
from ssc_deploy.runtime_bench.report import pareto_front

N_EVAL = 60
FAST = ["--runs", "5", "--warmup", "1", "--n-eval", str(N_EVAL)]


def _tiny(num_classes: int, in_size: int, width: int) -> nn.Module:
    """A few-thousand-parameter net with an SSC shift, small enough to train and export in seconds."""
    return nn.Sequential(conv_bn(3, 9, 3, stride=2), Shift(ssc_offsets(9)), conv_bn(9, width, 1), conv_bn(width, width, 3, 2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


if "bench-tiny" not in list_models():
    register_model("bench-tiny", family="bench-tiny", description="test net")(
        lambda num_classes=10, in_size=32: _tiny(num_classes, in_size, 18))
    register_model("bench-tiny-wide", family="bench-wide", description="test baseline")(
        lambda num_classes=10, in_size=32: _tiny(num_classes, in_size, 36))


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> dict[str, Path]:
    """A briefly trained bench-tiny checkpoint and ONNX/TFLite exports of it and of a trained wider baseline."""
    from ssc_deploy.export import export_model
    from ssc_deploy.train import train_model

    d = tmp_path_factory.mktemp("zoo")
    out = {}
    for name in ("bench-tiny", "bench-tiny-wide"):
        ckpt = d / f"{name}.pt"
        train_model(name, epochs=1, out=ckpt, progress=False, batch_size=64, lr=0.05, max_batches=8)
        out[f"{name}.pt"] = ckpt
        for res in export_model(str(ckpt), targets=("onnx", "tflite"), out_dir=d / "art", progress=False):
            out[f"{name}.{res.target}"] = Path(res.artifact)
    return out


def _pytorch_top1(ckpt: Path, n: int) -> float:
    import torch

    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.data import eval_batch

    c = load_checkpoint(ckpt)
    x, y = eval_batch(None, n, c.mean, c.std, c.in_size)
    with torch.no_grad():
        pred = c.build_model()(torch.from_numpy(x)).argmax(1).numpy()
    return float(np.mean(pred == y))


def test_bench_artifacts_against_a_baseline_with_every_output(zoo, tmp_path, capsys):
    db, js, cs, rep = tmp_path / "r.sqlite", tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "report"
    # The checkpoints are passed too: a manifest's checkpoint path is never loaded on its own (issue 12 #1).
    rc = main(["bench", str(zoo["bench-tiny.onnx"]), str(zoo["bench-tiny.tflite"]), str(zoo["bench-tiny-wide.onnx"]),
               str(zoo["bench-tiny-wide.tflite"]), str(zoo["bench-tiny.pt"]), str(zoo["bench-tiny-wide.pt"]),
               "--baselines", "bench-tiny-wide", "--threads", "1,2", *FAST,
               "--json", str(js), "--csv", str(cs), "--report", str(rep), "--db", str(db)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "ratios: model / bench-tiny-wide" in out and "stored as run 1" in out
    res = json.loads(js.read_text())
    assert res["schema"] == "ssc-deploy-bench/1" and res["status"] == "complete"
    assert res["devices"][0]["kind"] == "host" and res["devices"][0]["runtimes"]["onnxruntime"]
    rows = {(r["model"], r["runtime"], r["threads"]): r for r in res["rows"]}
    assert len(rows) == 8
    expected = _pytorch_top1(zoo["bench-tiny.pt"], N_EVAL)
    for (model, runtime, threads), r in rows.items():
        assert r["status"] == "ok" and r["source"] == "device-runner" and r["trained"]
        assert r["top1"] == pytest.approx(_pytorch_top1(zoo[f"{model}.pt"], N_EVAL) if model != "bench-tiny" else expected)
        assert r["parity_max_abs_diff"] < 1e-4 and r["n_eval"] == N_EVAL
        assert r["latency_p10_ms"] <= r["latency_median_ms"] <= r["latency_p90_ms"]
        assert r["peak_rss_mb"] > 10 and r["params"] > 0 and r["macs"] > 0 and r["runtime_version"]
        assert 0 < r["model_rss_mb"] < r["peak_rss_mb"] and r["planned_activation_bytes"] is None  # no .pte here
        base = rows[("bench-tiny-wide", runtime, threads)]
        assert r["size_ratio"] == pytest.approx(r["bytes"] / base["bytes"])
        assert r["latency_ratio"] == pytest.approx(r["latency_median_ms"] / base["latency_median_ms"])
        assert r["top1_delta"] == pytest.approx(r["top1"] - base["top1"])
    small = rows[("bench-tiny", "onnxruntime", 1)]
    assert small["params_ratio"] < 1 and small["role"] == "candidate"
    with open(cs, newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == 8 and float(lines[0]["latency_median_ms"]) > 0 and lines[0]["runtime_version"]
    assert float(lines[0]["model_rss_mb"]) > 0
    md = (rep / "report.md").read_text()
    assert "| host | bench-tiny |" in md and "![accuracy_vs_latency](accuracy_vs_latency.png)" in md
    for png in ("accuracy_vs_latency.png", "accuracy_vs_size.png", "accuracy_vs_macs.png"):
        assert (rep / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert main(["results", "--db", str(db)]) == 0
    assert "8/8" in capsys.readouterr().out


def test_bench_exports_a_checkpoint_and_builds_an_untrained_baseline(zoo, tmp_path):
    js = tmp_path / "b.json"
    rc = main(["bench", str(zoo["bench-tiny.pt"]), "--runtime", "onnxruntime", "--baselines", "bench-tiny-wide", *FAST,
               "--json", str(js), "--no-store", "--work-dir", str(tmp_path / "work")])
    assert rc == 0
    res = json.loads(js.read_text())
    rows = {r["model"]: r for r in res["rows"]}
    cand, base = rows["bench-tiny"], rows["bench-tiny-wide"]
    assert cand["status"] == base["status"] == "ok"
    assert cand["top1"] == pytest.approx(_pytorch_top1(zoo["bench-tiny.pt"], N_EVAL))
    assert base["trained"] is False and base["top1"] is None and base["role"] == "baseline"
    assert base["parity_max_abs_diff"] < 1e-4  # still verified against its own PyTorch weights
    assert cand["latency_ratio"] > 0 and cand["top1_delta"] is None
    assert Path(cand["artifact"]).is_file() and Path(cand["artifact"]).suffix == ".onnx"
    models = {m["name"]: m for m in res["models"]}
    assert any("untrained" in n for n in models["bench-tiny-wide"]["notes"])
    # The untrained baseline is exported from the net in memory: no checkpoint is written for it.
    assert models["bench-tiny-wide"]["checkpoint"] is None and not (tmp_path / "work" / "baselines").exists()
    man = json.loads(Path(base["artifact"] + ".manifest.json").read_text())
    assert man["model"]["trained"] is False and man["source"]["checkpoint"] is None


def test_a_failed_row_keeps_the_other_results(zoo, tmp_path, capsys):
    broken = tmp_path / "broken.tflite"
    broken.write_bytes(b"\x00garbage" * 50)
    js = tmp_path / "b.json"
    rc = main(["bench", str(zoo["bench-tiny.onnx"]), str(broken), "--baselines", "", *FAST, "--json", str(js),
               "--db", str(tmp_path / "r.sqlite")])
    cap = capsys.readouterr()
    assert rc == 1
    assert cap.err == "error: 1 of 2 measurements did not pass (see the status column); the other results were kept\n"
    rows = {r["model"]: r for r in json.loads(js.read_text())["rows"]}
    assert rows["bench-tiny"]["status"] == "ok" and rows["bench-tiny"]["latency_median_ms"] > 0
    assert rows["broken"]["status"] == "failed" and "LiteRT could not load broken.tflite" in rows["broken"]["reason"]
    assert "failed: LiteRT could not load" in cap.out


def test_a_broken_results_store_is_refused_before_measuring(zoo, tmp_path, capsys):
    junk, js = tmp_path / "junk.sqlite", tmp_path / "b.json"
    junk.write_bytes(b"not sqlite at all" * 64)
    rc = main(["bench", str(zoo["bench-tiny.onnx"]), "--baselines", "", *FAST, "--json", str(js), "--db", str(junk)])
    err = capsys.readouterr().err
    assert rc != 0 and "not a results database" in err and err.count("\n") == 1
    assert not js.exists()  # nothing was measured (issue 12 #6: the store is checked up front)
    assert junk.read_bytes() == b"not sqlite at all" * 64
    import sqlite3

    foreign = tmp_path / "other-app.sqlite"  # another application's database: refused, left untouched
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    before = foreign.read_bytes()
    rc = main(["bench", str(zoo["bench-tiny.onnx"]), "--baselines", "", *FAST, "--json", str(js), "--db", str(foreign)])
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("error: ") and err.count("\n") == 1 and "not an ssc-deploy results store" in err, err
    assert foreign.read_bytes() == before and not js.exists()


def test_a_store_that_cannot_be_written_is_found_before_measuring(zoo, tmp_path, capsys, monkeypatch):
    """Issue 12 #6: the cache path a file, or --db on a read-only file system, used to surface only
    after the run (and lose it). Now one line before any measurement, nothing written."""
    from tests.support.filesystems import remount_read_only, tmpfs

    js = tmp_path / "b.json"
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache directory should be\n")
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(blocker))
    _one_line_error(capsys, ["bench", str(zoo["bench-tiny.onnx"]), "--baselines", "", *FAST, "--json", str(js)],
                    f"{blocker} is a file, not a directory")
    assert not js.exists() and blocker.read_text() == "a file where the cache directory should be\n"
    with tmpfs(tmp_path / "ro") as ro:
        remount_read_only(ro)
        _one_line_error(capsys, ["bench", str(zoo["bench-tiny.onnx"]), "--baselines", "", *FAST, "--json", str(js),
                                 "--db", str(ro / "r.sqlite")], "read-only file system")
    assert not js.exists()


def _one_line_error(capsys, argv: list[str], needle: str) -> None:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0, argv
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert "Traceback" not in err


def test_bad_input_gets_one_line(zoo, tmp_path, capsys):
    onnx = str(zoo["bench-tiny.onnx"])
    nb = ["--baselines", "", "--no-store"]
    _one_line_error(capsys, ["bench", str(tmp_path / "missing.onnx"), *nb], "missing.onnx: no such file")
    _one_line_error(capsys, ["bench", str(tmp_path), *nb], "is a directory")
    (tmp_path / "notes.txt").write_text("hi")
    _one_line_error(capsys, ["bench", str(tmp_path / "notes.txt"), *nb], "not an artifact (.onnx, .pte, .tflite)")
    _one_line_error(capsys, ["bench", onnx, "--runtime", "openvino", *nb], "unknown runtime 'openvino'")
    bare = tmp_path / "bare.onnx"  # no manifest, so no checkpoint to export a TFLite file from
    shutil.copy(onnx, bare)
    _one_line_error(capsys, ["bench", str(bare), "--runtime", "tflite", *nb], "nothing to measure")
    _one_line_error(capsys, ["bench", onnx, "--threads", "0,x", *nb], "--threads takes comma-separated")
    _one_line_error(capsys, ["bench", onnx, "--runner", "tflite", *nb], "--runner takes KIND=PATH")
    _one_line_error(capsys, ["bench", onnx, "--runner", "coreml=/x", *nb], "unknown kind 'coreml'")
    _one_line_error(capsys, ["bench", onnx, "--baselines", "nosuchnet", "--no-store"], "unknown model 'nosuchnet'")
    _one_line_error(capsys, ["bench", onnx, "--baselines", "bench-tiny-wide", "--ratio-to", "x", "--no-store"],
                    "--ratio-to x: not among --baselines")
    (tmp_path / "afile").write_text("")
    _one_line_error(capsys, ["bench", onnx, "--report", str(tmp_path / "afile"), *nb], "is not a directory")
    # An artifact changed after export no longer matches its manifest.
    d = tmp_path / "tampered"
    d.mkdir()
    art = d / zoo["bench-tiny.onnx"].name
    shutil.copy(zoo["bench-tiny.onnx"], art)
    shutil.copy(str(zoo["bench-tiny.onnx"]) + ".manifest.json", str(art) + ".manifest.json")
    with open(art, "ab") as f:
        f.write(b"\x00")
    _one_line_error(capsys, ["bench", str(art), *nb], "does not match its manifest's sha256")


def test_models_with_different_input_sizes_are_refused(zoo, tmp_path, capsys):
    from ssc_deploy.export import export_module, load_for_export

    other = export_module(*load_for_export(None, model_name="bench-tiny-wide", in_size=24), targets=("onnx",),
                          out_dir=tmp_path, progress=False)[0].artifact
    _one_line_error(capsys, ["bench", str(zoo["bench-tiny.onnx"]), str(other), "--baselines", "", "--no-store"],
                    "different input sizes cannot be compared: bench-tiny takes 3x32x32, bench-tiny-wide takes 3x24x24")


class _LabelledHost(HostDevice):
    """This host under another name, optionally labelled emulated: two devices without remote hardware."""

    def __init__(self, name: str, emulated: bool) -> None:
        super().__init__()
        self._label, self._emulated = name, emulated

    def info(self) -> DeviceInfo:
        info = DeviceInfo(**{**super().info().__dict__})
        info.name, info.kind, info.emulated = self._label, "arm64-emulated" if self._emulated else "host", self._emulated
        return info


def test_several_devices_get_a_device_column_and_emulated_latency_is_never_a_ratio(zoo, tmp_path):
    settings = BenchSettings(runtimes=["onnxruntime"], warmup=1, runs=5, n_eval=20, baselines=["bench-tiny-wide"])
    res = run_bench([zoo["bench-tiny.onnx"], zoo["bench-tiny-wide.onnx"]], settings,
                    devices=[HostDevice(), _LabelledHost("emu", emulated=True)])
    rows = {(r["device"], r["model"]): r for r in res["rows"]}
    assert set(rows) == {("host", "bench-tiny"), ("host", "bench-tiny-wide"), ("emu", "bench-tiny"),
                         ("emu", "bench-tiny-wide")}
    assert all(r["status"] == "ok" for r in rows.values())
    assert rows[("host", "bench-tiny")]["latency_ratio"] > 0
    emu = rows[("emu", "bench-tiny")]
    assert emu["emulated"] and emu["latency_ratio"] is None and emu["size_ratio"] < 1
    assert [d["name"] for d in res["devices"]] == ["host", "emu"]


class _CrashingHost(HostDevice):
    """The real host, except that running the wider net crashes the device layer with a plain exception."""

    def run_runner(self, args, timeout):
        if any("bench-tiny-wide" in str(a) for a in args):
            raise ValueError("device layer bug")
        return super().run_runner(args, timeout)


def test_a_crashing_device_call_fails_its_row_only(zoo):
    settings = BenchSettings(runtimes=["onnxruntime"], warmup=1, runs=5, n_eval=20, baselines=[])
    res = run_bench([zoo["bench-tiny.onnx"], zoo["bench-tiny-wide.onnx"]], settings, devices=[_CrashingHost()])
    rows = {r["model"]: r for r in res["rows"]}
    assert rows["bench-tiny"]["status"] == "ok" and rows["bench-tiny"]["latency_median_ms"] > 0
    assert rows["bench-tiny-wide"]["status"] == "failed"
    assert rows["bench-tiny-wide"]["reason"] == "ValueError: device layer bug"
    assert res["status"] == "partial"


def test_native_tool_rows_sit_beside_the_runner_rows(zoo, tmp_path):
    fake_tools = pytest.importorskip("support.fake_tools", reason="needs the devices test support")
    tool = fake_tools.build_fake_benchmark_model(tmp_path / "tools", "x86_64")
    if tool is None:
        pytest.skip("no C compiler to build the stand-in benchmark_model")
    js = tmp_path / "b.json"
    rc = main(["bench", str(zoo["bench-tiny.tflite"]), "--baselines", "", *FAST, "--runner", f"tflite={tool}",
               "--json", str(js), "--no-store"])
    assert rc == 0
    rows = {r["source"]: r for r in json.loads(js.read_text())["rows"]}
    assert rows["device-runner"]["status"] == "ok" and rows["device-runner"]["top1"] is not None
    native = rows["native-tool"]
    assert native["status"] == "ok" and native["top1"] is None
    assert native["latency_mean_ms"] == pytest.approx(4.0105)


def test_pareto_front():
    pts = [(1.0, 80.0), (2.0, 85.0), (1.5, 70.0), (3.0, 84.0), (0.5, 60.0)]
    assert pareto_front(pts) == [(0.5, 60.0), (1.0, 80.0), (2.0, 85.0)]


def test_run_bench_rejects_bad_settings(zoo):
    with pytest.raises(SscDeployError, match="--runs must be at least 1"):
        run_bench([zoo["bench-tiny.onnx"]], BenchSettings(runs=0, baselines=[]))
    with pytest.raises(SscDeployError, match="unknown lowering 'fastest-please'"):
        run_bench([zoo["bench-tiny.pt"]], BenchSettings(lowering="fastest-please", baselines=[]))
