"""Bring your own SSC-Net (issue 14): the rewrite on a traced graph, through a module and a .pt2."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import onnx
import pytest
import torch

from ssc_deploy import export_module
from ssc_deploy.export import VerifyOptions
from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.foreign import foreign_rewrite
from ssc_deploy.export.readers.program import load_program
from ssc_deploy.export.rewrite import deployment_rewrite
from ssc_deploy.export.verify import verification_images
from ssc_deploy.models.layers import Shift
from tests.support.foreign_ssc import ForeignSSCNet, OneHotConv, PlainCNN, WrittenOutShifts, randomized
from tests.support.pt2_archives import Payload, graph_change, rezip, sample_payload, saved

SIZE = 16
ATOL = 1e-4


def _digits(n: int = 16) -> torch.Tensor:
    images, _ = verification_images([0.5] * 3, [0.25] * 3, SIZE, n)
    return torch.from_numpy(images)


def _net() -> ForeignSSCNet:
    torch.manual_seed(0)
    return randomized(ForeignSSCNet(blocks=1, groups=9, stages=2))


def _sparse_names(net) -> list[str]:
    return [f"{n}.0" for n, m in net.named_modules() if isinstance(m, torch.nn.Sequential) and isinstance(m[0], OneHotConv)]


def _onnx_convs(path: Path) -> list[tuple[int, ...]]:
    convs = []
    for node in onnx.load(str(path)).graph.node:
        if node.op_type == "Conv":
            convs.append(tuple(next(a.ints for a in node.attribute if a.name == "kernel_shape")))
    return convs


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.mark.parametrize("source", ["module", "pt2"])
def test_foreign_ssc_net_exports_on_all_runtimes_without_3x3_ssc_convs(tmp_path: Path, source: str):
    torch.manual_seed(0)
    net = randomized(ForeignSSCNet(blocks=1, groups=9, stages=1))
    options = dict(targets="all", out_dir=tmp_path / "out", verify=VerifyOptions(n_verify=8, atol=ATOL), progress=False,
                   lowering="pad-slice")
    if source == "module":
        results = export_module(net, torch.zeros(1, 3, SIZE, SIZE), **options)
    else:
        from ssc_deploy.export.readers.program import export_program

        path = saved(net, tmp_path / "theirs.pt2")
        x = _digits(4)
        with torch.no_grad():
            assert torch.equal(load_program(path).module(x), net(x))  # the program is the original net
        results = export_program(path, **options)
    assert {r.target for r in results} == {"onnx", "executorch", "tflite"}
    for r in results:
        assert r.manifest["parity"]["passed"] and r.manifest["parity"]["max_abs_diff"] <= ATOL, r.target
    onnx_path = next(r.artifact for r in results if r.target == "onnx")
    # only the stem is a 3x3 conv; both SSC kernels became shift (pad + slices) + 1x1 conv
    convs = len([m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, OneHotConv))])
    assert _onnx_convs(onnx_path).count((3, 3)) == 1 and len(_onnx_convs(onnx_path)) == convs
    ops = {r.target: r.manifest["op_histogram"] for r in results}
    assert ops["tflite"]["CONV_2D"] == convs and ops["executorch"]["aten_convolution_default"] == convs


def test_every_ssc_kernel_is_found_and_the_rest_left_alone_with_a_reason():
    net = _net()
    x = _digits()
    found = foreign_rewrite(net, x[:1])
    report = found.report
    assert sorted(c.name for c in report.ssc_kernels) == sorted(_sparse_names(net)) and len(report.ssc_kernels) == 4
    for c in report.ssc_kernels:
        assert c.macs_before == 9 * c.macs_after and c.zero_fraction == pytest.approx(8 / 9)
    stem = next(c for c in report.convs if c.name == "head_in.0")
    assert not stem.rewritten and stem.note.startswith("not sparse")
    assert any(line.startswith("conv head_in.0: not sparse") and line.endswith("left as a 3x3 conv") for line in report.lines())
    assert report.batchnorms == len([m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)])
    with torch.no_grad():
        ref = net(x)
        assert torch.allclose(found.module(x), ref, atol=1e-5, rtol=0)
        for lowering in ("pad-slice", "dwconv"):
            deployed = deployment_rewrite(found.module, lowering)
            assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in deployed.modules())  # BN folded
            assert (deployed(x) - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("stray", [0.37, 1e-12])
def test_one_stray_non_zero_is_left_as_a_3x3_conv_and_said_so(stray: float):
    net = _net()
    target = net.body[0].sparse_b[0]
    with torch.no_grad():  # input channel 4 keeps the centre; one output also reads it at (0, 0)
        target.onehot[5, 4, 0, 0] = 1.0
        target.kernel[5, 4, 0, 0] = stray
    x = _digits()
    found = foreign_rewrite(net, x[:1])
    conv = next(c for c in found.report.convs if c.name == "body.0.sparse_b.0")
    assert not conv.rewritten
    assert conv.note.startswith("one stray non-zero at (out 5, in 4, 0, 0)")
    assert f"conv body.0.sparse_b.0: {conv.note}, left as a 3x3 conv" in found.report.lines()
    assert len(found.report.ssc_kernels) == 3
    with torch.no_grad():
        assert (found.module(x) - net(x)).abs().max() <= 1e-5


def test_a_net_without_ssc_kernels_exports_unchanged(tmp_path: Path):
    torch.manual_seed(0)
    net = randomized(PlainCNN())
    found = foreign_rewrite(net, torch.zeros(1, 3, SIZE, SIZE))
    assert found.module is net and not found.report.changed
    assert not found.report.ssc_kernels and len(found.report.convs) == 2
    (result,) = export_module(net, torch.zeros(1, 3, SIZE, SIZE), out_dir=tmp_path, verify=VerifyOptions(n_verify=8),
                              progress=False, lowering="pad-slice")
    assert result.manifest["parity"]["passed"] and _onnx_convs(result.artifact) == [(3, 3), (3, 3)]
    assert result.manifest["rewrite"]["graph"]["ssc_kernels"] == []


def test_a_zoo_net_is_not_traced():
    from ssc_deploy.models import create_model

    net = create_model("ssc-net-1-9")
    found = foreign_rewrite(net, torch.zeros(1, 3, 32, 32))
    assert found.module is net and found.report is None


def test_roll_with_mask_and_pad_slice_concat_are_shifts():
    torch.manual_seed(0)
    net = WrittenOutShifts(SIZE).eval()
    x = _digits()
    found = foreign_rewrite(net, x[:1])
    kinds = sorted(s.written_as for s in found.report.shifts)
    assert kinds == ["pad + slice + concat", "roll + mask"]
    assert all(s.channels == 18 and s.directions == 9 for s in found.report.shifts)
    shifts = [m for m in found.module.modules() if isinstance(m, Shift)]
    assert len(shifts) == 2
    graph_ops = {str(n.target) for n in found.module.graph.nodes}
    assert not any(op.startswith(("aten.roll", "aten.cat", "aten.pad", "aten.slice")) for op in graph_ops), graph_ops
    with torch.no_grad():
        ref = net(x)
        assert torch.equal(found.module(x), ref)
        assert (deployment_rewrite(found.module, "pad-slice")(x) - ref).abs().max() <= 1e-5


@pytest.mark.parametrize("kwargs", [{"masked": False}, {"mask_value": 0.5}])
def test_a_roll_whose_border_is_not_zeroed_is_not_a_shift(kwargs):
    net = WrittenOutShifts(SIZE, **kwargs).eval()
    found = foreign_rewrite(net, torch.zeros(1, 3, SIZE, SIZE))
    assert [s.written_as for s in found.report.shifts] == ["pad + slice + concat"]
    x = _digits(4)
    with torch.no_grad():
        assert torch.equal(found.module(x), net(x))


def test_pt2_exports_through_the_cli_with_classes_from_the_json_and_flags(tmp_path: Path, capsys):
    net = _net()
    path = saved(net, tmp_path / "theirs.pt2")
    names = [f"digit{i}" for i in range(10)]
    (tmp_path / "theirs.pt2.json").write_text(json.dumps({"classes": names, "mean": [0.5] * 3, "std": [0.25] * 3}))
    out = tmp_path / "out"
    assert main(["export", str(path), "--out", str(out), "--n-verify", "8", "--no-progress", "--json",
                 "--lowering", "pad-slice"]) == 0
    (manifest,) = json.loads(capsys.readouterr().out)
    assert manifest["classes"] == names and manifest["input"]["mean"] == [0.5] * 3 and manifest["input"]["std"] == [0.25] * 3
    assert manifest["input"]["shape"][-1] == SIZE and manifest["parity"]["passed"]
    assert manifest["source"]["checkpoint"] == str(path) and len(manifest["source"]["checkpoint_sha256"]) == 64
    assert _onnx_convs(out / "theirs.onnx").count((3, 3)) == 1
    graph = manifest["rewrite"]["graph"]  # the manifest records what the graph rewrite found
    assert sorted(graph["ssc_kernels"]) == sorted(_sparse_names(net)) and list(graph["left_alone"]) == ["head_in.0"]
    assert graph["conv_macs_before"] > graph["conv_macs_after"]
    assert main(["export", str(path), "--out", str(out), "--force", "--n-verify", "8", "--no-progress", "--json",
                 "--classes", ",".join("abcdefghij"), "--mean", "0.4,0.4,0.4", "--lowering", "pad-slice"]) == 0
    (manifest,) = json.loads(capsys.readouterr().out)
    assert manifest["classes"] == list("abcdefghij") and manifest["input"]["mean"] == [0.4] * 3
    assert main(["export", str(path), "--out", str(out), "--force", "--classes", "a,b"]) != 0
    assert "class_names has 2 names" in _one_error_line(capsys)


def _weight_payload(marker: Path):
    def change(name: str, data: bytes):
        if name.endswith("model_weights_config.json"):
            config = json.loads(data)
            next(m for m in config["config"].values() if m["path_name"] == "weight_0")["use_pickle"] = True
            return json.dumps(config).encode()
        if name.endswith("data/weights/weight_0"):
            buf = io.BytesIO()
            torch.save(Payload(marker), buf)
            return buf.getvalue()
        return data
    return change


def _call_os_system(program):
    node = next(n for n in program["graph_module"]["graph"]["nodes"] if n["target"] == "torch.ops.aten.relu.default")
    node["target"] = "torch.os.system"


def _guards(program):
    program["guards_code"] = ["__import__('os').system('true')"]


def _legacy_member(name: str, data: bytes):
    return data


@pytest.mark.parametrize("damage, why", [
    ("weight", "stored as a pickled object"),
    ("sample", "example inputs are pickled Python objects"),
    ("target", "not one of the pure tensor operators"),
    ("guards", "guards code"),
    ("extra_member", "not part of the plain-data program layout"),
])
def test_a_pt2_that_could_run_code_is_refused_and_nothing_runs(tmp_path: Path, capsys, damage: str, why: str):
    marker = tmp_path / "payload-ran"
    good = saved(PlainCNN(), tmp_path / "good.pt2")
    change = {"weight": _weight_payload(marker), "sample": sample_payload(marker),
              "target": graph_change(_call_os_system), "guards": graph_change(_guards),
              "extra_member": lambda n, d: d}[damage]
    evil = rezip(good, tmp_path / "evil.pt2", change)
    if damage == "extra_member":
        with zipfile.ZipFile(evil, "a") as z:
            buf = io.BytesIO()
            torch.save({"x": Payload(marker)}, buf)
            z.writestr("good/data/weights/good.pt", buf.getvalue())  # the legacy pickled-weights member
    with pytest.raises(SscDeployError, match=f"refused: .*{why}"):
        load_program(evil)
    assert main(["export", str(evil), "--out", str(tmp_path / "out"), "--no-progress"]) != 0
    assert "refused" in _one_error_line(capsys)
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_torch_export_load_itself_runs_a_pickled_weight(tmp_path: Path):
    """Why the checks exist: the same file given straight to torch.export.load runs the payload."""
    marker = tmp_path / "payload-ran"
    evil = rezip(saved(PlainCNN(), tmp_path / "good.pt2"), tmp_path / "evil.pt2", _weight_payload(marker))
    with pytest.raises(Exception):
        torch.export.load(evil)  # it fails only after unpickling (the payload is not a Parameter)
    assert marker.exists()


@pytest.mark.parametrize("content, expected", [
    (b"not a zip", "not a torch.export program"),
    (None, "no such file"),
])
def test_bad_pt2_files_are_one_line(tmp_path: Path, capsys, content, expected):
    path = tmp_path / "bad.pt2"
    if content is not None:
        path.write_bytes(content)
    assert main(["export", str(path), "--no-progress"]) != 0
    assert expected in _one_error_line(capsys)


def test_a_bad_sidecar_is_one_line(tmp_path: Path, capsys):
    path = saved(PlainCNN(), tmp_path / "m.pt2")
    (tmp_path / "m.pt2.json").write_text(json.dumps({"classes": "cat", "mean": [0.5] * 3}))
    assert main(["export", str(path), "--no-progress"]) != 0
    assert "'classes' must be a list" in _one_error_line(capsys)


def test_inspect_sparsity_of_a_pt2_and_a_zoo_checkpoint(tmp_path: Path, capsys):
    from ssc_deploy.checkpoint import Checkpoint, save_checkpoint
    from ssc_deploy.models import create_model

    net = _net()
    path = saved(net, tmp_path / "theirs.pt2")
    assert main(["inspect", "--sparsity", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rewritten = [c for c in report["convs"] if c["rewritten"]]
    assert sorted(c["name"] for c in rewritten) == sorted(_sparse_names(net))
    assert all(c["macs_before"] == 9 * c["macs_after"] and c["weight_shape"][2:] == [3, 3] for c in rewritten)
    assert report["conv_macs_before"] - report["conv_macs_after"] == sum(c["macs_before"] * 8 // 9 for c in rewritten)
    assert main(["inspect", "--sparsity", str(path)]) == 0
    assert "4 SSC kernels rewritten" in capsys.readouterr().out
    zoo = create_model("ssc-net-1-9")
    ckpt = Checkpoint(model_name="ssc-net-1-9", config={"num_classes": 10, "in_size": 32}, state_dict=zoo.state_dict(),
                      classes=[str(i) for i in range(10)], mean=[0.5] * 3, std=[0.25] * 3, input_shape=[3, 32, 32],
                      metrics={}, provenance={}, training_state=None)
    save_checkpoint(ckpt, tmp_path / "zoo.pt")
    assert main(["inspect", "--sparsity", str(tmp_path / "zoo.pt"), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert not any(c["rewritten"] for c in report["convs"])  # the zoo's SSC layers are already shift + 1x1
    assert len(report["shifts"]) == 6 and {s["directions"] for s in report["shifts"]} == {9}
    assert main(["inspect", "--sparsity", str(tmp_path / "missing.pt")]) != 0
    assert "no such" in _one_error_line(capsys)


class _PlainOneHot(torch.nn.Module):
    """A plain (groups=1) 3x3 conv, dilation 2, stride 2, whose kernel keeps one tap per input channel
    at a position drawn at random, and a bias."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.conv = torch.nn.Conv2d(3, 12, 3, stride=2, padding=2, dilation=2)
        self.fc = torch.nn.Linear(12, 10)
        with torch.no_grad():
            keep = torch.zeros_like(self.conv.weight)
            for i, p in enumerate(torch.randint(0, 9, (3,), generator=g).tolist()):
                keep[:, i, p // 3, p % 3] = 1.0
            self.conv.weight.mul_(keep)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean((2, 3)))


def test_a_plain_dilated_strided_ssc_kernel_with_bias_is_rewritten_exactly():
    net = _PlainOneHot().eval()
    x = _digits(8)
    found = foreign_rewrite(net, x[:1])
    (conv,) = found.report.convs
    assert conv.rewritten and conv.groups == 1 and conv.stride == (2, 2) and conv.macs_before == 9 * conv.macs_after
    (shift,) = [m for m in found.module.modules() if isinstance(m, Shift)]
    assert all(dy in (-2, 0, 2) and dx in (-2, 0, 2) for dy, dx in shift.offsets)  # dilation 2
    with torch.no_grad():
        assert (found.module(x) - net(x)).abs().max() <= 1e-6
