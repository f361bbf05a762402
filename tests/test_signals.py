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


def _signal_mid_run(argv: list[str], cwd: Path, library: str, sig: signal.Signals, settle: float) -> tuple[int, str]:
    """Start ``ssc-deploy ARGV``, wait until it has loaded ``library`` (it is doing the work), then ``settle``
    more seconds, send ``sig``; return (exit code, stderr)."""
    proc = subprocess.Popen([*CLI, *argv], cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "SSC_DEPLOY_DEBUG": ""})
    try:
        deadline = time.monotonic() + 120
        while not _loaded(proc.pid, library):
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

