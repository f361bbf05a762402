"""Export to ONNX / ExecuTorch / TFLite through the library API, verified in the real runtimes."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from ssc_deploy.checkpoint import Checkpoint, save_checkpoint, sha256_file
from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD, eval_batch
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export import (MANIFEST_SCHEMA, ExecutorchOptions, Manifest, ModelFacts, OnnxOptions, TfliteOptions,
                               VerifyOptions, export_model, export_module, inspect_artifact, load_for_export,
                               load_manifest)
from ssc_deploy.export.targets.executorch import target as executorch_target
from ssc_deploy.export.targets.onnx import target as onnx_target
from ssc_deploy.export.targets import TARGETS
from ssc_deploy.models import create_model, registry_entries
from ssc_deploy.models.complexity import count_params
from ssc_deploy.runtimes import by_target
from support.models import randomize_bn

# The ops the issue allows in an exported SSC-Net ONNX graph.
SSC_ONNX_OPS = {"Conv", "Pad", "Slice", "Concat", "Reshape", "Transpose", "Relu", "Add", "GlobalAveragePool",
                "ReduceMean", "Flatten", "Gemm", "MatMul"}
CLASSES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
# Every manifest key, in the order of the JSON file (delegation: executorch only).
MANIFEST_KEYS = ["schema", "file", "sha256", "bytes", "target", "precision", "runtime", "runtime_version", "exporter",
                 "model", "input", "output", "classes", "parity", "quantization", "source", "delegation", "op_histogram",
                 "rewrite", "warnings", "ssc_deploy_version", "created"]
SMALL_IN_SIZE = 16  # the family export test's input size: big enough for every family's strides


def zoo_families() -> dict[str, list[str]]:
    """Family -> its listed member names, for every family the package registers (not the test files)."""
    families: dict[str, list[str]] = {}
    for entry in registry_entries():
        if entry.builder.__module__.startswith("ssc_deploy."):
            names = entry.examples if entry.pattern is not None else (entry.name,)
            families.setdefault(entry.family, []).extend(names)
    return families


def smallest_member(family: str) -> str:
    """The listed member of ``family`` with the fewest parameters at the small input size."""
    return min(zoo_families()[family], key=lambda n: count_params(create_model(n, in_size=SMALL_IN_SIZE)))


def make_checkpoint(path, name: str = "ssc-net-1-9", top1: float = 0.5, in_size: int = 32) -> Checkpoint:
    model = randomize_bn(create_model(name, num_classes=10, in_size=in_size))
    ckpt = Checkpoint(model_name=name, config={"num_classes": 10, "in_size": in_size}, state_dict=model.state_dict(),
                      classes=CLASSES, mean=list(DEFAULT_MEAN), std=list(DEFAULT_STD),
                      input_shape=[3, in_size, in_size], metrics={"test_top1": top1}, provenance={"data": "digits"})
    save_checkpoint(ckpt, path)
    return ckpt


@pytest.fixture(scope="session")
def ssc_export(tmp_path_factory):
    """ssc-net-1-9 from a checkpoint, exported once to all three targets."""
    root = tmp_path_factory.mktemp("ssc_export")
    ckpt_path = root / "ssc.pt"
    make_checkpoint(ckpt_path)
    out = root / "out"
    results = export_model(ckpt_path, targets="all", out_dir=out, verify=VerifyOptions(n_verify=16), progress=False)
    return {"ckpt": ckpt_path, "out": out, "results": {r.target: r for r in results}}


def test_all_writes_three_verified_artifacts_with_manifests(ssc_export):
    results, out = ssc_export["results"], ssc_export["out"]
    assert set(results) == {"onnx", "executorch", "tflite"}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"ssc-net-1-9.{ext}{m}" for ext in ("onnx", "pte", "tflite") for m in ("", ".manifest.json")]
        + ["ssc-net-1-9.ort", "ssc-net-1-9.required_operators.config"])  # the app files beside the .onnx
    runtimes = {"onnx": "onnxruntime", "executorch": "executorch", "tflite": "tflite"}
    for target, r in results.items():
        m = load_manifest(r.artifact)
        assert m == json.loads(r.manifest_path.read_text()) == r.manifest
        assert list(m) == [k for k in MANIFEST_KEYS if k != "delegation" or target == "executorch"]
        assert Manifest.read(r.artifact).to_dict() == m and Manifest.read(r.manifest_path).to_dict() == m
        assert m["schema"] == MANIFEST_SCHEMA and m["file"] == r.artifact.name and m["target"] == target
        assert m["runtime"] == runtimes[target] and m["runtime_version"]
        assert m["sha256"] == sha256_file(r.artifact) and m["bytes"] == r.artifact.stat().st_size
        assert m["model"]["name"] == "ssc-net-1-9" and m["model"]["family"] == "ssc-net"
        assert m["model"]["trained"] is True and m["model"]["lowering"] == "pad-slice"
        assert m["model"]["params"] == sum(p.numel() for p in create_model("ssc-net-1-9").parameters())
        nhwc = target == "tflite"  # the layout MediaPipe's ImageClassifier needs, the default for .tflite
        assert m["input"]["shape"] == ([1, 32, 32, 3] if nhwc else [1, 3, 32, 32])
        assert m["input"]["layout"] == ("NHWC" if nhwc else "NCHW")
        assert m["input"]["mean"] == list(DEFAULT_MEAN) and m["input"]["scale"] == "pixel/255"
        assert m["output"] == {"name": m["output"]["name"], "shape": [1, 10], "kind": "logits"}
        assert m["classes"] == CLASSES
        assert m["source"] == {"checkpoint": str(ssc_export["ckpt"]), "checkpoint_sha256": sha256_file(ssc_export["ckpt"]),
                               "test_top1": 0.5}
        p = m["parity"]
        assert p["passed"] and p["data"] == "digits" and p["n_images"] == 16 and p["atol"] == 1e-4
        assert p["max_abs_diff"] < 1e-4 and p["top1_agreement"] == 1.0


def test_onnx_graph_uses_only_plain_ops_and_carries_metadata(ssc_export):
    import onnx

    model = onnx.load(str(ssc_export["results"]["onnx"].artifact))
    ops = {n.op_type for n in model.graph.node}
    assert ops <= SSC_ONNX_OPS, ops - SSC_ONNX_OPS
    assert {"Pad", "Slice", "Concat", "Transpose"} <= ops  # shifts and shuffles really lowered
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["ssc_deploy_model"] == "ssc-net-1-9" and json.loads(meta["classes"]) == CLASSES
    assert json.loads(meta["mean"]) == list(DEFAULT_MEAN) and json.loads(meta["std"]) == list(DEFAULT_STD)
    onnx.checker.check_model(model)


def test_artifacts_reproduce_pytorch_logits_on_real_images(ssc_export):
    from ssc_deploy.checkpoint import load_checkpoint

    net = load_checkpoint(ssc_export["ckpt"]).build_model()
    x, _ = eval_batch("digits", 8, DEFAULT_MEAN, DEFAULT_STD, 32)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    for target, r in ssc_export["results"].items():
        out = TARGETS[target].run(r.artifact, x, nhwc=r.manifest["input"]["layout"] == "NHWC")
        assert np.abs(out - ref).max() < 1e-4, target
        assert (out.argmax(1) == ref.argmax(1)).all()


def test_executorch_delegates_everything_for_ssc_net(ssc_export):
    r = ssc_export["results"]["executorch"]
    d = r.manifest["delegation"]
    assert d["by_op"]["aten_convolution_default"] == {"delegated": 22, "not_delegated": 0}
    assert d["portable_compute_ops"] == [] and r.warnings == []
    ops = inspect_artifact(r.artifact)["op_histogram"]
    assert ops.get("delegate:XnnpackBackend", 0) >= 1
    assert not any(k.startswith("convolution") for k in ops)


def test_tflite_op_histogram_read_from_the_file(ssc_export):
    r = ssc_export["results"]["tflite"]
    info = inspect_artifact(r.artifact)
    assert info["manifest"] == r.manifest
    assert info["op_histogram"] == r.manifest["op_histogram"]
    ops = info["op_histogram"]
    assert ops["CONV_2D"] == 22 and ops["PAD"] == 6 and "TRANSPOSE" in ops
    assert not {"GATHER", "GATHER_ND", "DELEGATE"} & set(ops)


def test_tflite_nhwc_input_and_transposes(ssc_export, tmp_path):
    (r,) = export_model(None, targets=TfliteOptions(nhwc=False), model_name="ssc-net-1-9", out_dir=tmp_path,
                        verify=VerifyOptions(n_verify=8), progress=False)
    m = r.manifest
    assert m["input"]["layout"] == "NCHW" and m["input"]["shape"] == [1, 3, 32, 32]
    nhwc = ssc_export["results"]["tflite"].manifest
    assert nhwc["input"]["layout"] == "NHWC" and nhwc["input"]["shape"] == [1, 32, 32, 3]
    assert Manifest.from_dict(m).input_chw == [3, 32, 32] == Manifest.from_dict(nhwc).input_chw
    assert m["model"]["trained"] is False and m["source"]["test_top1"] is None and m["parity"]["passed"]
    assert nhwc["op_histogram"].get("TRANSPOSE", 0) <= m["op_histogram"]["TRANSPOSE"]
    assert any("MediaPipe's ImageClassifier needs an NHWC image input" in w for w in m["warnings"])


def test_existing_output_is_refused_and_kept(ssc_export):
    out = ssc_export["out"]
    before = {p.name: sha256_file(p) for p in out.iterdir()}
    with pytest.raises(SscDeployError, match="already exists .*--force"):
        export_model(ssc_export["ckpt"], targets="onnx", out_dir=out, progress=False)
    assert {p.name: sha256_file(p) for p in out.iterdir()} == before


def test_failed_parity_leaves_nothing_and_keeps_old_files(ssc_export, tmp_path):
    old = ssc_export["results"]["onnx"].artifact
    kept = tmp_path / old.name
    kept.write_bytes(old.read_bytes())
    with pytest.raises(SscDeployError, match=r"onnx: output 'logits' differs from PyTorch by .* \(> atol 1e-12\)") as err:
        export_model(ssc_export["ckpt"], targets="onnx", out_dir=tmp_path, verify=VerifyOptions(atol=1e-12), force=True,
                     progress=False)
    assert err.value.exit_code == 3
    assert [p.name for p in tmp_path.iterdir()] == [old.name]
    assert kept.read_bytes() == old.read_bytes()


def test_force_overwrites(ssc_export, tmp_path):
    (tmp_path / "ssc-net-1-9.onnx").write_bytes(b"old")
    (r,) = export_model(ssc_export["ckpt"], targets=[OnnxOptions(opset=13)], out_dir=tmp_path, force=True,
                        verify=VerifyOptions(n_verify=4), progress=False)
    assert r.artifact.read_bytes() != b"old" and r.manifest["exporter"]["opset"] == 13
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssc-net-1-9.onnx", "ssc-net-1-9.onnx.manifest.json",
                                                          "ssc-net-1-9.ort", "ssc-net-1-9.required_operators.config"]


def test_force_refuses_a_directory_in_the_way_and_writes_nothing(ssc_export, tmp_path):
    (tmp_path / "ssc-net-1-9.onnx").write_bytes(b"old onnx")
    (tmp_path / "ssc-net-1-9.tflite.manifest.json").mkdir()
    with pytest.raises(SscDeployError, match=r"ssc-net-1-9\.tflite\.manifest\.json: exists and is a directory"):
        export_model(ssc_export["ckpt"], targets="onnx,tflite", out_dir=tmp_path, force=True,
                     verify=VerifyOptions(n_verify=2), progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ssc-net-1-9.onnx", "ssc-net-1-9.tflite.manifest.json"]
    assert (tmp_path / "ssc-net-1-9.onnx").read_bytes() == b"old onnx"


def test_auto_lowering_through_export_model_records_each_winner(tmp_path):
    from ssc_deploy.quiet import quiet_native
    from ssc_deploy.export.lowerings.selection.autotune import candidate_lowerings

    with quiet_native():
        (r,) = export_module(*load_for_export(model_name="ssc-net-1-9", in_size=16), targets="onnx", out_dir=tmp_path,
                             lowering="auto", verify=VerifyOptions(n_verify=2), progress=False)
    assert r.manifest["model"]["lowering"] in candidate_lowerings("onnx")
    assert r.parity.passed and r.manifest["rewrite"]["max_abs_diff"] <= 1e-4
    assert load_manifest(r.artifact) == r.manifest


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"targets": "coreml"}, "unknown target 'coreml'"),
        ({"lowering": "nope"}, "unknown lowering 'nope'"),
        ({"targets": OnnxOptions(opset=7)}, "opset 7 is not supported"),
        ({"verify": VerifyOptions(atol=-1.0)}, "atol must be a positive number"),
        ({"targets": [OnnxOptions(), OnnxOptions(opset=13)]}, "onnx: options given twice"),
        ({"model_name": "no-such-net", "source": None}, "unknown model 'no-such-net'"),
        ({"source": None}, "nothing to export"),
    ],
)
def test_bad_arguments_fail_before_writing(kwargs, message, tmp_path):
    args = {"source": None, "model_name": "ssc-net-1-9", "out_dir": tmp_path / "out", "progress": False, **kwargs}
    if kwargs.get("source", 0) is None and "model_name" not in kwargs:
        args["model_name"] = None
    with pytest.raises(SscDeployError, match=message):
        export_model(**args)
    assert not (tmp_path / "out").exists()


def test_bad_checkpoints_are_one_line_errors(tmp_path):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(SscDeployError, match="garbage.pt"):
        export_model(garbage, out_dir=tmp_path / "out", progress=False)
    bare = tmp_path / "bare.pt"
    torch.save(create_model("ssc-net-1-9").state_dict(), bare)
    with pytest.raises(SscDeployError, match="does not match the architecture"):
        export_model(bare, model_name="resnet-1-1", out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_output_dir_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(SscDeployError, match="not a directory"):
        export_model(None, model_name="ssc-net-1-9", out_dir=tmp_path / "file", progress=False)
    with pytest.raises(SscDeployError, match="cannot create the output directory"):
        export_model(None, model_name="ssc-net-1-9", out_dir=tmp_path / "file" / "sub", progress=False)


def test_missing_runtime_package_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "litert_torch", None)  # import litert_torch now raises ImportError
    with pytest.raises(SscDeployError, match=r"'litert-torch' is not installed: pip install 'ssc-deploy\[export\]'"):
        export_model(None, model_name="ssc-net-1-9", targets="all", out_dir=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


class _PortableMean(nn.Module):
    """mean over (H, W) without keepdim: XNNPACK leaves it to the portable kernels."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.fc = nn.Linear(8, 4)

    def forward(self, x):
        return self.fc(self.conv(x).mean((2, 3)))


def test_executorch_warns_or_fails_on_portable_compute_ops(tmp_path):
    net, x = _PortableMean().eval(), torch.randn(1, 3, 8, 8)
    info = executorch_target.export(net, x, tmp_path / "a.pte")
    assert info.extra["delegation"]["portable_compute_ops"] == ["aten_mean_dim"]
    assert "aten_mean_dim x1" in info.warnings[0]
    with pytest.raises(SscDeployError, match="not delegated to XNNPACK.*aten_mean_dim.*--strict"):
        executorch_target.export(net, x, tmp_path / "b.pte", ExecutorchOptions(strict=True))
    assert not (tmp_path / "b.pte").exists()


def test_onnx_opset_and_checker_on_a_tiny_net(tmp_path):
    net = _PortableMean().eval()
    info = onnx_target.export(net, torch.randn(1, 3, 8, 8), tmp_path / "t.onnx", OnnxOptions(opset=13), metadata={"k": "v"})
    assert info.exporter["opset"] == 13 and info.input_name == "input" and info.output_name == "logits"
    out = onnx_target.run(tmp_path / "t.onnx", np.zeros((2, 3, 8, 8), np.float32))
    assert out.shape == (2, 4)


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(zoo_families()))
def test_every_family_exports_to_all_targets(family, tmp_path):
    name = smallest_member(family)
    ckpt = tmp_path / "c.pt"
    make_checkpoint(ckpt, name, in_size=SMALL_IN_SIZE)
    results = export_model(ckpt, targets="all", out_dir=tmp_path / "out", verify=VerifyOptions(n_verify=4), progress=False)
    assert [r.target for r in results] == ["onnx", "executorch", "tflite"]
    for r in results:
        assert r.manifest["parity"]["passed"] and r.manifest["parity"]["max_abs_diff"] < 1e-4
        assert r.manifest["model"]["name"] == name and r.manifest["model"]["family"] == family
        assert Manifest.from_dict(r.manifest).input_chw == [3, SMALL_IN_SIZE, SMALL_IN_SIZE]
        assert r.artifact.exists() and r.manifest_path.exists()
    import onnx

    ops = {n.op_type for n in onnx.load(str(results[0].artifact)).graph.node}
    assert "BatchNormalization" not in ops and "GatherElements" not in ops and "Gather" not in ops
    delegation = results[1].manifest["delegation"]
    assert delegation["by_op"]["aten_convolution_default"]["not_delegated"] == 0


def test_export_module_on_a_create_model_net(tmp_path):
    """The Python API: a module from create_model, its own classes and normalisation, verified on real images."""
    import ssc_deploy

    names, mean, std = ["a", "b", "c", "d"], [0.5, 0.4, 0.3], [0.2, 0.25, 0.3]
    net = randomize_bn(ssc_deploy.create_model("ssc-net-1-9", num_classes=4, in_size=SMALL_IN_SIZE), seed=2).train()
    results = ssc_deploy.export_module(
        net, torch.zeros(1, 3, SMALL_IN_SIZE, SMALL_IN_SIZE), ModelFacts(name="my-ssc", class_names=names, mean=mean, std=std),
        targets=("onnx", "tflite"), out_dir=tmp_path, verify=VerifyOptions(n_verify=8), progress=False)
    assert net.training  # evaluated in eval mode, handed back as it came
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [f"my-ssc.{ext}{m}" for ext in ("onnx", "tflite") for m in ("", ".manifest.json")]
        + ["my-ssc.ort", "my-ssc.required_operators.config"])
    x, _ = eval_batch("digits", 8, mean, std, SMALL_IN_SIZE)
    with torch.no_grad():
        ref = net.eval()(torch.from_numpy(x)).numpy()
    for r in results:
        m = Manifest.read(r.artifact)
        assert m.to_dict() == r.manifest == json.loads(r.manifest_path.read_text())
        assert list(r.manifest) == [k for k in MANIFEST_KEYS if k != "delegation"]
        assert m.file == r.artifact.name and m.target == r.target and m.sha256 == sha256_file(r.artifact)
        assert (m.model.name, m.model.family, m.model.trained, m.model.lowering) == ("my-ssc", "ssc-net", False, "pad-slice")
        assert m.model.params == count_params(net) and m.model.macs > 0
        assert m.classes == names and m.input.mean == mean and m.input.std == std
        assert m.input_chw == [3, SMALL_IN_SIZE, SMALL_IN_SIZE] and m.output.shape == [1, 4]
        assert m.source.checkpoint is None and m.source.test_top1 is None and m.checkpoint_file is None
        assert m.parity.passed and m.parity.data == "digits" and m.parity.n_images == 8
        assert m.parity.max_abs_diff < 1e-4 and m.rewrite["max_abs_diff"] < 1e-5
        m.check_artifact(r.artifact, by_target(r.target).runtime)
        out = TARGETS[r.target].run(r.artifact, x, nhwc=m.input.layout == "NHWC")
        assert np.abs(out - ref).max() < 1e-4 and (out.argmax(1) == ref.argmax(1)).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"example_input": torch.zeros(1, 3, 16, 12)}, r"example_input must be a float32 tensor of shape \(1, 3, S, S\)"),
        ({"example_input": torch.zeros(2, 3, 16, 16)}, "example_input must be"),
        ({"example_input": torch.zeros(1, 3, 16, 16, dtype=torch.float64)}, "example_input must be"),
        ({"model": "ssc-net-1-9"}, "model must be a torch.nn.Module"),
        ({"facts": ModelFacts(class_names=["only", "three", "names"])},
         "class_names has 3 names but the model outputs 10 logits"),
        ({"facts": ModelFacts(mean=[0.5])}, "export_module: 'mean' has 1 values but the input has 3 channels"),
        ({"facts": ModelFacts(std=[0.2, 0.0, 0.2])}, "export_module: 'std' must be positive"),
        ({"facts": ModelFacts(name="../escape")}, "cannot name an artifact file"),
        ({"facts": {"name": "x"}}, "facts must be a ModelFacts, got dict"),
        ({"targets": "coreml"}, "unknown target 'coreml'"),
    ],
)
def test_export_module_bad_input_fails_before_writing(kwargs, message, tmp_path):
    from ssc_deploy import export_module

    args = {"model": create_model("ssc-net-1-9", in_size=16), "example_input": torch.zeros(1, 3, 16, 16),
            "out_dir": tmp_path / "out", "progress": False, **kwargs}
    with pytest.raises(SscDeployError, match=message):
        export_module(args.pop("model"), args.pop("example_input"), **args)
    assert not (tmp_path / "out").exists()


def test_manifest_from_a_minimal_dict_and_broken_ones(ssc_export):
    parity = {"data": "digits", "n_images": 1, "max_abs_diff": 0.0, "top1_agreement": 1.0, "atol": 1e-4, "passed": True}
    d = {"schema": MANIFEST_SCHEMA, "file": "x.tflite", "sha256": "", "bytes": 1, "target": "tflite", "runtime": "tflite",
         "model": {"name": "x"}, "input": {"shape": [1, 8, 8, 3], "layout": "NHWC"}, "output": {}, "classes": [],
         "parity": parity, "source": {"test_top1": 0.9}, "unknown": 1}
    m = Manifest.from_dict(d)
    assert m.model.trained is True and m.input_chw == [3, 8, 8] and m.delegation is None and m.op_histogram == {}
    assert "delegation" not in m.to_dict() and "unknown" not in m.to_dict()
    with pytest.raises(SscDeployError, match="manifest field 'model' is not a JSON object"):
        Manifest.from_dict({**d, "model": "x"})
    with pytest.raises(SscDeployError, match="manifest is missing parity"):
        Manifest.from_dict({k: v for k, v in d.items() if k != "parity"})
    with pytest.raises(SscDeployError, match="manifest field 'parity' is incomplete"):
        Manifest.from_dict({**d, "parity": {"data": "digits"}})
    r = ssc_export["results"]["onnx"]
    with pytest.raises(SscDeployError, match="says runtime 'onnxruntime', the file is a tflite model"):
        Manifest.read(r.artifact).check_artifact(r.artifact, "tflite")
    with pytest.raises(SscDeployError, match="does not match its manifest's sha256"):
        Manifest.read(r.artifact).check_artifact(ssc_export["results"]["tflite"].artifact)


def test_manifest_reading_needs_no_torch(ssc_export):
    """``import ssc_deploy`` and the manifest reader work where torch is not installed (a board)."""
    import subprocess

    artifact = ssc_export["results"]["tflite"].artifact
    code = ("import sys; sys.modules['torch'] = None\n"
            "import ssc_deploy\nfrom ssc_deploy.export import Manifest\n"
            f"m = Manifest.read({str(artifact)!r}); print(m.model.name, m.input_chw, m.classes[0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["ssc-net-1-9", "[3,", "32,", "32]", "zero"]
