"""Checkpoints: round trip, safe loading (no code runs), and one-line errors for bad files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from ssc_deploy.checkpoint import FORMAT, Checkpoint, load_checkpoint, save_checkpoint
from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.models import create_model

MODEL = "ssc-net-1-9"


class _Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _make_ckpt(num_classes: int = 10) -> tuple[Checkpoint, torch.nn.Module]:
    torch.manual_seed(0)
    model = create_model(MODEL, num_classes=num_classes).eval()
    ckpt = Checkpoint(
        model_name=MODEL,
        config={"num_classes": num_classes, "in_size": 32},
        state_dict=model.state_dict(),
        classes=[f"c{i}" for i in range(num_classes)],
        mean=[0.1, 0.2, 0.3],
        std=[0.4, 0.5, 0.6],
        input_shape=[3, 32, 32],
        metrics={"test_top1": 0.5, "history": [{"epoch": 1, "train_loss": 1.0}]},
        provenance={"tool_version": "0.1.0", "data": "digits"},
        training_state={"epoch": 1, "optimizer": {"state": {0: {"momentum_buffer": torch.ones(2)}},
                                                  "param_groups": [{"lr": 0.1, "nesterov": True, "foreach": None, "params": [0]}]},
                        "torch_rng": torch.get_rng_state()},
    )
    return ckpt, model


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def test_round_trip_rebuilds_the_same_network(tmp_path: Path):
    ckpt, model = _make_ckpt()
    path = tmp_path / "m.pt"
    save_checkpoint(ckpt, path)
    back = load_checkpoint(path)
    assert back.model_name == MODEL and back.classes == ckpt.classes and back.num_classes == 10
    assert back.mean == ckpt.mean and back.std == ckpt.std and back.input_shape == [3, 32, 32]
    assert back.metrics["test_top1"] == 0.5 and back.provenance["data"] == "digits"
    assert back.training_state["optimizer"]["param_groups"][0]["nesterov"] is True
    assert len(back.sha256) == 64 and back.path == str(path)
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(back.build_model()(x), model(x))
    # the raw file is plain data: a strict weights_only load needs no extra allowances
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["format_version"] == 1


def test_failed_save_keeps_the_old_file(tmp_path: Path):
    ckpt, _ = _make_ckpt()
    path = tmp_path / "m.pt"
    save_checkpoint(ckpt, path)
    before = path.read_bytes()
    ckpt.metrics = {"bad": lambda: None}  # torch.save cannot pickle a lambda
    with pytest.raises(Exception):
        save_checkpoint(ckpt, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]  # no temporary left behind


def test_unsafe_content_is_never_written(tmp_path: Path):
    ckpt, _ = _make_ckpt()
    path = tmp_path / "m.pt"
    save_checkpoint(ckpt, path)
    before = path.read_bytes()
    ckpt.provenance = {"torch_version": torch.__version__}  # a TorchVersion, not a str
    with pytest.raises(SscDeployError, match="not written: .*TorchVersion"):
        save_checkpoint(ckpt, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.pt"]


def test_pickled_code_is_refused_and_never_runs(tmp_path: Path, capsys):
    marker = tmp_path / "payload-ran"
    ckpt, _ = _make_ckpt()
    evil = ckpt.to_dict()
    evil["metrics"] = {"x": _Payload(marker)}
    path = tmp_path / "evil.pt"
    torch.save(evil, path)
    with pytest.raises(SscDeployError, match="refused"):
        load_checkpoint(path)
    assert not marker.exists()
    assert main(["ckpt-info", str(path)]) != 0
    assert "refused" in _one_error_line(capsys)
    assert main(["train", "--resume", str(path), "--no-progress"]) != 0
    assert "refused" in _one_error_line(capsys)
    assert not marker.exists()


@pytest.mark.parametrize("kind", ["truncated", "text", "empty", "missing", "directory"])
def test_bad_files_are_one_line(tmp_path: Path, capsys, kind: str):
    ckpt, _ = _make_ckpt()
    path = tmp_path / "bad.pt"
    if kind == "truncated":
        save_checkpoint(ckpt, path)
        path.write_bytes(path.read_bytes()[:5000])
        expected = "truncated or not a PyTorch checkpoint"
    elif kind == "text":
        path.write_text("this is a text file, not a checkpoint\n")
        expected = "not a PyTorch checkpoint"
    elif kind == "empty":
        path.write_bytes(b"")
        expected = "empty file"
    elif kind == "missing":
        expected = "no such checkpoint file"
    else:
        path.mkdir()
        expected = "is a directory"
    with pytest.raises(SscDeployError, match=expected):
        load_checkpoint(path)
    assert main(["ckpt-info", str(path)]) != 0
    line = _one_error_line(capsys)
    assert str(path) in line


def test_mismatched_architecture_names_first_key_and_shapes(tmp_path: Path, capsys):
    ckpt, _ = _make_ckpt(num_classes=10)
    ckpt.config = {"num_classes": 12, "in_size": 32}
    path = tmp_path / "m.pt"
    save_checkpoint(ckpt, path)
    with pytest.raises(SscDeployError, match=r"'[\w.]+' has shape \(10, \d+\) in the file, \(12, \d+\) in the model"):
        load_checkpoint(path).build_model()
    ckpt.config = {"num_classes": 10, "in_size": 32}
    ckpt.model_name = "ssc-net-2-9"
    save_checkpoint(ckpt, path)
    with pytest.raises(SscDeployError, match="does not match the architecture: missing key '"):
        load_checkpoint(path).build_model()
    assert main(["ckpt-info", str(path)]) != 0
    assert "does not match the architecture" in _one_error_line(capsys)


def test_bare_state_dict_needs_model(tmp_path: Path, capsys):
    _, model = _make_ckpt()
    path = tmp_path / "sd.pt"
    torch.save(model.state_dict(), path)
    with pytest.raises(SscDeployError, match="pass --model"):
        load_checkpoint(path)
    assert main(["ckpt-info", str(path)]) != 0
    assert "pass --model" in _one_error_line(capsys)
    back = load_checkpoint(path, model_name=MODEL)
    assert back.num_classes == 10
    x = torch.randn(1, 3, 32, 32)
    assert torch.equal(back.build_model()(x), model(x))
    assert main(["ckpt-info", str(path), "--model", MODEL, "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["model"] == MODEL and info["parameters"] == sum(p.numel() for p in model.parameters())
    assert main(["ckpt-info", str(path), "--model", "ssc-net-3-9"]) != 0
    assert "does not match the architecture" in _one_error_line(capsys)


def test_unsupported_format_version(tmp_path: Path):
    ckpt, _ = _make_ckpt()
    d = ckpt.to_dict()
    d["format_version"] = 99
    path = tmp_path / "v99.pt"
    torch.save(d, path)
    with pytest.raises(SscDeployError, match="format version 99 is not supported"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "damage,expected",
    [
        ("config", r"its model config .* does not fit 'ssc-net-1-9'"),
        ("value", r"'fc.weight' is a list in the file, not a tensor"),
        ("state_dict", r"the checkpoint's state_dict is a list, not a dict"),
    ],
)
def test_malformed_contents_are_one_line(tmp_path: Path, capsys, damage: str, expected: str):
    """A well-formed file whose fields are wrong (hand-edited or from another tool): one line, no traceback."""
    ckpt, _ = _make_ckpt()
    d = ckpt.to_dict()
    if damage == "config":
        d["model"]["config"]["width"] = 2
    elif damage == "value":
        d["state_dict"] = {**d["state_dict"], "fc.weight": [1.0, 2.0]}
    else:
        d["state_dict"] = [1, 2]
    path = tmp_path / "m.pt"
    torch.save(d, path)
    with pytest.raises(SscDeployError, match=expected):
        load_checkpoint(path).build_model()
    assert main(["ckpt-info", str(path)]) != 0
    assert str(path) in _one_error_line(capsys)


def _cli_stderr(*args: str) -> tuple[int, str]:
    """``ssc-deploy ARGS`` in a child process: its exit code and the whole of stderr (warnings included)."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", "import sys; from ssc_deploy.cli import main; sys.exit(main())", *args],
                          capture_output=True, text=True, timeout=300)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("name", 5, r"the model name is 5, not a string"),
        ("mean", [0.5, 0.5], r"'mean' has 2 values but the input has 3 channels"),
        ("std", [0.0, 0.0, 0.0], r"'std' must be positive and finite"),
        ("std", [0.3, float("nan"), 0.3], r"'std' must be positive and finite"),
        ("mean", ["a", "b", "c"], r"'mean' must be 3 numbers"),
        ("classes", "abc", r"'classes' must be a list of names"),
        ("shape", [3, 32], r"'input.shape' must be 3 positive integers"),
    ],
)
def test_malformed_fields_are_named(tmp_path: Path, capsys, field: str, value, expected: str):
    ckpt, _ = _make_ckpt()
    d = ckpt.to_dict()
    if field == "name":
        d["model"]["name"] = value
    elif field == "classes":
        d["classes"] = value
    else:
        d["input"][field] = value
    path = tmp_path / "m.pt"
    torch.save(d, path)
    with pytest.raises(SscDeployError, match=expected):
        load_checkpoint(path)
    assert main(["ckpt-info", str(path)]) != 0
    line = _one_error_line(capsys)
    assert str(path) in line and "Error:" not in line.partition(": ")[2]


def test_non_finite_weights_are_refused_at_load(tmp_path: Path, capsys):
    ckpt, _ = _make_ckpt()
    sd = dict(ckpt.state_dict)
    sd["stem.0.weight"] = sd["stem.0.weight"].clone()
    sd["stem.0.weight"].view(-1)[3] = float("nan")
    ckpt.state_dict = sd
    path = tmp_path / "nan.pt"
    save_checkpoint(ckpt, path)
    with pytest.raises(SscDeployError, match=r"the tensor 'stem.0.weight' holds NaN or infinite values"):
        load_checkpoint(path)
    bare = tmp_path / "bare.pt"
    torch.save({**sd, "fc.bias": torch.full_like(sd["fc.bias"], float("inf"))}, bare)
    with pytest.raises(SscDeployError, match=r"holds NaN or infinite values"):
        load_checkpoint(bare, model_name=MODEL)
    assert main(["export", str(path), "--out", str(tmp_path / "x")]) != 0
    assert "holds NaN or infinite values" in _one_error_line(capsys)
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())


@pytest.mark.parametrize("kind", ["random-pk", "other-zip"])
def test_a_zip_that_is_not_a_checkpoint_is_called_so(tmp_path: Path, kind: str):
    import zipfile

    path = tmp_path / "z.pt"
    if kind == "random-pk":
        path.write_bytes(b"PK" + os.urandom(5000))
    else:
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("hello.txt", "hi")
    with pytest.raises(SscDeployError, match="not a PyTorch checkpoint") as exc:
        load_checkpoint(path)
    assert "pickled" not in str(exc.value) and "enforce fail" not in str(exc.value)


def test_pickle_protocol_5_is_one_line_without_warnings(tmp_path: Path):
    ckpt, _ = _make_ckpt()
    for name, kw in (("legacy.pt", {"_use_new_zipfile_serialization": False}), ("zip.pt", {})):
        path = tmp_path / name
        torch.save(ckpt.to_dict(), path, pickle_protocol=5, **kw)
        rc, err = _cli_stderr("ckpt-info", str(path))
        assert rc != 0 and err.count("\n") == 1, err
        assert err.startswith(f"error: {path}: written with pickle protocol 5") and "pickled Python objects" not in err
    # protocol 3 loads, and its warning is not shown
    path = tmp_path / "p3.pt"
    torch.save(ckpt.to_dict(), path, pickle_protocol=3)
    rc, err = _cli_stderr("ckpt-info", str(path))
    assert rc == 0 and err == "", err


def _deflate_bomb(path: Path, mib: int) -> None:
    """A real torch checkpoint whose zero-filled ``mib`` MiB tensor is deflated: a small file, a large load."""
    import zipfile

    plain = path.with_suffix(".plain")
    torch.save({"w": torch.zeros(mib << 18)}, plain)  # calloc'd zeros: no resident memory to write them
    with zipfile.ZipFile(plain) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for info in src.infolist():
            with src.open(info) as fin, dst.open(info.filename, "w", force_zip64=True) as fout:
                while chunk := fin.read(1 << 22):
                    fout.write(chunk)
    plain.unlink()


def test_a_deflate_bomb_is_refused_before_it_is_read(tmp_path: Path):
    path = tmp_path / "bomb.pt"
    _deflate_bomb(path, 256)
    assert path.stat().st_size < 2 << 20
    with pytest.raises(SscDeployError, match=r"declares 256 MiB of contents in a \d+ [KM]iB file"):
        load_checkpoint(path, model_name=MODEL)
    # The CLI refuses it too, without ever holding the 256 MiB (torch alone takes about 240 MiB here):
    # the child writes its own peak (VmHWM: this process image only) to a file as it exits.
    import subprocess
    import sys

    peak = tmp_path / "peak"
    code = ("import atexit, re, sys; from pathlib import Path; "
            f"atexit.register(lambda: Path({str(peak)!r}).write_text(re.search(r'VmHWM:\\s+(\\d+)', "
            "Path('/proc/self/status').read_text()).group(1))); "
            "from ssc_deploy.cli import main; sys.exit(main())")
    proc = subprocess.run([sys.executable, "-c", code, "ckpt-info", str(path), "--model", MODEL],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and proc.stderr.count("\n") == 1 and "zip bomb" in proc.stderr, proc.stderr
    assert int(peak.read_text()) < 400 * 1024, f"peak {int(peak.read_text()) >> 10} MiB"


def test_ckpt_info_prints_names_as_data(tmp_path: Path, capsys, monkeypatch):
    """Issue 12 #8: what ckpt-info shows of a checkpoint (its path, names) is data, never rich markup."""
    ckpt, _ = _make_ckpt()
    monkeypatch.chdir(tmp_path)  # a short relative path: an 80-column table must not wrap it
    path = Path("[bold]m[/bold].pt")
    save_checkpoint(ckpt, path)
    assert main(["ckpt-info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "[bold]m[/bold].pt" in out, out
