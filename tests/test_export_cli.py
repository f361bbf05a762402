"""`ssc-deploy export` and `ssc-deploy inspect` through the real CLI entry point."""

from __future__ import annotations

import json
import sys

import pytest

from ssc_deploy.checkpoint import sha256_file
from ssc_deploy.cli import main


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "out"
    rc = main(["export", "--model", "ssc-net-1-9", "--target", "onnx", "--out", str(out), "--n-verify", "4",
               "--lowering", "pad-slice", "--no-progress"])
    assert rc == 0
    return out


def test_export_writes_artifact_and_manifest(exported):
    assert sorted(p.name for p in exported.iterdir()) == ["ssc-net-1-9.onnx", "ssc-net-1-9.onnx.manifest.json",
                                                          "ssc-net-1-9.ort", "ssc-net-1-9.required_operators.config"]
    m = json.loads((exported / "ssc-net-1-9.onnx.manifest.json").read_text())
    assert m["model"]["trained"] is False and m["parity"]["passed"] and m["parity"]["n_images"] == 4


def test_export_prints_parity_table(tmp_path, capsys):
    rc = main(["export", "--model", "ssc-net-1-9", "-t", "onnx", "-o", str(tmp_path), "--n-verify", "2",
               "--no-progress", "--opset", "13"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "ssc-net-1-9.onnx" in out and "passed" in out and "not applicable" in out and "2 digits" in out


def test_export_json_output_is_scriptable(tmp_path, capsys):
    rc = main(["export", "--model", "ssc-net-1-9", "-t", "onnx", "-o", str(tmp_path), "--n-verify", "2", "--json"])
    assert rc == 0
    (m,) = json.loads(capsys.readouterr().out)
    assert m["target"] == "onnx" and m["runtime"] == "onnxruntime" and m["sha256"] == sha256_file(m["artifact"])


def test_inspect_prints_manifest_and_ops(exported, capsys):
    assert main(["inspect", str(exported / "ssc-net-1-9.onnx")]) == 0
    out = capsys.readouterr().out
    assert "ssc-net-1-9" in out and "onnxruntime" in out and "Conv" in out and "Slice" in out
    assert main(["inspect", str(exported / "ssc-net-1-9.onnx"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["target"] == "onnx" and info["manifest"]["file"] == "ssc-net-1-9.onnx"
    assert info["op_histogram"]["Conv"] == 22


def test_existing_output_refused_then_force(exported, capsys):
    before = sha256_file(exported / "ssc-net-1-9.onnx")
    rc = main(["export", "--model", "ssc-net-1-9", "-t", "onnx", "--out", str(exported), "--no-progress"])
    assert rc != 0
    assert "already exists (use --force to overwrite)" in _one_error_line(capsys)
    assert sha256_file(exported / "ssc-net-1-9.onnx") == before
    rc = main(["export", "--model", "ssc-net-1-9", "-t", "onnx", "--out", str(exported), "--n-verify", "2",
               "--no-progress", "--force"])
    assert rc == 0


def test_force_onto_a_directory_is_one_line_and_keeps_it(tmp_path, capsys):
    (tmp_path / "ssc-net-1-9.onnx").mkdir()
    (tmp_path / "ssc-net-1-9.onnx" / "mine.txt").write_text("mine")
    rc = main(["export", "--model", "ssc-net-1-9", "-t", "onnx", "--out", str(tmp_path), "--n-verify", "2",
               "--no-progress", "--force"])
    assert rc != 0
    assert "ssc-net-1-9.onnx: exists and is a directory; nothing was exported" in _one_error_line(capsys)
    assert [p.name for p in tmp_path.iterdir()] == ["ssc-net-1-9.onnx"]
    assert (tmp_path / "ssc-net-1-9.onnx" / "mine.txt").read_text() == "mine"


def test_parity_failure_exits_nonzero_and_writes_nothing(tmp_path, capsys):
    rc = main(["export", "--model", "ssc-net-1-9", "-t", "onnx", "--out", str(tmp_path / "o"), "--n-verify", "2",
               "--atol", "1e-12", "--no-progress"])
    assert rc == 3
    line = _one_error_line(capsys)
    assert "output 'logits' differs from PyTorch by" in line and "no artifact was written" in line
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "ssc-net-1-9", "--target", "coreml"], "unknown target 'coreml'"),
        (["--model", "ssc-net-1-9", "--lowering", "roll"], "unknown lowering 'roll'"),
        (["--model", "ssc-net-99"], "unknown model"),
        ([], "nothing to export"),
        (["no/such/file.pt"], "no such checkpoint file"),
        (["--model", "ssc-net-1-9", "--data", "cifar10"], "needs a path"),
    ],
)
def test_bad_input_is_one_line(args, message, tmp_path, capsys):
    rc = main(["export", *args, "--out", str(tmp_path / "o"), "--no-progress"])
    assert rc != 0
    assert message in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_bad_checkpoint_file(tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    assert main(["export", str(bad), "--out", str(tmp_path / "o")]) != 0
    assert "bad.pt" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_missing_runtime_names_extra(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "executorch.exir", None)
    assert main(["export", "--model", "ssc-net-1-9", "-t", "executorch", "--out", str(tmp_path / "o")]) != 0
    assert "pip install 'ssc-deploy[executorch]'" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


def test_inspect_bad_files(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "missing.onnx")]) != 0
    assert "no such file" in _one_error_line(capsys)
    (tmp_path / "notes.txt").write_text("hi")
    assert main(["inspect", str(tmp_path / "notes.txt")]) != 0
    assert "unknown artifact type" in _one_error_line(capsys)
    (tmp_path / "broken.onnx").write_bytes(b"not onnx")
    assert main(["inspect", str(tmp_path / "broken.onnx")]) != 0
    assert "not a readable onnx file" in _one_error_line(capsys)


def test_list_lowerings_and_help(capsys):
    assert main(["export", "--list-lowerings", "--json"]) == 0
    assert "pad-slice" in json.loads(capsys.readouterr().out)
    assert main(["export", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--target", "--lowering", "--nhwc", "--strict", "--atol", "--force", "--model", "--opset"):
        assert option in out


def test_class_names_that_do_not_match_the_outputs_are_refused(tmp_path, capsys):
    """Issue 12 #4: 1 class name for 10 outputs was exported with exit 0 and output.shape [1, 1]."""
    from ssc_deploy.checkpoint import Checkpoint, save_checkpoint
    from ssc_deploy.models import create_model

    net = create_model("ssc-net-1-9", num_classes=10)
    ckpt = tmp_path / "one-name.pt"
    save_checkpoint(Checkpoint(model_name="ssc-net-1-9", config={"num_classes": 10, "in_size": 32},
                               state_dict=net.state_dict(), classes=["only"], mean=[0.5] * 3, std=[0.25] * 3,
                               input_shape=[3, 32, 32]), ckpt)
    (tmp_path / "o").mkdir()
    assert main(["export", str(ckpt), "--out", str(tmp_path / "o"), "--no-progress"]) != 0
    assert "class_names has 1 names but the model outputs 10 logits" in _one_error_line(capsys)
    assert list((tmp_path / "o").iterdir()) == []


def test_the_manifest_output_shape_is_the_artifacts_own(exported):
    """The shape in the manifest is read from what the file outputs, not assumed from the class names."""
    import numpy as np

    from ssc_deploy.sessions import load_runner

    art = next(exported.glob("*.onnx"))
    m = json.loads((exported / (art.name + ".manifest.json")).read_text())
    logits = load_runner("onnxruntime", art)(np.zeros([1, 3, 32, 32], np.float32))
    assert m["output"]["shape"] == list(np.asarray(logits).reshape(1, -1).shape) == [1, len(m["classes"])]
