"""A full disk (a real 2 MB tmpfs) under every export target and under the bench's outputs and
results store: one ``error:`` line, a non-zero exit, no partial file, earlier files intact
(issue 12 #3). Without the up-front check, LLVM in the TFLite converter aborted the process
with no message and left a partial .tflite in the hidden staging directory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ssc_deploy.cli import main
from ssc_deploy.runtimes import TARGET_NAMES
from tests.support.filesystems import fill, snapshot, tmpfs


@pytest.fixture
def small_fs(tmp_path):
    """A 2 MB file system holding one earlier file."""
    with tmpfs(tmp_path / "fs") as fs:
        (fs / "earlier.txt").write_text("written by an earlier run\n")
        yield fs


def _one_error(capsys, rc: int, needle: str) -> None:
    err = capsys.readouterr().err
    assert rc != 0 and err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, (rc, err)
    assert needle in err, err


@pytest.mark.parametrize("target", TARGET_NAMES)
def test_export_to_a_full_disk(small_fs, target):
    """Run as a real process: the converters' own logging and native output are part of what the user sees."""
    fill(small_fs)
    before = snapshot(small_fs)
    done = subprocess.run([sys.executable, "-c", "import sys; from ssc_deploy.cli import main; sys.exit(main())",
                           "export", "--model", "ssc-net-1-9", "--target", target, "--out", str(small_fs / "exports"),
                           "--n-verify", "2", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("error: ") and target in done.stderr and "space" in done.stderr, done.stderr
    assert snapshot(small_fs) == before  # no staging directory, no partial artifact, the out dir it made removed


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory) -> Path:
    import torch
    from torch import nn

    from ssc_deploy.export import ModelFacts, VerifyOptions, export_module

    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)).eval()
    out = tmp_path_factory.mktemp("disk") / "exports"
    return Path(export_module(net, torch.zeros(1, 3, 16, 16), ModelFacts(name="tiny"), out_dir=out,
                              verify=VerifyOptions(n_verify=2), progress=False)[0].artifact)


BENCH = ["--baselines", "", "--runs", "2", "--warmup", "0", "--n-eval", "8"]


def test_a_full_disk_under_the_results_store_keeps_the_outputs(small_fs, small_artifact, tmp_path, capsys):
    fill(small_fs)
    before = snapshot(small_fs)
    js = tmp_path / "b.json"
    rc = main(["bench", str(small_artifact), *BENCH, "--json", str(js), "--db", str(small_fs / "r.sqlite")])
    _one_error(capsys, rc, "cannot write the results store")
    assert json.loads(js.read_text())["rows"][0]["status"] == "ok"  # the run is on disk all the same
    assert snapshot(small_fs) == before  # no empty store left behind


def test_a_full_disk_under_the_json_output(small_fs, small_artifact, capsys):
    fill(small_fs)
    before = snapshot(small_fs)
    rc = main(["bench", str(small_artifact), *BENCH, "--no-store", "--json", str(small_fs / "b.json")])
    _one_error(capsys, rc, f"{small_fs / 'b.json'}: cannot write (No space left on device)")
    assert snapshot(small_fs) == before
