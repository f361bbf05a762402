"""Untrusted ``.pt2`` files (issue 19, holes 1-2): aten ops that write files, and two zip readers.

Every case is a generated archive (tests/support/pt2_archives.py) given to the loader, to
``export`` and to ``inspect --sparsity``: each is refused in one line naming the problem, its
payload never runs or writes, and no output is created.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
import torch

from ssc_deploy.cli import main
from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.readers.program import ALLOWED_OPS, load_program
from tests.support import pt2_archives as A
from tests.support.foreign_ssc import PlainCNN


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def _refused_everywhere(path: Path, tmp_path: Path, capsys, expected: str) -> None:
    with pytest.raises(SscDeployError, match=expected):
        load_program(path)
    out = tmp_path / "out"
    assert main(["export", str(path), "--target", "onnx", "--out", str(out), "--no-progress"]) != 0
    assert expected in _one_error_line(capsys) and not out.exists()
    assert main(["inspect", "--sparsity", str(path)]) != 0
    assert expected in _one_error_line(capsys)


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return A.saved(PlainCNN(), tmp_path_factory.mktemp("pt2") / "good.pt2")


def test_a_program_of_aten_ops_that_writes_a_file_is_refused_and_the_file_is_untouched(tmp_path: Path, capsys):
    target = tmp_path / "bashrc"
    target.write_text("the user's file\n")
    evil = A.file_writer(tmp_path, target, b"echo pwned\n")
    _refused_everywhere(evil, tmp_path, capsys, "'torch.ops.aten.from_file.default', which is not one of the pure")
    assert target.read_text() == "the user's file\n"


@pytest.mark.parametrize("op", ["aten.from_file.default", "aten.copy_.default", "aten.empty.memory_format",
                                "aten.normal_.default", "aten.set_.source_Storage", "aten.relu.out",
                                "aten._local_scalar_dense.default", "aten.index_put_.default"])
def test_ops_outside_the_allow_list_are_refused_by_name(good: Path, tmp_path: Path, op: str):
    assert op not in ALLOWED_OPS
    evil = A.rezip(good, tmp_path / "evil.pt2", A.with_target(f"torch.ops.{op}"))
    with pytest.raises(SscDeployError, match=f"refused: the graph calls 'torch.ops.{op}'"):
        load_program(evil)


def test_every_zoo_family_and_the_foreign_nets_use_only_allowed_ops():
    """The allow-list is not too tight: what torch.export writes for the nets we ship loads."""
    from ssc_deploy import create_model

    seen = set()
    for name in ("ssc-net-1-9", "mobilenetv2", "igcv3-d-0.5x", "resnet-9-1", "shift-resnet-9-1",
                 "channel-sparse-resnet-9-0.5"):
        program = torch.export.export(create_model(name, num_classes=10, in_size=16).eval(),
                                      (torch.zeros(1, 3, 16, 16),), strict=False)
        seen |= {str(n.target) for n in program.graph.nodes if n.op == "call_function"}
    assert seen - {"<built-in function getitem>"} <= ALLOWED_OPS


def test_a_hostile_archive_hidden_before_a_clean_one_is_refused_and_nothing_runs(good: Path, tmp_path: Path, capsys):
    """Python's zipfile reads the clean archive at the end; torch's reader followed the stored
    offsets of the hostile one at the start and unpickled its example inputs."""
    marker = tmp_path / "payload-ran"
    hostile = A.rezip(good, tmp_path / "hostile.pt2", A.sample_payload(marker))
    evil = A.concatenated(hostile, good, tmp_path / "evil.pt2")
    with zipfile.ZipFile(evil) as z:  # the check's reader sees only the clean members
        assert z.read(z.namelist()[0]) == zipfile.ZipFile(good).read(z.namelist()[0])
    _refused_everywhere(evil, tmp_path, capsys, "data before the first member")
    assert not marker.exists()


@pytest.mark.parametrize("make, expected", [
    (lambda g, d: A.with_gap(g, d, after_member=2), "data between members"),
    (lambda g, d: A.with_gap(g, d, after_member=0, junk=b"PK\x03\x04" + b"\0" * 60), "data between members"),
    (lambda g, d: A.with_trailer(g, d, b"PK\x03\x04 a second archive"), "data after its directory"),
    (lambda g, d: A.renamed_in_local_header(g, d, "sample_inputs/model.pt", "sample_inputs/xodel.pt"),
     "disagrees with the archive's directory"),
    (A.compressed, "is compressed"),
])
def test_zip_layout_tricks_are_refused(good: Path, tmp_path: Path, capsys, make, expected: str):
    evil = make(good, tmp_path / "evil.pt2")
    _refused_everywhere(evil, tmp_path, capsys, expected)


@pytest.mark.parametrize("make, expected", [
    (lambda g, d: A.with_weight_meta(g, d, record=b"", sizes=[1 << 40]), "declares"),  # a huge zero-byte weight
    (lambda g, d: A.with_weight_meta(g, d, storage_offset=1 << 30), "declares"),
    (lambda g, d: A.with_weight_meta(g, d, sizes=[-3]), "whole numbers"),
    (A.with_bad_crc, "damaged archive member"),
    (lambda g, d: A.rezip(g, d, lambda n, b: b"[1, 2]" if n.endswith("models/model.json") else b),
     "models/model.json holds a list"),
])
def test_damaged_records_are_one_line_with_the_path(good: Path, tmp_path: Path, capsys, make, expected: str):
    evil = make(good, tmp_path / "evil.pt2")
    assert main(["export", str(evil), "--out", str(tmp_path / "out"), "--no-progress"]) != 0
    line = _one_error_line(capsys)
    assert str(evil) in line and expected in line


def test_the_bytes_loaded_are_the_bytes_checked(good: Path):
    """A clean program still loads, and what torch read is what the checks read."""
    loaded = load_program(good)
    x = torch.randn(1, 3, 16, 16)
    reference = torch.export.load(good).module()
    assert torch.allclose(loaded.module(x), reference(x), atol=1e-6)


def test_a_fifo_as_the_sidecar_is_one_line_not_a_hang(good: Path, tmp_path: Path, capsys):
    import os
    import shutil

    path = shutil.copy(good, tmp_path / "m.pt2")
    os.mkfifo(tmp_path / "m.pt2.json")
    assert main(["export", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) != 0
    assert "m.pt2.json: the JSON sidecar is a FIFO" in _one_error_line(capsys)


def test_a_fifo_as_the_program_is_one_line_not_a_hang(tmp_path: Path, capsys):
    import os

    os.mkfifo(tmp_path / "m.pt2")
    assert main(["export", str(tmp_path / "m.pt2"), "--out", str(tmp_path / "out"), "--no-progress"]) != 0
    assert "m.pt2: the program is a FIFO" in _one_error_line(capsys)
