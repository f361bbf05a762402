"""Manifests are data from anywhere: every CLI command that reads one (``bench``, ``inspect``) is run
against malformed ones (fuzzed fields, wrong types, huge numbers, NaN, path characters in names).
Each ends in one ``error:`` line naming the file and the field, or in a correct run; never a
traceback, never a file written outside the work and output directories (issue 12 #1, #8)."""

from __future__ import annotations

import copy
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.manifest import Manifest, manifest_path

FAST = ["--runs", "2", "--warmup", "0", "--n-eval", "8", "--baselines", ""]


def _tiny() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 10)).eval()


@pytest.fixture(scope="module")
def artifact(tmp_path_factory) -> Path:
    """One small verified ONNX export and its manifest."""
    from ssc_deploy.export import ModelFacts, VerifyOptions, export_module

    out = tmp_path_factory.mktemp("hostile") / "exports"
    return Path(export_module(_tiny(), torch.zeros(1, 3, 16, 16), ModelFacts(name="tiny"), out_dir=out,
                              verify=VerifyOptions(n_verify=4), progress=False)[0].artifact)


def _set(doc: dict, where: str, value) -> dict:
    doc = copy.deepcopy(doc)
    *parents, last = where.split(".")
    node = doc
    for key in parents:
        node = node[key]
    if value is _DELETE:
        del node[last]
    else:
        node[last] = value
    return doc


class _Deleted:
    def __repr__(self) -> str:  # a stable test id (pytest-xdist compares ids across workers)
        return "<deleted>"


_DELETE = _Deleted()
# (field, value, the field the error names)
BAD_FIELDS = [
    ("model.name", 5, "model.name"),
    ("model.name", ["a"], "model.name"),
    ("model.name", " ", "model.name"),
    ("model", [], "model"),
    ("model.params", 10**40, "model.params"),
    ("model.trained", "yes", "model.trained"),
    ("input.shape", "1,3,16,16", "input.shape"),
    ("input.shape", [1, 3, 10**30, 16], "input.shape"),
    ("input.shape", [1, 3, 0, 16], "input.shape"),
    ("input.shape", [1, 3, 16], "input.shape"),
    ("input.layout", "XYZ", "input.layout"),
    ("input.mean", [float("nan")] * 3, "input.mean"),
    ("input.mean", [0.5, 0.5], "input.mean"),
    ("input.std", [0.0, 0.0, 0.0], "input.std"),
    ("input.std", [1e400] * 3, "input.std"),
    ("input", {"shape": {"a": 1}}, "input.shape"),
    ("output.shape", [[1]], "output.shape"),
    ("classes", {"0": "a"}, "classes"),
    ("classes", [1, 2], "classes"),
    ("classes", ["only one"], "classes"),
    ("bytes", -1, "bytes"),
    ("bytes", 1e300, "bytes"),
    ("bytes", True, "bytes"),
    ("sha256", None, "sha256"),
    ("parity.passed", "yes", "parity.passed"),
    ("parity.atol", _DELETE, "parity"),
    ("parity.max_abs_diff", float("nan"), "parity.max_abs_diff"),
    ("source", [], "source"),
    ("source.checkpoint", 7, "source.checkpoint"),
    ("source.test_top1", "high", "source.test_top1"),
    ("op_histogram", {"Conv": "x"}, "op_histogram"),
    ("exporter", "x", "exporter"),
    ("warnings", "x", "warnings"),
    ("delegation", {"by_op": []}, "delegation.by_op"),
    ("delegation", {"by_op": {"conv": {"delegated": "all"}}}, "delegation.by_op.conv"),
]
# Files that are no manifest at all: (name, bytes)
BAD_FILES = [
    ("not json", b"{not json"),
    ("not utf-8", b'{"schema": "\xff\xfe"}'),
    ("deep nesting", b"[" * 200_000 + b"]" * 200_000),
    ("huge integer", b'{"bytes": ' + b"9" * 5000 + b"}"),
    ("a list", b"[1, 2, 3]"),
    ("another schema", b'{"schema": "something-else/1"}'),
]


def _doc(artifact: Path) -> dict:
    return json.loads(manifest_path(artifact).read_text())


@pytest.mark.parametrize("where,value,field", BAD_FIELDS, ids=[f"{w}={v!r}"[:40] for w, v, _ in BAD_FIELDS])
def test_every_malformed_field_is_one_line_naming_it(artifact, where, value, field):
    with pytest.raises(SscDeployError) as exc:
        Manifest.from_dict(_set(_doc(artifact), where, value), "m.json")
    message = str(exc.value)
    assert message.startswith("m.json: ") and f"'{field}'" in message and "\n" not in message, message


def _copy(artifact: Path, dest: Path, text: bytes | str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    art = dest / artifact.name
    shutil.copy(artifact, art)
    manifest_path(art).write_bytes(text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text)
    return art


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _refused(capsys, argv: list[str], *needles: str) -> None:
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc != 0, argv
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, (needle, err)


@pytest.mark.parametrize("where,value,field", BAD_FIELDS[::3], ids=[f"{w}={v!r}"[:40] for w, v, _ in BAD_FIELDS[::3]])
def test_bench_and_inspect_refuse_a_malformed_manifest(artifact, tmp_path, capsys, where, value, field):
    art = _copy(artifact, tmp_path / "in", json.dumps(_set(_doc(artifact), where, value)))
    before = _files(tmp_path)
    for argv in (["bench", str(art), *FAST, "--no-store", "--work-dir", str(tmp_path / "work"),
                  "--json", str(tmp_path / "b.json")], ["inspect", str(art)]):
        _refused(capsys, argv, f"{manifest_path(art)}: manifest field '{field}'")
    assert _files(tmp_path) - before <= {"work"}  # nothing but the (empty) work directory


@pytest.mark.parametrize("name,text", BAD_FILES, ids=[n for n, _ in BAD_FILES])
def test_bench_and_inspect_refuse_a_file_that_is_no_manifest(artifact, tmp_path, capsys, name, text):
    art = _copy(artifact, tmp_path / "in", text)
    for argv in (["bench", str(art), *FAST, "--no-store"], ["inspect", str(art)]):
        _refused(capsys, argv, str(manifest_path(art)))


def test_an_oversized_manifest_is_refused_unread(artifact, tmp_path, capsys):
    art = _copy(artifact, tmp_path / "in", b"")
    with open(manifest_path(art), "wb") as f:
        f.truncate(17 << 20)  # sparse: no disk used
    _refused(capsys, ["inspect", str(art)], "too large for a manifest")


HOSTILE_NAMES = ["{victim}", "../../x", "../" * 12 + "tmp/x", "a\nb", "nul\x00name", "[bold]x[/bold]", "\udc80",
                 "..", "-rf", "x" * 500, "a|b*c`d$e$"]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=[repr(n)[:24] for n in HOSTILE_NAMES])
def test_names_from_a_manifest_never_become_paths(artifact, tmp_path, monkeypatch, capsys, name):
    victim = tmp_path / "victim"
    name = name.format(victim=victim)
    cwd = tmp_path / "a" / "b" / "cwd"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    doc = _set(_doc(artifact), "model.name", name)
    doc["classes"] = [name, "[/bold]", *doc["classes"][2:]]
    art = _copy(artifact, tmp_path / "in", json.dumps(doc))
    out, work = tmp_path / "out", tmp_path / "work"
    before = _files(tmp_path)
    rc = main(["bench", str(art), *FAST, "--no-store", "--work-dir", str(work), "--json", str(out / "b.json"),
               "--csv", str(out / "b.csv"), "--report", str(out / "report")])
    cap = capsys.readouterr()
    assert rc == 0, cap.err
    new = _files(tmp_path) - before
    assert all(p.startswith(("work", "out")) for p in new), new
    assert not any(victim.parent.glob("victim*")) and not (Path("/tmp") / "x.candidate.npz").exists()
    assert [p.name for p in (work / "inputs").iterdir()] == [next(iter((work / "inputs").iterdir())).name]
    assert json.loads((out / "b.json").read_text())["rows"][0]["model"] == name
    assert "Traceback" not in cap.err and cap.err == ""
    shown = name.encode("utf-8", "backslashreplace").decode().replace("\n", "\\n").replace("\x00", "\\x00")
    assert shown[:20] in cap.out.replace("\n", "")  # printed as data (escaped), not as markup
    assert "| " in (out / "report" / "report.md").read_text()


def test_a_checkpoint_named_by_a_manifest_is_never_loaded(artifact, tmp_path, capsys):
    """Only a checkpoint the user passes is loaded; the one a manifest names is data."""
    payload = tmp_path / "elsewhere" / "payload.pt"
    payload.parent.mkdir()
    payload.write_bytes(b"PK\x03\x04 not a checkpoint, and never opened")
    art = _copy(artifact, tmp_path / "in", json.dumps(_set(_doc(artifact), "source.checkpoint", str(payload))))
    os.utime(payload, (0, 0))
    js = tmp_path / "b.json"
    assert main(["bench", str(art), *FAST, "--no-store", "--json", str(js)]) == 0
    res = json.loads(js.read_text())
    assert res["rows"][0]["parity_max_abs_diff"] is None and res["models"][0]["checkpoint"] is None
    assert any(n.startswith("no checkpoint: parity with PyTorch not checked") for n in res["models"][0]["notes"])
    assert payload.stat().st_atime == 0  # not even read


def test_inspect_prints_the_class_names_it_exported(tmp_path):
    """Names with rich markup and a lone surrogate (a file name from an image folder) print as data
    under a UTF-8 locale, from the manifest export wrote itself."""
    from ssc_deploy.export import ModelFacts, VerifyOptions, export_module

    classes = ["[/bold]", "[bold red]x", "\udc80name", *map(str, range(3, 10))]
    res = export_module(_tiny(), torch.zeros(1, 3, 16, 16), ModelFacts(name="tiny", class_names=classes),
                        out_dir=tmp_path, verify=VerifyOptions(n_verify=4), progress=False)[0]
    env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8", "PYTHONIOENCODING": "", "COLUMNS": "300"}
    done = subprocess.run([sys.executable, "-c", "import sys; from ssc_deploy.cli import main; sys.exit(main())",
                           "inspect", str(res.artifact)], capture_output=True, text=True, env=env)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "[/bold], [bold red]x, \\udc80name, 3" in done.stdout


def test_normalize_refuses_statistics_it_cannot_divide_by():
    from ssc_deploy.data import normalize

    images = np.zeros((2, 8, 8, 3), np.uint8)
    with np.errstate(all="raise"):
        for mean, std, word in (([0.5] * 3, [0.0] * 3, "std"), ([0.5] * 2, [1.0] * 3, "mean"),
                                ([math.nan] * 3, [1.0] * 3, "mean")):
            with pytest.raises(SscDeployError, match=f"'{word}'"):
                normalize(images, mean, std, source="m.json")
