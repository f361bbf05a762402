"""The SSH path against a real sshd (Debian's openssh-server) on a loopback port with a
throwaway key. The "board" is this host; its Python is this venv's (``?python=``)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from ssc_deploy.cli import main
from ssc_deploy.devices import resolve_device
from ssc_deploy.devices.base import DeviceError
from ssc_deploy.devices.ssh import SshDevice
from ssc_deploy.errors import SscDeployError
from support.fake_tools import tiny_inputs, tiny_onnx
from support.sshd import free_port, sshd_unavailable, start_sshd

from ssc_deploy.devices.host import RUNNER  # noqa: E402 - the runner the package ships


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    reason = sshd_unavailable()
    if reason:
        pytest.skip(reason)
    server = start_sshd(tmp_path_factory.mktemp("sshd"))
    yield server
    server.stop()


def test_url_parsing():
    d = SshDevice.from_url("ssh://pi@board.local:2222?python=/opt/venv/bin/python&connect_timeout=3")
    assert (d.user, d.host, d.port, d.python, d.connect_timeout) == ("pi", "board.local", 2222, "/opt/venv/bin/python", 3.0)
    assert d.name == "ssh://pi@board.local:2222"
    assert SshDevice.from_url("ssh://board").port == 22
    for bad, needle in [("ssh://", "use ssh://user@host"), ("ssh://pi@b:port", "port must be a number"),
                        ("ssh://pi@b?pyhton=x", "unknown option(s) pyhton")]:
        with pytest.raises(SscDeployError, match=needle.replace("(", r"\(").replace(")", r"\)")):
            SshDevice.from_url(bad)


def test_info_stage_run_cleanup(sshd, tmp_path):
    model, inputs = tiny_onnx(tmp_path / "tiny.onnx"), tiny_inputs(tmp_path / "in.npz")
    dev = resolve_device(sshd.url())
    assert isinstance(dev, SshDevice)
    with dev:
        info = dev.info()
        assert info.kind == "ssh" and info.cores >= 1 and info.machine
        assert info.python and "onnxruntime" in info.runtimes
        paths = dev.stage([model, inputs, RUNNER])
        work = dev.work_dir
        assert work.startswith("/tmp/ssc-deploy.") and Path(paths[model]).read_bytes() == model.read_bytes()
        res = dev.run_runner(
            ["--artifact", paths[model], "--runtime", "onnxruntime", "--threads", "1", "--warmup", "1",
             "--runs", "3", "--inputs", paths[inputs]], timeout=120,
        )
        assert res["ok"] is True, res
        assert res["parity"]["max_abs_diff"] < 1e-5 and res["n_eval"] == 4
        # The runner's own failure comes back as its JSON, not an exception.
        bad = dev.run_runner(["--artifact", paths[inputs], "--runtime", "onnxruntime", "--threads", "1",
                              "--warmup", "0", "--runs", "1"], timeout=120)
        assert bad["ok"] is False and bad["error"]
        rc, out, _ = dev.run_command(["sh", "-c", "echo 'a b'; exit 4"], timeout=30)
        assert (rc, out) == (4, "a b\n")
    assert not Path(work).exists()  # the remote staging directory is removed


def test_device_info_cli(sshd, capsys):
    assert main(["device", "info", sshd.url(), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["kind"] == "ssh" and data["name"] == f"ssh://{sshd.user}@127.0.0.1:{sshd.port}"


def test_unreachable_board_is_one_line(capsys, tmp_path):
    port = free_port()  # nothing listens there
    url = f"ssh://root@127.0.0.1:{port}?connect_timeout=3&known_hosts={tmp_path / 'kh'}"
    assert main(["device", "info", url]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: ssh://root@127.0.0.1:{port}: ssh failed:") and "refused" in err and "\n" not in err


def test_rejected_key_is_one_line(sshd, capsys, tmp_path):
    other = tmp_path / "other_key"
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    url = sshd.url(identity=str(other))
    assert main(["device", "info", url]) != 0
    err = capsys.readouterr().err.strip()
    assert "ssh failed:" in err and "Permission denied" in err and "\n" not in err


def test_hung_command_times_out(sshd):
    dev = resolve_device(sshd.url())
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"'sleep 30' timed out after 2 s"):
        dev.run_command(["sleep", "30"], timeout=2)
    assert time.monotonic() - t0 < 10


def test_a_timed_out_command_is_killed_on_the_board(sshd):
    """Closing the connection does not stop a command without a terminal: the board's own deadline does."""
    import os
    import subprocess

    marker = f"ssc-deploy-ssh-probe-{os.getpid()}"
    dev = resolve_device(sshd.url())
    with pytest.raises(DeviceError, match="timed out after 1 s"):
        dev.run_command(["sh", "-c", "sleep 30; true", marker], timeout=1)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        time.sleep(0.2)
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0, "still running on the board"


def test_runner_crash_without_json_is_one_line(sshd, tmp_path):
    script = tmp_path / "device_runner.py"
    script.write_text("import sys\nprint('starting')\nsys.exit('Segmentation fault (core dumped)')\n")
    with resolve_device(sshd.url()) as dev:
        dev.stage([script])
        with pytest.raises(DeviceError, match=r"exited with code 1 without a JSON result: Segmentation fault"):
            dev.run_runner([], timeout=60)


def test_no_space_on_the_board(sshd, tmp_path):
    """A full filesystem on the board: the copy fails with one line (a 64 KiB tmpfs as the staging dir)."""
    import os
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("mounting a tiny tmpfs needs root")
    full = tmp_path / "full"
    full.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)]).returncode != 0:
        pytest.skip("cannot mount tmpfs here")
    try:
        big = tmp_path / "big.bin"
        big.write_bytes(os.urandom(256 * 1024))
        dev = resolve_device(sshd.url())
        dev._work_dir = str(full)  # stage into the full filesystem
        with pytest.raises(DeviceError, match="no space left on the board while copying big.bin"):
            dev.stage([big])
    finally:
        subprocess.run(["umount", str(full)])


@pytest.mark.parametrize("url", ["ssh://-oConnectTimeout=zz@host", "ssh://pi@-oProxyCommand=x",
                                 "ssh://-oProxyCommand=touch%20x@127.0.0.1"])
def test_a_user_or_host_starting_with_a_dash_is_refused(url):
    with pytest.raises(SscDeployError, match=r"must not start with '-'"):
        SshDevice.from_url(url)
    with pytest.raises(SscDeployError, match=r"must not start with '-'"):
        SshDevice(host="-oProxyCommand=x")


def test_the_destination_follows_an_end_of_options_marker():
    argv = SshDevice(host="board", user="pi")._ssh_argv("true")
    assert argv[-3:] == ["--", "pi@board", "true"]


def test_ssh_option_injection_runs_nothing(tmp_path, capsys):
    """The URL of the probe that made ssh run a ProxyCommand: refused with one line, the command never runs."""
    from urllib.parse import quote

    marker = tmp_path / "injected"
    url = f"ssh://{quote(f'-oProxyCommand=touch {marker}', safe='')}@127.0.0.1?connect_timeout=2&known_hosts={tmp_path / 'kh'}"
    assert main(["device", "info", url]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "must not start with '-'" in err
    assert not marker.exists()
