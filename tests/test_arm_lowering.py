"""``export --for arm64-emulated[:PROFILE]`` (issue 20 #3): per target and precision the lowering with the
fewest ARM instructions on the profile; the known table when measuring is off, one-line errors for a bad
``--for`` or an emulated device that is not set up, and a real count into a temporary cache.

Every test points ``SSC_DEPLOY_CACHE`` somewhere of its own: the real user cache is never read or written.
"""

from __future__ import annotations

import json

import pytest

from ssc_deploy.cli import main
from ssc_deploy.devices.emulated import cannot_emulate_reason, emulated_status
from ssc_deploy.export import QuantOptions, VerifyOptions, export_module, load_for_export
from ssc_deploy.export.lowerings.selection.arm import COUNTED_TARGETS, INT8_CANDIDATES, KNOWN_FEWEST, MEASURED, not_counted
from ssc_deploy.export.lowerings.selection.choice import MEASURE_ENV, arm_choice, known_fastest
from ssc_deploy.export.lowerings.selection.probe import probe_description
from ssc_deploy.runtimes import by_target


def test_table_path_names_profile_counts_and_why(tmp_path, monkeypatch):
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv(MEASURE_ENV, "0")
    results = export_module(*load_for_export(model_name="ssc-net-1-9", in_size=16), targets="onnx",
                            precisions="fp32,int8", quant=QuantOptions(calib=16), out_dir=tmp_path / "o",
                            verify=VerifyOptions(n_verify=2), progress=False, lowering="fast",
                            for_device="arm64-emulated:cortex-a53")
    for r in results:
        model = r.manifest["model"]
        assert model["lowering"] == KNOWN_FEWEST["cortex-a53"][("onnx", r.manifest["precision"])]
        reason = model["lowering_reason"]
        assert reason.startswith("for arm64-emulated:cortex-a53: known fewest ARM instructions") and " M" in reason
        assert f"{MEASURE_ENV}=0" in reason
    assert not (tmp_path / "cache" / "lowerings.json").exists()  # nothing measured, nothing cached
    # ExecuTorch is not counted on the device: the host's table choice, said so
    et = arm_choice("executorch", "fp32", "fast-table", "cortex-a76")
    assert et.lowering == known_fastest("executorch").lowering and not_counted("executorch") in et.reason
    assert not_counted("executorch") == ("ExecuTorch has no instruction counts on arm64-emulated "
                                         "(no aarch64 executor_runner): the host's choice")
    # a profile the table has no counts for takes the host's choice, said so
    n1 = arm_choice("tflite", "int8", "fast-table", "neoverse-n1")
    assert n1.lowering == by_target("tflite").int8_lowering and "no counts for tflite int8 on neoverse-n1" in n1.reason


def test_the_known_counts_come_from_the_counted_runtimes_folders():
    assert COUNTED_TARGETS == ("onnx", "tflite")
    assert set(MEASURED) == {"cortex-a76", "cortex-a53"}
    for rows in MEASURED.values():
        assert set(rows) == {(t, p) for t in COUNTED_TARGETS for p in ("fp32", "int8")}
    assert MEASURED["cortex-a53"][("tflite", "fp32")]["pad-slice"] == 37.51e6
    assert KNOWN_FEWEST["cortex-a76"] == {("onnx", "fp32"): "pad-slice", ("tflite", "fp32"): "dwconv-nhwc",
                                         ("onnx", "int8"): "dwconv-nhwc-merge3", ("tflite", "int8"): "dwconv-merge3"}


@pytest.mark.parametrize("spec, message", [
    ("phone", "error: --for: unknown device 'phone' (use host or arm64-emulated[:PROFILE])"),
    ("arm64-emulated:cortex-a99", "error: unknown CPU profile 'cortex-a99' for arm64-emulated"),
    ("arm64-emulated", "error: --for arm64-emulated: the emulated device is not set up: "
                       "run: ssc-deploy device setup arm64-emulated" if cannot_emulate_reason() is None
                       else f"error: --for arm64-emulated: the emulated device cannot run here: {cannot_emulate_reason()}"),
])
def test_bad_for_is_one_line(spec, message, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(tmp_path / "empty"))  # no rootfs there: not set up
    monkeypatch.delenv(MEASURE_ENV, raising=False)
    out = tmp_path / "out"
    assert main(["export", "--model", "ssc-net-1-9", "--for", spec, "--out", str(out), "--no-progress"]) != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(message), err
    assert not out.exists()


STATUS = emulated_status()


@pytest.mark.slow
@pytest.mark.emulated
@pytest.mark.skipif(STATUS.state != "ready" or "no instruction counts" in STATUS.detail,
                    reason=f"arm64-emulated is {STATUS.state}: {STATUS.detail} (.ci/setup-devices.sh sets it up)")
def test_counts_on_cortex_a76_and_caches(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("SSC_DEPLOY_CACHE", str(cache))
    monkeypatch.delenv(MEASURE_ENV, raising=False)
    # the rootfs stays where it is: only the lowering cache moves
    monkeypatch.setattr("ssc_deploy.devices.emulated.cache_dir", lambda: STATUS.root.parent)
    (r,) = export_module(*load_for_export(model_name="ssc-net-1-9", in_size=16), targets="tflite", precisions="int8",
                         out_dir=tmp_path / "o", verify=VerifyOptions(n_verify=2), quant=QuantOptions(calib=16),
                         progress=False, lowering="fast", for_device="arm64-emulated")
    model = r.manifest["model"]
    assert model["lowering"] in INT8_CANDIDATES
    reason = model["lowering_reason"]
    assert reason.startswith("for arm64-emulated:cortex-a76: fewest ARM instructions on emulated cortex-a76")
    assert "counted now" in reason and all(low in reason for low in INT8_CANDIDATES)
    (entry,) = json.loads((cache / "lowerings.json").read_text())["entries"].values()
    assert entry["best"] == model["lowering"] and entry["precision"] == "int8" and entry["medians_ms"] == {}
    assert set(entry["instructions"]) == set(INT8_CANDIDATES) and entry["probe"] == probe_description()
    assert entry["best"] == min(entry["instructions"], key=entry["instructions"].get)
    assert entry["cpu"].startswith("cortex-a76 (") and "asimddp" in entry["vector_flags"]


def test_the_probe_files_come_from_a_child_process_and_its_error_is_one_line(tmp_path):
    from ssc_deploy.errors import SscDeployError
    from ssc_deploy.export.lowerings.selection.arm import probe_files

    (path,) = probe_files("onnx", "fp32", tmp_path, ("pad-slice",))
    assert path == tmp_path / "pad-slice" / "ssc-net-1-9.onnx" and path.stat().st_size > 0
    assert json.loads(path.with_name(path.name + ".manifest.json").read_text())["model"]["lowering"] == "pad-slice"
    with pytest.raises(SscDeployError, match=r"^exporting the ARM probe's onnx fp32 files failed: unknown lowering 'x'"):
        probe_files("onnx", "fp32", tmp_path / "bad", ("x",))
