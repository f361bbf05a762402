"""Ctrl-C (SIGINT) and SIGTERM sent to real long commands mid-run: exit 130 / 143, one
``error:`` line and no traceback, no partial artifact, earlier files left as they were."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

CLI = [sys.executable, "-c", "import sys; from ssc_deploy.cli import main; sys.exit(main())"]
EXPECTED = {signal.SIGINT: (130, "error: interrupted"), signal.SIGTERM: (143, "error: terminated (SIGTERM)")}


def _loaded(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


def _signal_mid_run(argv: list[str], cwd: Path, library: str, sig: signal.Signals, settle: float,
                    started=None) -> tuple[int, str]:
    """Start ``ssc-deploy ARGV``, wait until it has loaded ``library`` (it is doing the work) - or, given
    ``started``, until ``started()`` is true - then ``settle`` more seconds, send ``sig``; return
    (exit code, stderr)."""
    proc = subprocess.Popen([*CLI, *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "SSC_DEPLOY_DEBUG": ""})
    started = started or (lambda: _loaded(proc.pid, library))
    try:
        deadline = time.monotonic() + 180
        while not started():
            assert proc.poll() is None, f"ended before the signal: {proc.stderr.read().decode()}"
            assert time.monotonic() < deadline, f"{library} never loaded"
            time.sleep(0.2)
        time.sleep(settle)
        assert proc.poll() is None, "the command finished before it could be interrupted"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err.decode()


def _earlier(out: Path) -> dict[str, bytes]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "earlier.txt").write_text("written by an earlier run\n")
    return {p.name: p.read_bytes() for p in out.iterdir()}


def _assert_clean_stop(rc: int, err: str, sig: signal.Signals, out: Path, before: dict[str, bytes]) -> None:
    code, line = EXPECTED[sig]
    assert rc == code, (rc, err)
    assert err.strip().splitlines() == [line], err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # hidden staging files included


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_train_stops_cleanly(tmp_path: Path, sig: signal.Signals):
    out = tmp_path / "out"
    before = _earlier(out)
    rc, err = _signal_mid_run(["train", "--model", "ssc-net-1-9", "--epochs", "200", "--out", str(out / "m.pt"),
                               "--no-progress"], tmp_path, "libtorch_cpu", sig, settle=4)
    _assert_clean_stop(rc, err, sig, out, before)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_tflite_export_stops_cleanly(tmp_path: Path, sig: signal.Signals):
    out = tmp_path / "exports"
    before = _earlier(out)
    rc, err = _signal_mid_run(["export", "--model", "ssc-net-1-9", "--target", "tflite", "--out", str(out)],
                              tmp_path, "litert_converter", sig, settle=2)
    _assert_clean_stop(rc, err, sig, out, before)



@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sig") / "exports"
    done = subprocess.run([*CLI, "export", "--model", "ssc-net-1-9", "--target", "onnx", "--out", str(out),
                           "--n-verify", "2", "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return out / "ssc-net-1-9.onnx"


def _runners_of(work: Path) -> list[str]:
    """Processes still running with ``work`` on their command line (device runners left behind)."""
    left = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if str(work) in cmd:
            left.append(cmd)
    return left


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_bench_stops_cleanly(tmp_path: Path, onnx_artifact: Path, sig: signal.Signals):
    """Stopped while a device runner measures: no partial JSON or store, no runner left running."""
    out, work = tmp_path / "out", tmp_path / "work"
    before = _earlier(out)
    rc, err = _signal_mid_run(["bench", str(onnx_artifact), "--baselines", "", "--runs", "100000", "--warmup", "0",
                               "--n-eval", "8", "--json", str(out / "b.json"), "--csv", str(out / "b.csv"),
                               "--db", str(out / "r.sqlite"), "--work-dir", str(work)], tmp_path, "",
                              sig, settle=2, started=lambda: any((work / "inputs").glob("*.npz")))
    _assert_clean_stop(rc, err, sig, out, before)
    time.sleep(1)
    assert _runners_of(work) == []
    assert not [p for p in work.rglob("*") if p.name.startswith(".")]  # no half-written work file


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_quickstart_stops_cleanly(tmp_path: Path, sig: signal.Signals):
    """Stopped while training: no partial checkpoint or hidden temporary file in --out."""
    out = tmp_path / "qs"
    before = _earlier(tmp_path / "earlier")
    rc, err = _signal_mid_run(["quickstart", "--quick", "--out", str(out), "--no-store"], tmp_path, "libtorch_cpu",
                              sig, settle=6)
    code, line = EXPECTED[sig]
    assert rc == code, (rc, err)
    assert err.strip().splitlines() == [line], err
    assert {p.name: p.read_bytes() for p in (tmp_path / "earlier").iterdir()} == before
    leftovers = [p for p in out.rglob("*") if p.name.startswith(".") and "quickstart" not in p.name or p.suffix == ".tmp"]
    assert leftovers == []
