"""The default ``--lowering fast`` (issue 15 #1): measured once per machine and cached, the known
table when measuring is off, the reason in the manifest; ``fast-table`` and ``auto`` as before.

Every test points ``SSC_DEPLOY_CACHE`` at its own temporary directory: the real user cache is
never read or written here. Real exports, real runtimes, real timings.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import torch
from torch import nn

from ssc_deploy.cli import main
from ssc_deploy.cpu_features import cpu_features, isa_class
from ssc_deploy.export import ModelFacts, VerifyOptions, export_module, load_for_export
from ssc_deploy.export.lowerings.selection import cache as lowering_cache
from ssc_deploy.export.lowerings.selection.autotune import candidate_lowerings
from ssc_deploy.export.lowerings.selection.choice import KNOWN_FASTEST, MEASURE_ENV, known_fastest
from ssc_deploy.export.lowerings.selection.probe import PROBE_VERSION, QUICK_CANDIDATES, probe_description
from ssc_deploy.runtimes import by_target

SIZE = 16  # the exported net's input; the probe keeps its own size


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty ssc-deploy cache directory of this test only, measuring allowed."""
    path = tmp_path / "cache"
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(path))
    monkeypatch.delenv(MEASURE_ENV, raising=False)
    return path


def _export(out, lowering="fast", target="onnx"):
    (r,) = export_module(*load_for_export(model_name="ssc-net-1-9", in_size=SIZE), targets=target, out_dir=out,
                         lowering=lowering, verify=VerifyOptions(n_verify=2), progress=False, force=True)
    return r.manifest["model"]


def test_fast_measures_once_caches_and_reuses(cache, tmp_path):
    first = _export(tmp_path / "a")
    file = cache / "lowerings.json"
    assert file.is_file()
    assert first["lowering"] in QUICK_CANDIDATES["onnx"]
    assert first["lowering_reason"].startswith("measured on this CPU") and "now" in first["lowering_reason"]
    (entry,) = json.loads(file.read_text())["entries"].values()
    assert entry["best"] == first["lowering"] and set(entry["medians_ms"]) == set(QUICK_CANDIDATES["onnx"])
    assert entry["cpu"] == cpu_features().model and entry["runtime"] == "onnxruntime"
    assert entry["runtime_version"] == _onnx_version() and entry["probe"] == probe_description()
    before = file.read_bytes(), file.stat().st_mtime_ns

    second = _export(tmp_path / "b")
    assert second["lowering"] == first["lowering"]
    assert f"(cache {file})" in second["lowering_reason"] and "now" not in second["lowering_reason"]
    assert (file.read_bytes(), file.stat().st_mtime_ns) == before  # nothing measured, nothing written


def test_measuring_off_uses_the_known_table_and_writes_no_cache(cache, tmp_path, monkeypatch):
    monkeypatch.setenv(MEASURE_ENV, "0")
    model = _export(tmp_path / "o")
    isa = cpu_features().isa
    assert model["lowering"] == KNOWN_FASTEST.get(isa, {}).get("onnx", by_target("onnx").default_lowering)
    assert model["lowering_reason"] == known_fastest("onnx").reason and "not measured" in model["lowering_reason"]
    assert not cache.exists()


def test_fast_table_never_reads_the_cache_and_cli_prints_the_reason(cache, tmp_path, capsys):
    key = lowering_cache.cache_key("onnxruntime", _onnx_version(), cpu_features(), PROBE_VERSION)
    fake = lowering_cache.Measurement(runtime="onnxruntime", runtime_version=_onnx_version(), best="dwconv",
                                      medians_ms={"dwconv": 1.0}, probe="p", cpu="c", isa="i", measured="2026")
    assert lowering_cache.store(key, fake) is not None
    rc = main(["export", "--model", "ssc-net-1-9", "--in-size", str(SIZE), "-t", "onnx", "-o", str(tmp_path / "t"),
               "--n-verify", "2", "--no-progress", "--lowering", "fast-table"])
    assert rc == 0
    m = json.loads((tmp_path / "t" / "ssc-net-1-9.onnx.manifest.json").read_text())["model"]
    assert m["lowering_reason"] == known_fastest("onnx").reason
    # the table's reason as printed: "known fastest ..." or, on an ISA the table has no row for, "the default: ..."
    assert f"onnx: lowering {m['lowering']} ({m['lowering_reason']})" in capsys.readouterr().out
    # the default reads what the cache holds (a hand-written entry here: nothing is measured)
    rc = main(["export", "--model", "ssc-net-1-9", "--in-size", str(SIZE), "-t", "onnx", "-o", str(tmp_path / "f"),
               "--n-verify", "2", "--no-progress"])
    assert rc == 0
    m = json.loads((tmp_path / "f" / "ssc-net-1-9.onnx.manifest.json").read_text())["model"]
    assert m["lowering"] == "dwconv" and "measured on this CPU" in m["lowering_reason"]


def _onnx_version():
    from ssc_deploy.export.targets import TARGETS

    return TARGETS["onnx"].runtime_version()


def test_auto_is_the_full_search_and_leaves_the_cache_alone(cache, tmp_path):
    model = _export(tmp_path / "auto", lowering="auto")
    assert model["lowering"] in candidate_lowerings("onnx")
    assert model["lowering_reason"].startswith("--lowering auto: measured on this net")
    assert not cache.exists()


def test_named_lowering_and_nets_without_shifts_are_not_measured(cache, tmp_path):
    named = _export(tmp_path / "n", lowering="pad-slice")
    assert (named["lowering"], named["lowering_reason"]) == ("pad-slice", "given by name")
    torch.manual_seed(0)
    plain = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 10)).eval()
    (r,) = export_module(plain, torch.zeros(1, 3, SIZE, SIZE), ModelFacts(name="plain"), targets="onnx",
                         out_dir=tmp_path / "p", lowering="fast", verify=VerifyOptions(n_verify=2), progress=False)
    assert r.manifest["model"]["lowering"] == "pad-slice"
    assert "no Shift layers" in r.manifest["model"]["lowering_reason"]
    assert not cache.exists()


def test_cache_file_is_keyed_and_survives_corruption(cache):
    cpu = cpu_features()
    k1 = lowering_cache.cache_key("onnxruntime", "1.0", cpu, 1)
    assert k1 != lowering_cache.cache_key("onnxruntime", "1.1", cpu, 1) != lowering_cache.cache_key("tflite", "1.0", cpu, 1)
    assert k1 != lowering_cache.cache_key("onnxruntime", "1.0", cpu, 2)
    a76 = ("cortex-a76", ("fp", "asimddp"), "fp32")
    arm = lowering_cache.cache_key("onnxruntime", "1.0", None, 1, arm=a76)
    assert arm == lowering_cache.cache_key("onnxruntime", "1.0", cpu, 1, arm=a76) != k1  # the host CPU does not count
    assert arm != lowering_cache.cache_key("onnxruntime", "1.0", None, 1, arm=("cortex-a53", ("fp",), "fp32"))
    assert arm != lowering_cache.cache_key("onnxruntime", "1.0", None, 1, arm=(*a76[:2], "int8"))
    cache.mkdir()
    (cache / "lowerings.json").write_text("{not json")
    assert lowering_cache.lookup(k1) is None
    m = lowering_cache.Measurement(runtime="onnxruntime", runtime_version="1.0", best="dwconv",
                                   medians_ms={"dwconv": 1.0, "pad-slice": 2.0}, probe="p", cpu="c", isa="avx2")
    assert lowering_cache.store(k1, m) == cache / "lowerings.json"
    assert lowering_cache.lookup(k1) == m
    (cache / "lowerings.json").write_text(json.dumps({"schema": lowering_cache.SCHEMA,
                                                      "entries": {k1: {"best": 3}}}))
    assert lowering_cache.lookup(k1) is None
    counted = lowering_cache.Measurement(runtime="onnxruntime", runtime_version="1.0", best="dwconv", medians_ms={},
                                         probe="p", cpu="cortex-a76", isa="aarch64", precision="int8",
                                         instructions={"dwconv": 9e6, "dwconv-nhwc": 1e7})
    assert lowering_cache.store(arm, counted) and lowering_cache.lookup(arm) == counted
    lowering_cache.store(arm, replace(counted, best="pad-slice"))  # best must be among the counted candidates
    assert lowering_cache.lookup(arm) is None


def test_isa_classes():
    assert isa_class("x86_64", {"avx2", "fma", "avx512f"}) == "avx512"
    assert isa_class("x86_64", {"avx2", "fma"}) == "avx2"
    assert isa_class("x86_64", {"sse4_2"}) == "x86-sse"
    assert isa_class("aarch64", {"asimd", "asimddp"}) == "arm64-neon-dotprod"
    assert isa_class("aarch64", {"asimd"}) == "arm64-neon"
    assert isa_class("riscv64", set()) == "other"
    assert set(KNOWN_FASTEST) <= {"avx512", "avx2", "arm64-neon-dotprod", "arm64-neon"}
