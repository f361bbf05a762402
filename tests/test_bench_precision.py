"""Precision in the benchmark (issue 13): int8 files beside fp32 ones, measured through the real runtimes;
the precision column and the columns against fp32 in the table, JSON, CSV, SQLite and report; the
accuracy check of quantized rows; an older results store migrated; logits compared across devices."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from ssc_deploy.cli import main
from ssc_deploy.devices.base import DeviceInfo
from ssc_deploy.devices.host import HostDevice
from ssc_deploy.models import list_models, register_model
from ssc_deploy.runtime_bench import store, store_compare
from ssc_deploy.runtime_bench.harness import BenchSettings, run_bench
from ssc_deploy.runtime_bench.table import print_result

N_EVAL = 60
FAST = ["--warmup", "1", "--runs", "5", "--n-eval", str(N_EVAL)]


def _tiny(num_classes: int, width: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, width, 3, stride=2, padding=1), nn.BatchNorm2d(width), nn.ReLU(),
                         nn.Conv2d(width, width, 3, padding=1, groups=width // 6), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


if "prec-tiny" not in list_models():
    register_model("prec-tiny", family="prec-tiny", description="test net")(
        lambda num_classes=10, in_size=32: _tiny(num_classes, 18))
    register_model("prec-tiny-wide", family="prec-wide", description="test baseline")(
        lambda num_classes=10, in_size=32: _tiny(num_classes, 36))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """A trained prec-tiny checkpoint and its real fp32 and int8 ONNX exports (int8 calibrated on 32
    images; the gate is kept wide so a briefly trained net exports, the bench's own check is tested apart)."""
    from ssc_deploy.export import QuantOptions, export_model
    from ssc_deploy.train import train_model

    d = tmp_path_factory.mktemp("prec")
    ckpt = d / "prec-tiny.pt"
    train_model("prec-tiny", epochs=2, out=ckpt, progress=False, batch_size=64, lr=0.05)
    out = {"pt": ckpt}
    for res in export_model(str(ckpt), targets=("onnx",), precisions=("fp32", "int8"), out_dir=d / "art",
                            progress=False, quant=QuantOptions(calib=32, gate_images=N_EVAL, max_drop=100.0)):
        out[res.manifest["precision"]] = Path(res.artifact)
    assert out["int8"].name == "prec-tiny.int8.onnx" and out["fp32"].name == "prec-tiny.onnx"
    return out


def _pytorch_top1(ckpt: Path, n: int) -> float:
    import torch

    from ssc_deploy.checkpoint import load_checkpoint
    from ssc_deploy.data import eval_batch

    c = load_checkpoint(ckpt)
    x, y = eval_batch(None, n, c.mean, c.std, c.in_size)
    with torch.no_grad():
        return float(np.mean(c.build_model()(torch.from_numpy(x)).argmax(1).numpy() == y))


def test_int8_rows_beside_fp32_in_every_output(files, tmp_path, capsys):
    """Artifacts in both precisions plus a baseline the bench exports itself in both (--precision):
    each int8 row is compared with its fp32 file and with the baseline's int8 file."""
    db, js, cs, rep = tmp_path / "r.sqlite", tmp_path / "b.json", tmp_path / "b.csv", tmp_path / "report"
    rc = main(["bench", str(files["fp32"]), str(files["int8"]), str(files["pt"]), "--baselines", "prec-tiny-wide",
               "--runtime", "onnxruntime", "--precision", "fp32,int8", *FAST,
               "--json", str(js), "--csv", str(cs), "--report", str(rep), "--db", str(db)])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "int8" in out and "vs fp32" in out
    res = json.loads(js.read_text())
    rows = {(r["model"], r["precision"]): r for r in res["rows"]}
    assert set(rows) == {("prec-tiny", "fp32"), ("prec-tiny", "int8"), ("prec-tiny-wide", "fp32"),
                         ("prec-tiny-wide", "int8")}
    assert all(r["status"] == "ok" for r in rows.values()), [r["reason"] for r in rows.values()]
    fp32, int8 = rows[("prec-tiny", "fp32")], rows[("prec-tiny", "int8")]
    assert int8["artifact"] == str(files["int8"]) and int8["quant_scheme"]
    assert int8["vs_fp32_size_ratio"] == pytest.approx(int8["bytes"] / fp32["bytes"]) and int8["bytes"] < fp32["bytes"]
    assert int8["vs_fp32_speedup"] == pytest.approx(fp32["latency_median_ms"] / int8["latency_median_ms"])
    assert int8["vs_fp32_top1_delta"] == pytest.approx(int8["top1"] - fp32["top1"])
    assert int8["eval_top1_pytorch"] == pytest.approx(_pytorch_top1(files["pt"], N_EVAL))
    assert fp32["top1"] == pytest.approx(int8["eval_top1_pytorch"])  # fp32 matches PyTorch
    assert fp32["vs_fp32_speedup"] is None and fp32["vs_fp32_size_ratio"] is None
    base = rows[("prec-tiny-wide", "int8")]  # exported by the bench, untrained: no accuracy
    assert Path(base["artifact"]).name.endswith(".int8.onnx") and base["top1"] is None
    assert int8["ratio_to"] == "prec-tiny-wide" and int8["size_ratio"] == pytest.approx(int8["bytes"] / base["bytes"])
    with open(cs, newline="") as f:
        lines = list(csv.DictReader(f))
    assert sorted(ln["precision"] for ln in lines) == ["fp32", "fp32", "int8", "int8"]
    assert float(next(ln for ln in lines if ln["artifact"] == str(files["int8"]))["vs_fp32_size_ratio"]) < 1
    with closing(sqlite3.connect(db)) as conn:
        stored = sorted(p for (p,) in conn.execute("SELECT precision FROM rows"))
    assert stored == ["fp32", "fp32", "int8", "int8"]
    md = (rep / "report.md").read_text()
    assert "| onnxruntime | int8 |" in md and "speed-up vs fp32" in md
    assert ("int8 does not pay here" in md) == (int8["vs_fp32_speedup"] < 1 or base["vs_fp32_speedup"] < 1)
    assert (rep / "accuracy_vs_latency.png").read_bytes()[:4] == b"\x89PNG"
    _check_uncertainty(res, rows, lines, db, md, rep)


def _check_uncertainty(res, rows, lines, db, md, rep):
    """Issue 23: every top-1 has its Wilson interval in JSON, CSV, SQLite and report.md; every delta its
    flips and McNemar p (checked against the per-image predictions); the flip matrix is in the report."""
    from ssc_deploy.accuracy_stats import flips, mcnemar_p, wilson_interval

    fp32, int8 = rows[("prec-tiny", "fp32")], rows[("prec-tiny", "int8")]
    model = next(m for m in res["models"] if m["name"] == "prec-tiny")
    labels, torch_pred = model["eval_labels"], model["eval_predictions_pytorch"]
    assert len(labels) == len(torch_pred) == N_EVAL == len(int8["predictions"]) == len(fp32["predictions"])
    for r in (fp32, int8):
        k = sum(int(a == b) for a, b in zip(r["predictions"], labels))
        assert r["top1"] == pytest.approx(k / N_EVAL)
        assert (r["top1_ci_low"], r["top1_ci_high"]) == pytest.approx(wilson_interval(k, N_EVAL))
        assert r["top1_ci_low"] < r["top1"] <= r["top1_ci_high"] or r["top1"] == 1.0
        vs_torch = flips(labels, torch_pred, r["predictions"])
        assert (r["vs_pytorch_right_to_wrong"], r["vs_pytorch_wrong_to_right"], r["vs_pytorch_changed"]) == (
            vs_torch.right_to_wrong, vs_torch.wrong_to_right, vs_torch.changed)
        assert r["vs_pytorch_p"] == mcnemar_p(vs_torch.right_to_wrong, vs_torch.wrong_to_right)
    f = flips(labels, fp32["predictions"], int8["predictions"])
    assert (int8["vs_fp32_right_to_wrong"], int8["vs_fp32_wrong_to_right"], int8["vs_fp32_changed"]) == (
        f.right_to_wrong, f.wrong_to_right, f.changed)
    assert int8["vs_fp32_p"] == f.p and int8["vs_fp32_top1_delta"] == pytest.approx(f.delta)
    assert fp32["vs_fp32_p"] is None and fp32["vs_pytorch_changed"] == 0  # an fp32 file predicts as PyTorch
    assert int8["vs_base_p"] is None  # the baseline is untrained: no accuracy to pair with
    line = next(ln for ln in lines if ln["artifact"] == str(files_int8(rows)))
    assert float(line["top1_ci_low"]) == pytest.approx(int8["top1_ci_low"]) and "predictions" not in line
    assert list(line).index("top1_ci_low") == list(line).index("top1") + 1
    with closing(sqlite3.connect(db)) as conn:
        (lo, hi, data), = conn.execute("SELECT top1_ci_low, top1_ci_high, data FROM rows WHERE precision = 'int8' "
                                       "AND model = 'prec-tiny'")
    assert (lo, hi) == pytest.approx((int8["top1_ci_low"], int8["top1_ci_high"]))
    assert "predictions" not in json.loads(data)  # per-image predictions stay in bench.json
    assert f"{int8['top1'] * 100:.1f} ±{(int8['top1_ci_high'] - int8['top1_ci_low']) * 50:.1f}" in md
    assert "## Images that flip" in md and "Flip matrix" in md and "| PyTorch fp32 | 0 |" in md
    verdict = "not significant" if int8["vs_fp32_p"] >= 0.05 else "significant"
    assert f"{int8['vs_fp32_right_to_wrong']} right->wrong, {int8['vs_fp32_wrong_to_right']} wrong->right" in md
    assert verdict in md
    lost = [i for i, (y, a, b) in enumerate(zip(labels, torch_pred, int8["predictions"])) if a == y and b != y]
    assert f"prec-tiny onnxruntime int8: {len(lost)} image(s)" in md
    if lost:
        assert "![images that flip](flips_int8.png)" in md and (rep / "flips_int8.png").read_bytes()[:4] == b"\x89PNG"


def files_int8(rows):
    return rows[("prec-tiny", "int8")]["artifact"]


class _LabelledHost(HostDevice):
    """The real host under another name: a second device with the same kernels."""

    def info(self) -> DeviceInfo:
        info = DeviceInfo(**{**super().info().__dict__})
        info.name = "host-2"
        return info


def test_a_quantized_row_is_checked_by_accuracy_and_compared_across_devices(files, tmp_path):
    """An int8 file far from fp32 logits passes on accuracy; a gate it cannot meet (edited into its
    manifest) fails verification with the reason; the second device's rows carry the logit diff."""
    d = tmp_path / "art"
    d.mkdir()
    for f in (files["fp32"], files["int8"]):
        for src in (f, f.with_name(f.name + ".manifest.json")):
            shutil.copy(src, d / src.name)
    man = d / "prec-tiny.int8.onnx.manifest.json"
    doc = json.loads(man.read_text())
    doc["quantization"]["accuracy"]["max_drop"] = -100.0  # no int8 file can be 100 points above fp32
    doc["quantization"]["accuracy"]["alpha"] = 1.0  # and the drop alone decides (no flips need be significant)
    man.write_text(json.dumps(doc))
    settings = BenchSettings(warmup=1, runs=3, n_eval=N_EVAL, baselines=[])
    res = run_bench([d / "prec-tiny.onnx", d / "prec-tiny.int8.onnx", files["pt"]], settings,
                    devices=[HostDevice(), _LabelledHost()])
    rows = {(r["device"], r["precision"]): r for r in res["rows"]}
    assert len(rows) == 4
    assert rows[("host", "fp32")]["status"] == "ok"
    bad = rows[("host", "int8")]
    assert bad["status"] == "verify-failed" and "points below PyTorch fp32" in bad["reason"]
    second = rows[("host-2", "int8")]
    assert second["device_diff_to"] == "host" and second["device_max_abs_diff"] == pytest.approx(0.0, abs=1e-5)
    assert second["device_top1_agreement"] == 1.0 and "device_max_abs_diff" not in rows[("host", "int8")]
    # the same file on the second device: no image flips, McNemar p 1; the first device's rows have no reference
    assert (second["device_right_to_wrong"], second["device_wrong_to_right"], second["device_changed"],
            second["device_p"]) == (0, 0, 0, 1.0)
    assert rows[("host", "int8")]["device_p"] is None
    assert "right->wrong" in bad["reason"] and "McNemar p" in bad["reason"]
    assert not any("_logits" in r for r in res["rows"])
    from rich.console import Console

    console = Console(record=True, width=250)
    print_result(res, console)
    text = console.export_text()
    assert "host-2 vs host: prec-tiny onnxruntime int8 x1: max |logit diff|" in text
    assert "on 60 images; 0 right->wrong, 0 wrong->right, McNemar p = 1 (not significant)" in text.replace("\n", " ")


def test_files_without_manifests_take_their_precision_from_the_name(files, tmp_path, capsys):
    for prec in ("fp32", "int8"):
        shutil.copy(files[prec], tmp_path / files[prec].name)
    rc = main(["bench", str(tmp_path / "prec-tiny.onnx"), str(tmp_path / "prec-tiny.int8.onnx"), "--baselines", "",
               "--warmup", "0", "--runs", "2", "--no-store", "--json", str(tmp_path / "b.json")])
    assert rc == 0, capsys.readouterr().out
    rows = json.loads((tmp_path / "b.json").read_text())["rows"]
    assert sorted((r["model"], r["precision"]) for r in rows) == [("prec-tiny", "fp32"), ("prec-tiny", "int8")]
    assert next(r for r in rows if r["precision"] == "int8")["vs_fp32_size_ratio"] < 1


def test_bad_precision_is_one_line(files, capsys):
    assert main(["bench", str(files["fp32"]), "--precision", "int4", "--no-store"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "int4" in err and err.count("\n") == 1


SCHEMA_1 = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY AUTOINCREMENT, created TEXT NOT NULL, tool_version TEXT NOT NULL,
    status TEXT NOT NULL, devices TEXT NOT NULL, settings TEXT NOT NULL, label TEXT NOT NULL DEFAULT '');
CREATE TABLE rows (id INTEGER PRIMARY KEY AUTOINCREMENT, run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    device TEXT NOT NULL, model TEXT NOT NULL, runtime TEXT NOT NULL, threads INTEGER NOT NULL, source TEXT NOT NULL,
    status TEXT NOT NULL, latency_median_ms REAL, top1 REAL, data TEXT NOT NULL);
CREATE INDEX rows_run ON rows(run_id);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def _row(precision: str | None, lat: float) -> dict:
    row = {"device": "host", "model": "ssc-net-1-9", "runtime": "onnxruntime", "threads": 1, "source": "device-runner",
           "status": "ok", "latency_median_ms": lat, "top1": 0.9}
    return row if precision is None else {**row, "precision": precision}


def test_a_schema_1_store_is_read_as_fp32_and_migrated_when_appended_to(tmp_path, capsys):
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(SCHEMA_1)
        conn.execute("INSERT INTO runs (created, tool_version, status, devices, settings) VALUES ('t', '0.1', "
                     "'complete', '[]', '{}')")
        conn.execute("INSERT INTO rows (run_id, device, model, runtime, threads, source, status, latency_median_ms, "
                     "top1, data) VALUES (1, 'host', 'ssc-net-1-9', 'onnxruntime', 1, 'device-runner', 'ok', 2.0, 0.9, ?)",
                     (json.dumps(_row(None, 2.0)),))
    before = db.read_bytes()
    assert store.load_run_rows(1, db)[0]["precision"] == "fp32"
    assert main(["results", "--db", str(db)]) == 0 and "1/1" in capsys.readouterr().out
    assert db.read_bytes() == before  # reading never migrates
    result = {"created": "t2", "tool_version": "0.2", "status": "complete", "devices": [], "settings": {},
              "rows": [_row("fp32", 2.1), _row("int8", 1.0)]}
    assert store.save_run(result, db) == 2
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(store.SCHEMA_VERSION)
        assert conn.execute("SELECT run_id, precision FROM rows ORDER BY id").fetchall() == [
            (1, "fp32"), (2, "fp32"), (2, "int8")]
    comp = store_compare.compare_runs(1, 2, db)
    same = next(c for c in comp if c["precision"] == "fp32")
    assert same["in_a"] and same["in_b"] and same["latency_ratio"] == pytest.approx(2.1 / 2.0)
    assert next(c for c in comp if c["precision"] == "int8")["in_a"] is False
    assert store.save_run(result, db) == 3  # an already migrated store is appended to as it is


@pytest.mark.emulated
@pytest.mark.slow
def test_the_int8_file_runs_on_the_emulated_arm64_device_and_agrees_with_x86(files):
    """ARM's int8 kernels are not x86's: the arm64 rows carry their logit diff against the host's."""
    from ssc_deploy.devices import resolve_device
    from ssc_deploy.devices.emulated import emulated_status

    status = emulated_status()
    if status.state != "ready":
        pytest.skip(f"arm64-emulated is {status.state}: {status.detail} (.ci/setup-devices.sh sets it up)")
    settings = BenchSettings(baselines=[], runtimes=["onnxruntime"])
    res = run_bench([files["fp32"], files["int8"], files["pt"]], settings,
                    devices=[HostDevice(), resolve_device("arm64-emulated")])
    rows = {(r["device"], r["precision"]): r for r in res["rows"]}
    arm = rows[("arm64-emulated", "int8")]
    assert arm["status"] == "ok" and arm["device_machine"] == "aarch64" and arm["device_diff_to"] == "host"
    assert arm["device_top1_agreement"] >= 0.95 and arm["device_max_abs_diff"] < 1.0
    assert rows[("arm64-emulated", "fp32")]["device_max_abs_diff"] < 1e-3
