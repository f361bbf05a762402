"""ARM instruction counts per inference (issue 20): the project's qemu plugin built with the system C
compiler, exact on a program whose loads and stores are known, N-vs-0 arithmetic, repeatable counts
of a real model on the emulated device, and the figure in the table, CSV, SQLite store and report."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from contextlib import closing
from pathlib import Path

import pytest

from ssc_deploy.devices.emulated import emulated_status
from ssc_deploy.devices.insn_counter import (
    QEMU,
    build_plugin,
    parse_counts,
    plugin_path,
)
from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtime_bench import store
from ssc_deploy.runtime_bench.insn_counts import count_per_inference, per_inference
from ssc_deploy.runtime_bench.precision import add_fp32_columns
from ssc_deploy.runtime_bench.report import render_markdown
from ssc_deploy.runtime_bench.rows import add_ratios
from ssc_deploy.runtime_bench.table import build_table, to_csv
from tests.support.stores import SCHEMA_2_ROWS

STATUS = emulated_status()
needs_emulation = pytest.mark.skipif(
    STATUS.state != "ready" or "no instruction counts" in STATUS.detail,
    reason=f"arm64-emulated is {STATUS.state}: {STATUS.detail} (.ci/setup-devices.sh sets it up)",
)

LOOP_C = r"""
#include <stdlib.h>
volatile long a[1000];
int main(int argc, char **argv) {
    int n = atoi(argv[1]);
    long s = 0;
    for (int i = 0; i < n; i++) { s += a[i % 1000]; s += a[(i + 1) % 1000]; a[i % 1000] = s; }
    return (int)(s & 1);
}
"""


def test_per_inference_is_the_difference_over_n():
    c0 = {"insns": 1_000_000, "loads": 300_000, "stores": 100_000}
    cn = {"insns": 1_000_000 + 20 * 25_000, "loads": 300_000 + 20 * 7_000, "stores": 100_000 + 20 * 2_000}
    assert per_inference(c0, cn, 20) == {"instructions_per_inference": 25_000, "loads_per_inference": 7_000,
                                         "stores_per_inference": 2_000}
    assert per_inference({"insns": 10}, {"insns": 30}, 4) == {"instructions_per_inference": 5}
    with pytest.raises(SscDeployError, match="executed no more instructions"):
        per_inference(cn, c0, 20)
    assert parse_counts("insns 12\nloads x\nstores 3\nother 4\n") == {"insns": 12, "stores": 3}


def test_the_plugin_counts_a_known_loop_exactly(tmp_path):
    """An aarch64 loop of 2 loads and 1 store per iteration, run under the dynamic qemu with the plugin
    the project builds: per iteration exactly 2 loads and 1 store (qemu 7.2's inline read/write
    filter would say 1 and 3), and the same count twice."""
    cross = shutil.which("aarch64-linux-gnu-gcc")
    if cross is None or shutil.which(QEMU) is None or shutil.which("gcc") is None:
        pytest.skip("needs gcc, aarch64-linux-gnu-gcc and qemu-aarch64 (.ci/setup-devices.sh installs them)")
    lib = build_plugin(tmp_path / "cache")
    assert lib == plugin_path(tmp_path / "cache") and build_plugin(tmp_path / "cache") == lib  # reused
    (tmp_path / "loop.c").write_text(LOOP_C)
    subprocess.run([cross, "-static", "-O1", "-o", str(tmp_path / "loop"), str(tmp_path / "loop.c")], check=True)

    def count(n: int) -> dict[str, int]:
        out = tmp_path / f"counts-{n}.txt"
        subprocess.run([QEMU, "-cpu", "cortex-a76", "-plugin", f"{lib},out={out}", str(tmp_path / "loop"), str(n)],
                       check=False, timeout=60)
        return parse_counts(out.read_text())

    c0, cn = count(10_000), count(20_000)  # same number of digits: atoi does the same work
    assert count(20_000) == cn
    per = per_inference(c0, cn, 10_000)
    assert per["loads_per_inference"] == 2 and per["stores_per_inference"] == 1
    assert 10 <= per["instructions_per_inference"] <= 30


@pytest.mark.emulated
@pytest.mark.slow
@needs_emulation
def test_counts_of_a_real_model_on_the_device_repeat_within_1_percent(tmp_path):
    """A conv net's ONNX file counted twice on the default profile: the same figure within 1 % (counting
    every thread instead of the main one, two onnxruntime counts differed by 17 %; LiteRT starts no
    thread of its own)."""
    torch = pytest.importorskip("torch")
    from ssc_deploy.devices import resolve_device

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(32, 64, 3, padding=1),
                              torch.nn.ReLU(), torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()).eval()
    x = torch.randn(1, 3, 32, 32)
    torch.onnx.export(net, (x,), tmp_path / "n.onnx", opset_version=17, dynamo=False)
    with resolve_device("arm64-emulated") as dev:
        path = dev.stage([tmp_path / "n.onnx"])[tmp_path / "n.onnx"]
        a, b = (count_per_inference(dev, path, "onnxruntime", "NCHW", 300, n=10) for _ in range(2))
        ia, ib = a["instructions_per_inference"], b["instructions_per_inference"]
        assert a["insn_profile"] == "cortex-a76"
        assert ia > 10e6 and abs(ia - ib) / ia < 0.01, (a, b)
        assert a["loads_per_inference"] > 0 and a["stores_per_inference"] > 0


def _rows() -> list[dict]:
    def row(model, role, prec, insns):
        return {"device": "arm64-emulated", "device_kind": "arm64-emulated", "emulated": True, "model": model,
                "family": model, "role": role, "trained": True, "runtime": "tflite", "precision": prec, "threads": 1,
                "source": "device-runner", "status": "ok", "reason": "", "bytes": 1000, "latency_median_ms": 50.0,
                "top1": 0.9, "instructions_per_inference": insns, "loads_per_inference": insns / 4,
                "stores_per_inference": insns / 10, "insn_profile": "cortex-a76"}

    rows = [row("ssc-net-1-9", "model", "fp32", 32.4e6), row("ssc-net-1-9", "model", "int8", 15.1e6),
            row("mobilenetv2", "baseline", "fp32", 34.4e6), row("mobilenetv2", "baseline", "int8", 13.1e6)]
    add_fp32_columns(rows)
    add_ratios(rows, "mobilenetv2")
    return rows


def test_ratios_against_the_baseline_and_fp32_and_every_output_names_the_profile(tmp_path):
    rows = _rows()
    ssc8 = rows[1]
    assert ssc8["instructions_ratio"] == pytest.approx(15.1 / 13.1)
    assert ssc8["vs_fp32_instructions_ratio"] == pytest.approx(15.1 / 32.4)
    assert rows[0]["vs_fp32_instructions_ratio"] is None and rows[0]["latency_ratio"] is None  # emulated time
    result = {"created": "t", "tool_version": "0", "status": "complete", "settings": {"ratio_to": "mobilenetv2"},
              "devices": [], "rows": rows}
    from rich.console import Console

    console = Console(width=400, record=True)
    console.print(build_table(result))
    text = console.export_text()
    assert "emulated cortex-a76" in text and "not time" in text and "15.10M" in text and "1.15x" in text
    assert "0.47x" in text
    header, *lines = to_csv(result).splitlines()
    cols = header.split(",")
    assert {"instructions_per_inference", "instructions_ratio", "vs_fp32_instructions_ratio", "insn_profile"} <= set(cols)
    assert lines[1].split(",")[cols.index("instructions_per_inference")] == "15100000.0"
    md = render_markdown(result, [])
    assert "M instructions / inference (emulated cortex-a76, instructions, not time)" in md and "| 15.10 |" in md




def test_the_store_keeps_the_instruction_column_and_migrates_a_schema_2_store(tmp_path):
    db = tmp_path / "old.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.executescript(SCHEMA_2_ROWS)
    result = {"created": "t2", "tool_version": "0.2", "status": "complete", "devices": [], "settings": {},
              "rows": _rows()}
    assert store.save_run(result, db) == 2
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(store.SCHEMA_VERSION)
        got = conn.execute("SELECT run_id, instructions_per_inference FROM rows ORDER BY id").fetchall()
    assert got[0] == (1, None) and got[2] == (2, 15.1e6)
    assert json.loads(json.dumps(store.load_run_rows(2, db)[1]))["insn_profile"] == "cortex-a76"
    fresh = tmp_path / "new.sqlite"
    store.save_run(result, fresh)
    with closing(sqlite3.connect(fresh)) as conn:
        assert conn.execute("SELECT MAX(instructions_per_inference) FROM rows").fetchone()[0] == 34.4e6


def test_the_plugin_source_ships_with_the_package():
    import tomllib

    text = Path(__file__).resolve().parent.parent.joinpath("pyproject.toml").read_text()
    assert "qemu_insn_plugin.c" in tomllib.loads(text)["tool"]["setuptools"]["package-data"]["ssc_deploy.devices"]


def test_the_quickstart_says_how_to_get_arm_figures_when_the_device_is_not_set_up(tmp_path, monkeypatch):
    from rich.console import Console

    from ssc_deploy.pipeline.quickstart import QuickstartOptions, arm_instructions

    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "empty-cache"))
    console = Console(width=2000, record=True)
    assert arm_instructions(QuickstartOptions(out=tmp_path / "qs"), [], console) is None
    (line,) = console.export_text().strip().splitlines()
    assert line.startswith("ARM instructions per inference: not counted (arm64-emulated is ")
    assert line.endswith("then ssc-deploy bench " + str(tmp_path / "qs" / "checkpoints" / "ssc-net-1-9.pt")
                         + " --device arm64-emulated --precision fp32,int8")


@pytest.mark.emulated
@pytest.mark.slow
@needs_emulation
def test_the_quickstart_counts_its_onnx_and_tflite_files_on_the_emulated_device(tmp_path):
    """Real exported files (an untrained SSC-Net-1-9, fp32 and int8 ONNX): bench-shaped rows with the int8/fp32 ratio."""
    pytest.importorskip("onnxruntime")
    from rich.console import Console

    from ssc_deploy.export import QuantOptions, export_model
    from ssc_deploy.pipeline.quickstart import QuickstartOptions, arm_instructions

    files = [Path(r.artifact) for r in export_model(None, model_name="ssc-net-1-9", targets=("onnx",),
                                                     precisions=("fp32", "int8"), out_dir=tmp_path / "art",
                                                     progress=False,
                                                     quant=QuantOptions(calib=8, gate_images=8, max_drop=100.0))]
    console = Console(width=300, record=True)
    rows = arm_instructions(QuickstartOptions(out=tmp_path / "qs", models=["ssc-net-1-9"]), files, console)
    by_prec = {r["precision"]: r for r in rows}
    assert set(by_prec) == {"fp32", "int8"} and all(r["status"] == "ok" for r in rows)
    assert by_prec["int8"]["vs_fp32_instructions_ratio"] == pytest.approx(
        by_prec["int8"]["instructions_per_inference"] / by_prec["fp32"]["instructions_per_inference"])
    assert "(emulated cortex-a76, instructions, not time)" in console.export_text()
