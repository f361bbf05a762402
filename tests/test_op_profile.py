"""Per-op profiles from the runtimes' own profilers (ExecuTorch ETDump, onnxruntime), on real exports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from ssc_deploy.cli import main as cli_main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.lowerings.selection.autotune import export_to
from ssc_deploy.quiet import quiet_native
from ssc_deploy.op_profile import attribute_macs, layer_classes, profile_file

SIDE = 16


class Mixed(nn.Module):
    """One layer of each kind the profiles tell apart: dense 3x3, dense 1x1, grouped 1x1, depthwise, linear."""

    def __init__(self, extra: nn.Module | None = None) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 18, 3, padding=1)
        self.dense = nn.Conv2d(18, 18, 1)
        self.grouped = nn.Conv2d(18, 18, 1, groups=2)
        self.depthwise = nn.Conv2d(18, 18, 3, padding=1, groups=18)
        self.fc = nn.Linear(18, 5)
        self.extra = extra

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(self.dense(x))
        x = torch.relu(self.grouped(x))
        x = self.depthwise(x)
        if self.extra is not None:
            x = self.extra(x)
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class CumSum(nn.Module):
    """An op XNNPACK does not take: ExecuTorch runs it on its portable kernels."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cumsum(x, 1)


def _export(runtime: str, net: nn.Module, tmp_path: Path, name: str) -> tuple[Path, torch.Tensor]:
    torch.manual_seed(0)
    x = torch.randn(1, 3, SIDE, SIDE)
    with quiet_native():
        return export_to(runtime, net.eval(), x, tmp_path / name), x


EXPECTED_MACS = {  # per image at 16 x 16
    "stem": 16 * 16 * 18 * 3 * 9,
    "dense": 16 * 16 * 18 * 18,
    "grouped": 16 * 16 * 18 * 9,
    "depthwise": 16 * 16 * 18 * 9,
    "fc": 18 * 5,
}


def test_executorch_profile_names_every_xnnpack_op_and_their_macs(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = Mixed()
    path, x = _export("executorch", net, tmp_path, "mixed")
    prof = profile_file(path, threads=1, runs=5, warmup=2)
    assert prof.runtime == "executorch" and prof.wall_ms > 0
    classes = {c.name: c for c in prof.classes}
    assert {"Convolution (NHWC, F32) IGEMM", "Convolution (NHWC, F32) DWConv",
            "Fully Connected (NC, F32) GEMM"} <= set(classes)
    assert not any(name.startswith("portable") for name in classes), classes
    # The ops' times come from inside the one execution the wall time measures.
    assert 0 < prof.kernel_ms <= prof.wall_ms * 1.05
    assert abs(sum(c.ms for c in prof.classes) - prof.kernel_ms) < 1e-9

    assert attribute_macs(prof, net, x)
    by_class = {c.name: c.macs for c in prof.classes}
    assert by_class["Convolution (NHWC, F32) IGEMM: dense 3x3"] == EXPECTED_MACS["stem"]
    assert by_class["Convolution (NHWC, F32) IGEMM: grouped 1x1, 9 ch/group"] == EXPECTED_MACS["grouped"]
    assert by_class["Convolution (NHWC, F32) DWConv: depthwise 3x3"] == EXPECTED_MACS["depthwise"]
    assert by_class["Fully Connected (NC, F32) GEMM: dense 1x1"] == EXPECTED_MACS["dense"]
    assert by_class["Fully Connected (NC, F32) GEMM: linear"] == EXPECTED_MACS["fc"]
    assert sum(m for _, _, m in layer_classes(net, x)) == sum(EXPECTED_MACS.values())


def test_executorch_profile_shows_a_portable_fallback(tmp_path: Path) -> None:
    path, _ = _export("executorch", Mixed(CumSum()), tmp_path, "fallback")
    classes = {c.name for c in profile_file(path, threads=1, runs=3, warmup=1).classes}
    assert any(name.startswith("portable") and "cumsum" in name for name in classes), classes


def test_onnx_profile_classes_convs_with_their_macs(tmp_path: Path) -> None:
    path, _ = _export("onnx", Mixed(), tmp_path, "mixed")
    prof = profile_file(path, threads=1, runs=5, warmup=2)
    assert prof.runtime == "onnxruntime" and prof.wall_ms > 0 and prof.kernel_ms > 0
    convs = {c.name: c for c in prof.classes if c.name.startswith("Conv")}
    grouped = [c for name, c in convs.items() if "grouped (9 ch/group)" in name]
    depthwise = [c for name, c in convs.items() if "depthwise" in name]
    assert len(grouped) == 1 and grouped[0].macs == EXPECTED_MACS["grouped"] and grouped[0].nodes == 1
    assert len(depthwise) == 1 and depthwise[0].macs == EXPECTED_MACS["depthwise"]
    assert sum(c.macs for c in convs.values()) == sum(v for k, v in EXPECTED_MACS.items() if k != "fc")
    assert all(c.gmacs and c.gmacs > 0 for c in convs.values())


def test_profile_refuses_what_it_cannot_profile(tmp_path: Path) -> None:
    with pytest.raises(SscDeployError, match="no such file"):
        profile_file(tmp_path / "missing.pte")
    tfl = tmp_path / "model.tflite"
    tfl.write_bytes(b"not really")
    with pytest.raises(SscDeployError, match="no per-op profiler"):
        profile_file(tfl)
    bad = tmp_path / "broken.pte"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(SscDeployError, match="cannot load"):
        profile_file(bad)


def test_profile_cli_json_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path, _ = _export("onnx", Mixed(), tmp_path, "mixed")
    assert cli_main(["profile", str(path), "--runs", "3", "--warmup", "1", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["runtime"] == "onnxruntime" and data["classes"] and data["ops"]
    assert abs(sum(c["ms"] for c in data["classes"]) - data["kernel_ms"]) < 1e-9

    assert cli_main(["profile", str(path), "--runs", "3", "--top", "2"]) == 0
    out = capsys.readouterr().out
    assert "ms a run" in out and "2 slowest single ops" in out

    assert cli_main(["profile", str(tmp_path / "nope.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no such file") and len(err.strip().splitlines()) == 1
    assert cli_main(["profile", str(path), "--runs", "0"]) == 2
