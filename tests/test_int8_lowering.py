"""int8 lowerings of issue 22: grouped 1x1 convs as a batched MatMul and group-merged lowerings
(exact, int8 chain whole in onnxruntime's optimized graph), and the host's int8 choice by
measurement: the choice rule, the cached pick reaching the export, "int8 does not pay here" in
one line and in the manifest."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ssc_deploy.export import ModelFacts, OnnxOptions, QuantOptions, export_module
from ssc_deploy.export.lowerings.selection import cache as lowering_cache
from ssc_deploy.export.lowerings.selection.int8 import FP32, INT8_PROBE_VERSION, SIZE, TARGET_RATIO, pick
from ssc_deploy.export.lowerings.selection.cache import Measurement
from ssc_deploy.export.lowerings.selection.choice import int8_choice
from ssc_deploy.export.lowerings import apply_lowering
from ssc_deploy.export.lowerings.batched_matmul import GroupedPointwiseMatMul, as_matmul, is_batchable
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.models import create_model
from support.models import randomize_bn


def _randomized(name: str) -> nn.Module:
    """An untrained net whose BatchNorms have non-trivial statistics (so folded biases are not zero)."""
    torch.manual_seed(0)
    return randomize_bn(create_model(name, num_classes=10, in_size=32))


def test_grouped_conv_as_matmul_is_the_same_conv():
    torch.manual_seed(1)
    conv = nn.Conv2d(12, 18, 1, groups=6, bias=True).eval()
    mm = as_matmul(conv, relu=True)
    assert mm.weight.shape == (6, 3, 2) and mm.bias.shape == (6, 3, 1)
    x = torch.randn(3, 12, 5, 7)
    torch.testing.assert_close(mm(x), torch.relu(conv(x)), rtol=0, atol=1e-6)
    assert not is_batchable(nn.Conv2d(12, 12, 1, groups=12))  # depthwise keeps its own kernels
    assert not is_batchable(nn.Conv2d(12, 18, 1, stride=2, groups=6))
    assert not is_batchable(nn.Conv2d(12, 18, 3, groups=6))


@pytest.mark.parametrize("name", ["ssc-net-1-9", pytest.param("ssc-net-3-9", marks=pytest.mark.slow)])
@pytest.mark.parametrize("lowering", ["dwconv-nhwc-bmm", "dwconv-bmm", "dwconv-merge3", "dwconv-nhwc-merge9"])
def test_int8_candidate_lowerings_are_exact(name, lowering):
    net = _randomized(name)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        ref = net(x)
        low = apply_lowering(deployment_rewrite(net), lowering)
        torch.testing.assert_close(low(x), ref, rtol=1e-4, atol=1e-4)
    mms = [m for m in low.modules() if isinstance(m, GroupedPointwiseMatMul)]
    if lowering.endswith("-bmm"):
        assert len(mms) >= 13 and any(m.relu for m in mms) and not any(is_batchable(m) for m in low.modules())
    else:
        assert not mms


@pytest.mark.slow
def test_batched_matmul_keeps_the_onnx_int8_chain_whole(tmp_path):
    res = export_module(_randomized("ssc-net-1-9"), torch.zeros(1, 3, 32, 32), ModelFacts(name="bmm"),
                        targets=[OnnxOptions(strict=True)], out_dir=tmp_path, lowering="dwconv-nhwc",
                        precisions="int8", quant=QuantOptions(calib=8, int8_lowering="dwconv-nhwc-bmm"),
                        progress=False)
    q = json.loads(res[0].artifact.with_name("bmm.int8.onnx.manifest.json").read_text())["quantization"]
    chain = q["optimized_graph"]
    assert chain["float_compute_ops"] == 0 and chain["quantize_ops"] == 1 and chain["int8_compute_ops"] >= 13 + 15


def _measurement(int8_ms: dict[str, float], sizes: dict[str, int], fp32_ms: float) -> Measurement:
    medians = {**int8_ms, f"{FP32}dwconv-aligned": fp32_ms, **{SIZE + k: float(v) for k, v in sizes.items()}}
    return Measurement(runtime="onnxruntime", runtime_version="x", best=min(int8_ms, key=int8_ms.get),
                       medians_ms=medians, probe="probe", cpu="cpu", isa="avx512", precision="int8")


def test_pick_takes_the_smallest_fast_enough_else_the_fastest():
    m = _measurement({"a": 0.70, "b": 0.60, "c": 0.95}, {"a": 300, "b": 700, "c": 250}, fp32_ms=1.0)
    chosen = pick(m)
    assert (chosen.lowering, chosen.int8_bytes, chosen.pays) == ("a", 300, True)  # b is faster but bigger
    slow = pick(_measurement({"a": 1.30, "b": 1.10}, {"a": 300, "b": 700}, fp32_ms=1.0))
    assert slow.lowering == "b" and not slow.pays and slow.ratio > TARGET_RATIO
    # none fast enough: within 5 % of the fastest the smaller file wins (merge9 0.97x at 0.89x bytes, stop 12)
    tied = pick(_measurement({"merge9": 0.97, "dwconv-nhwc": 1.01, "bmm": 1.20}, {"merge9": 890, "dwconv-nhwc": 400,
                                                                                  "bmm": 300}, fp32_ms=1.0))
    assert tied.lowering == "dwconv-nhwc" and tied.int8_bytes == 400
    line = slow.line("onnx")
    assert "does not pay" in line and "1.100 ms" in line and "1.000 ms" in line and "\n" not in line


def _cache_pick(monkeypatch, tmp_path, int8_ms, fp32_ms):
    """A cached int8 measurement for onnx on this CPU, in a temporary user cache."""
    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.export.targets import TARGETS

    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "cache"))
    key = lowering_cache.cache_key("onnxruntime", TARGETS["onnx"].runtime_version(), cpu_features(),
                                   INT8_PROBE_VERSION)
    sizes = {k: 1000 for k in int8_ms}
    assert lowering_cache.store(key, _measurement(int8_ms, sizes, fp32_ms)) is not None


def test_cached_int8_measurement_picks_the_lowering(monkeypatch, tmp_path):
    _cache_pick(monkeypatch, tmp_path, {"dwconv-nhwc": 0.9, "dwconv-nhwc-merge3": 0.7}, fp32_ms=1.0)
    choice = int8_choice("onnx", "fast", None)
    assert choice.lowering == "dwconv-nhwc-merge3" and choice.int8_pays["pays"] and choice.note is None
    assert "measured on this CPU" in choice.reason and "0.700" in choice.reason
    # fast-table and named lowerings never read it
    assert int8_choice("onnx", "fast-table", None).lowering == "dwconv-nhwc"


@pytest.mark.slow
def test_int8_that_does_not_pay_is_said_and_recorded(monkeypatch, tmp_path):
    _cache_pick(monkeypatch, tmp_path, {"dwconv-nhwc": 1.25, "dwconv-nhwc-bmm": 1.2}, fp32_ms=1.0)
    res = export_module(_randomized("ssc-net-1-9"), torch.zeros(1, 3, 32, 32), ModelFacts(name="slow"),
                        targets=["onnx"], out_dir=tmp_path / "out", lowering="fast", precisions="int8",
                        quant=QuantOptions(calib=8), progress=False)
    manifest = json.loads(res[0].artifact.with_name("slow.int8.onnx.manifest.json").read_text())
    pays = manifest["quantization"]["int8_pays"]
    assert pays == {"pays": False, "int8_ms": 1.2, "fp32_ms": 1.0, "ratio": 1.2, "fp32_lowering": "dwconv-aligned",
                    "probe": pays["probe"]}
    assert manifest["model"]["lowering"] == "dwconv-nhwc-bmm"
    assert manifest["model"]["lowering_reason"].startswith("int8: none within 0.80x fp32: the fastest, measured")
    assert any("int8 does not pay here" in w and "1.200 ms" in w for w in res[0].warnings)


def test_report_marks_int8_rows_that_do_not_pay():
    from ssc_deploy.runtime_bench.precision import INT8_DOES_NOT_PAY, int8_does_not_pay
    from ssc_deploy.runtime_bench.report import _md_table

    slow = {"precision": "int8", "vs_fp32_speedup": 0.78}
    fast = {"precision": "int8", "vs_fp32_speedup": 1.31}
    counted = {"precision": "int8", "vs_fp32_speedup": None, "vs_fp32_instructions_ratio": 1.46}
    assert int8_does_not_pay(slow) and not int8_does_not_pay(fast) and int8_does_not_pay(counted)
    assert not int8_does_not_pay({"precision": "fp32", "vs_fp32_speedup": 0.5})
    base = {"device": "host", "model": "m", "runtime": "onnxruntime", "threads": 1, "status": "ok", "trained": True,
            "source": "device-runner"}
    md = _md_table({"rows": [{**base, **slow}, {**base, **fast}]})
    lines = [ln for ln in md.splitlines() if "| int8 |" in ln]
    assert INT8_DOES_NOT_PAY in lines[0] and "0.78" in lines[0] and INT8_DOES_NOT_PAY not in lines[1]


@pytest.mark.slow
def test_the_host_int8_probe_times_every_candidate_against_the_fp32_file():
    """The real probe: files exported in the child worker, timed in this process in their own layout."""
    from ssc_deploy.export.lowerings.selection.int8 import measure_int8
    from ssc_deploy.runtimes import by_target

    m = measure_int8("onnx", "dwconv-aligned")
    candidates = by_target("onnx").int8_candidates
    assert set(m.medians_ms) == {FP32 + "dwconv-aligned", *candidates, *(SIZE + c for c in candidates)}
    assert all(v > 0 for v in m.medians_ms.values()) and m.precision == "int8" and m.best in candidates
    assert m.cpu_seconds >= 0.5 * m.seconds  # the child's export counts as this probe's CPU time
    assert pick(m).lowering in candidates
