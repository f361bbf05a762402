"""benchmarks/arm_cost.py (issue 20 #5): its bad input, its lowering candidates, its ratio pairs and
prediction error, and the x86 instruction counter (the project's plugin under qemu-x86_64) on a real file."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import arm_cost


def test_unknown_runtime_is_one_error_line_and_writes_nothing(tmp_path):
    md = tmp_path / "out.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "arm_cost.py"), "--runtimes", "executorch",
                           "--markdown", str(md)], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [("error: unknown runtime 'executorch' for this benchmark "
                                                 "(use: onnx, tflite)")]
    assert not md.exists()


def test_lowering_candidates():
    assert arm_cost.fp32_lowerings("mobilenetv2", "onnx", quick=False) == ["pad-slice"]
    assert arm_cost.fp32_lowerings("ssc-net-1-9", "onnx", quick=True) == ["pad-slice", "dwconv-aligned"]
    assert arm_cost.fp32_lowerings("ssc-net-1-9", "tflite", quick=True) == ["pad-slice", "dwconv-nhwc"]
    full_tflite = arm_cost.fp32_lowerings("ssc-net-1-9", "tflite", quick=False)
    assert "dwconv-aligned" not in full_tflite and {"pad-slice", "dwconv", "dwconv-nhwc"} <= set(full_tflite)
    assert "dwconv-aligned" in arm_cost.fp32_lowerings("ssc-net-1-9", "onnx", quick=False)


def _row(model, precision, lowering, ms, insns):
    return {"model": model, "runtime": "tflite", "precision": precision, "lowering": lowering, "host_ms": ms,
            "insns": {"k": insns}}


def test_ratio_pairs_and_prediction_error():
    rows = [_row("mobilenetv2", "fp32", "pad-slice", 2.0, 200), _row("mobilenetv2", "int8", "dwconv-nhwc", 1.0, 50),
            _row("ssc-net-1-9", "fp32", "pad-slice", 1.0, 100), _row("ssc-net-1-9", "fp32", "dwconv-nhwc", 0.5, 100),
            _row("ssc-net-1-9", "int8", "dwconv-nhwc", 1.0, 50)]
    pairs = arm_cost.ratio_pairs(rows)
    kinds = [(k, a["model"], a["precision"], a["lowering"], b["model"], b["lowering"]) for k, a, b in pairs]
    assert kinds == [("int8 / fp32", "mobilenetv2", "int8", "dwconv-nhwc", "mobilenetv2", "pad-slice"),
                     ("vs MobileNetV2", "ssc-net-1-9", "fp32", "pad-slice", "mobilenetv2", "pad-slice"),
                     ("vs MobileNetV2", "ssc-net-1-9", "fp32", "dwconv-nhwc", "mobilenetv2", "pad-slice"),
                     ("vs MobileNetV2", "ssc-net-1-9", "int8", "dwconv-nhwc", "mobilenetv2", "dwconv-nhwc"),
                     ("int8 / fp32", "ssc-net-1-9", "int8", "dwconv-nhwc", "ssc-net-1-9", "pad-slice")]
    # instruction ratios 0.25, 0.5, 0.5, 1.0, 0.5 against time ratios 0.5, 0.5, 0.25, 1.0, 1.0
    med, worst, n = arm_cost.prediction_error(pairs, "k")
    assert n == 5 and med == pytest.approx(math.log(2)) and worst == pytest.approx(math.log(2))
    assert arm_cost.prediction_error(pairs, "absent") == (None, None, 0)


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("qemu-x86_64") is None or shutil.which("gcc") is None,
                    reason="needs qemu-user's qemu-x86_64 and gcc")
def test_x86_counter_counts_a_real_onnx_file(tmp_path):
    import torch
    from torch import nn

    from ssc_deploy.export.exporter import export_module
    from ssc_deploy.export.options import ModelFacts, VerifyOptions
    from ssc_deploy.runtime_bench.insn_counts import count_per_inference

    def net(width):
        torch.manual_seed(0)
        # two convs and 30 counted inferences, so that even the narrow net's (~2.8 M MACs each) outweigh
        # the start-up's run-to-run spread under load (up to 8 M instructions of ~630 M measured here)
        return nn.Sequential(nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.Conv2d(width, width, 3, padding=1),
                             nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, 10)).eval()

    files = {}
    for width in (16, 32):
        out = tmp_path / str(width)
        export_module(net(width), torch.zeros(1, 3, 32, 32), ModelFacts(name="tiny"), targets="onnx", out_dir=out,
                      verify=VerifyOptions(n_verify=2), progress=False)
        files[width] = str(out / "tiny.onnx")
    counter = arm_cost.HostCounter()
    narrow = count_per_inference(counter, files[16], "onnxruntime", "NCHW", timeout=600, n=30)
    wide = count_per_inference(counter, files[32], "onnxruntime", "NCHW", timeout=600, n=30)
    assert 0 < narrow["instructions_per_inference"] < wide["instructions_per_inference"]


def test_render_of_a_broken_saved_run_is_one_error_line(tmp_path):
    bad = tmp_path / "run.json"
    bad.write_text('{"rows": [')
    md = tmp_path / "out.md"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "arm_cost.py"), "--render", str(bad),
                           "--markdown", str(md)], capture_output=True, text=True, cwd=ROOT, timeout=120, check=False)
    assert proc.returncode != 0 and not md.exists()
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot read the saved run run.json")
