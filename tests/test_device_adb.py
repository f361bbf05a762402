"""The adb path with Debian's real ``adb`` client and server against a loopback test device
that speaks the adb device protocol (tests/support/adb_device.py). Device commands run on
this host in a sandbox mapped to /data/local/tmp, or in the emulated arm64 rootfs when it is
set up (the native-tool test), so the stock client, protocol and our orchestration are real;
the device is not Android (no getprop: facts fall back to "unknown")."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ssc_deploy.cli import main
from ssc_deploy.devices.adb import parse_devices_l
from ssc_deploy.devices.android import AndroidDevice
from ssc_deploy.devices.base import DeviceError
from ssc_deploy.devices.emulated import emulated_status
from ssc_deploy.devices.native_tools import run_native
from support.adb_device import LoopbackAdbDevice
from support.adb_server import adb, adb_unavailable, connect, disconnect, private_adb_server
from support.fake_tools import build_fake_benchmark_model, tiny_inputs, tiny_onnx

needs_adb = pytest.mark.skipif(adb_unavailable() is not None, reason=adb_unavailable() or "")

from ssc_deploy.devices.host import RUNNER  # noqa: E402 - the runner the package ships


@pytest.fixture(scope="module")
def adb_server():
    reason = adb_unavailable()
    if reason:
        pytest.skip(reason)
    with private_adb_server() as port:
        yield port


@pytest.fixture
def loopback(adb_server, tmp_path):
    """Factory: a connected loopback device (mode device/unauthorized/offline, faults as keywords)."""
    made: list[LoopbackAdbDevice] = []
    pending: list[subprocess.Popen] = []

    def make(mode: str = "device", rootfs: Path | None = None, **faults) -> LoopbackAdbDevice:
        dev = LoopbackAdbDevice(tmp_path / f"sandbox{len(made)}", rootfs=rootfs, mode=mode, **faults)
        made.append(dev)
        if mode == "offline":  # adb connect waits 10 s for a CNXN that never comes; the device is listed at once
            pending.append(subprocess.Popen(["adb", "connect", dev.serial], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _ in range(50):
                if dev.serial in adb("devices").stdout:
                    break
                time.sleep(0.1)
        else:
            connect(dev.serial)
        return dev

    try:
        yield make
    finally:
        for dev in made:
            try:
                disconnect(dev.serial)
            finally:
                dev.close()
        for p in pending:
            p.kill()
            p.wait()


def test_parse_devices_l():
    text = (
        "* daemon not running; starting now at tcp:5037\n* daemon started successfully\n"
        "List of devices attached\n"
        "R58M123ABC             device usb:1-1 product:a51nsxx model:SM_A515F device:a51 transport_id:3\n"
        "emulator-5554          offline transport_id:4\n"
        "0123456789ABCDEF       no permissions (user in plugdev group; are your udev rules wrong?); "
        "see [http://developer.android.com/tools/device.html] usb:1-2 transport_id:5\n\n"
    )
    phone, emu, noperm = parse_devices_l(text)
    assert (phone.serial, phone.state, phone.model, phone.props["product"]) == ("R58M123ABC", "device", "SM A515F", "a51nsxx")
    assert (emu.serial, emu.state) == ("emulator-5554", "offline")
    assert noperm.state.startswith("no permissions (user in plugdev group") and noperm.props["usb"] == "1-2"


def host_device(dev: LoopbackAdbDevice, **kw) -> AndroidDevice:
    """The AndroidDevice for a host-mode loopback device (its Python is this venv's)."""
    return AndroidDevice(f"{dev.serial}?python={sys.executable}", **kw)


def test_devices_lists_every_state(loopback, capsys):
    ok, unauth, off = loopback(), loopback("unauthorized"), loopback("offline")
    assert main(["devices", "--json"]) == 0
    import json

    listed = {d["serial"]: d for d in json.loads(capsys.readouterr().out)["android"]}
    assert listed[ok.serial]["state"] == "device" and listed[ok.serial]["model"] == "SSC_Loopback"
    assert listed[ok.serial]["abi"] == "unknown"  # no getprop on the loopback device
    assert listed[unauth.serial]["state"] == "unauthorized"
    assert listed[off.serial]["state"] == "offline"
    assert main(["devices"]) == 0
    table = capsys.readouterr().out
    assert f"android:{ok.serial}" in table and "unauthorized" in table and "arm64-emulated" in table


def test_info_stage_run_and_cleanup(loopback, tmp_path):
    dev = loopback()
    model, inputs = tiny_onnx(tmp_path / "tiny.onnx"), tiny_inputs(tmp_path / "in.npz")
    with host_device(dev) as android:
        info = android.info()
        assert info.kind == "android" and info.name == f"android:{dev.serial}"
        assert info.model == "SSC Loopback"  # from the adb banner: this device has no getprop
        assert info.abi == "unknown" and "not Android" in info.os
        assert info.cores >= 1 and info.python and "onnxruntime" in info.runtimes
        paths = android.stage([model, inputs, RUNNER])
        assert all(p.startswith("/data/local/tmp/ssc-deploy/") for p in paths.values())
        staged = dev.host_path(paths[model])
        assert staged.read_bytes() == model.read_bytes()
        res = android.run_runner(
            ["--artifact", paths[model], "--runtime", "onnxruntime", "--threads", "1", "--warmup", "1",
             "--runs", "3", "--inputs", paths[inputs]], timeout=120,
        )
        assert res["ok"] is True, res
        assert res["parity"]["max_abs_diff"] < 1e-5 and res["top1"] == 1.0
        pulled = tmp_path / "back.onnx"
        android.pull(paths[model], pulled)
        assert pulled.read_bytes() == model.read_bytes()
    assert not staged.exists() and not (dev.sandbox / "ssc-deploy").exists()  # cleaned up after
    android.cleanup()  # twice is fine


def test_native_tool_through_adb(loopback, tmp_path):
    """A real executable in benchmark_model's format, pushed and run (under qemu when the
    arm64 rootfs is set up), with core pinning; its output parsed."""
    emu = emulated_status()
    arch = "aarch64" if emu.state == "ready" else "x86_64"
    tool = build_fake_benchmark_model(tmp_path / "tools", arch)
    if tool is None:
        pytest.skip(f"no compiler for {arch} (.ci/setup-devices.sh installs gcc-aarch64-linux-gnu)")
    dev = loopback(rootfs=emu.root if arch == "aarch64" else None)
    model = tmp_path / "m.tflite"
    model.write_bytes(b"TFL3 stand-in")
    with AndroidDevice(dev.serial, command_timeout=120) as android:
        assert android.info().machine == arch
        art = android.stage([model])[model]
        res = run_native(android, "tflite", tool, art, threads=2, warmup=1, runs=20, pin_cores="0", timeout=120)
    assert res["source"] == "native-tool" and res["tool"] == tool.name
    assert res["latency_ms"]["mean"] == pytest.approx(4.0105) and "median" not in res["latency_ms"]
    assert res["init_ms"] == pytest.approx(12.345) and res["peak_memory_mb"] == pytest.approx(10.25)
    assert res["command"].startswith("taskset -c 0 /data/local/tmp/ssc-deploy/")
    graph = art if arch == "aarch64" else str(dev.host_path(art))  # host mode rewrites /data/local/tmp
    assert f"arg --graph={graph}" in res["raw"] and "arg --num_threads=2" in res["raw"]
    assert any(c.startswith("( taskset -c 0") for c in dev.commands)


# -- faults: one clear line each, through the library and the CLI ----------------------------


@needs_adb
def test_no_device(tmp_path, capsys):
    with private_adb_server():
        with pytest.raises(DeviceError, match="no Android device attached"):
            AndroidDevice().info()
        assert main(["device", "info", "android"]) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: android: no Android device attached") and "\n" not in err


@pytest.mark.parametrize("mode,needle", [("unauthorized", "device unauthorized"), ("offline", "device offline")])
def test_unauthorized_or_offline(loopback, capsys, mode, needle):
    dev = loopback(mode)
    assert main(["device", "info", f"android:{dev.serial}"]) != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: android:{dev.serial}: {needle}") and "\n" not in err


def test_unknown_serial(loopback, capsys):
    dev = loopback()
    assert main(["device", "info", "android:emulator-5554"]) != 0
    err = capsys.readouterr().err.strip()
    assert "android:emulator-5554: not attached" in err and dev.serial in err and "\n" not in err


def test_hung_command_times_out(loopback):
    dev = loopback(hang_on="sleepy")
    android = host_device(dev)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"'echo sleepy' timed out after 2 s"):
        android.run_command(["echo", "sleepy"], timeout=2)
    assert time.monotonic() - t0 < 10


def test_device_gone_mid_run(loopback):
    dev = loopback()
    android = host_device(dev)
    assert android.run_command(["echo", "hi"], timeout=30) == (0, "hi\n", "")
    threading.Timer(1.0, dev.vanish).start()
    with pytest.raises(DeviceError, match=r"connection closed while running 'sleep 20'"):
        android.run_command(["sleep", "20"], timeout=30)
    with pytest.raises(DeviceError, match="device offline|not found|device gone"):
        android.run_command(["echo", "again"], timeout=30)


def test_no_space_on_push(loopback, tmp_path):
    dev = loopback(no_space=True)
    model = tiny_onnx(tmp_path / "tiny.onnx")
    with host_device(dev) as android:
        with pytest.raises(DeviceError, match="no space left on the device while pushing tiny.onnx"):
            android.stage([model])


def test_wrong_abi_and_missing_tool(loopback, tmp_path):
    dev = loopback()
    arm = build_fake_benchmark_model(tmp_path, "aarch64")
    with host_device(dev) as android:
        with pytest.raises(DeviceError, match="native tool not found"):
            run_native(android, "tflite", tmp_path / "benchmark_model", "/data/local/tmp/m.tflite")
        if arm is None:
            pytest.skip("aarch64-linux-gnu-gcc is not installed")
        with pytest.raises(DeviceError, match="built for aarch64, but the device is x86_64"):
            run_native(android, "tflite", arm, "/data/local/tmp/m.tflite")
        # A tool that cannot start on the device (exec error) is named, not parsed.
        broken = tmp_path / "benchmark_model"
        broken.write_bytes(b"\x00\x01 not a program")
        with pytest.raises(DeviceError, match="cannot execute benchmark_model"):
            run_native(android, "tflite", broken, "/data/local/tmp/m.tflite")


def test_no_python_on_the_device(loopback, tmp_path):
    dev = loopback()
    with AndroidDevice(f"{dev.serial}?python=/nonexistent/python3") as android:
        with pytest.raises(DeviceError, match="no Python at '/nonexistent/python3' on the device"):
            android.run_runner(["--artifact", "x.onnx"], timeout=30)


def test_bench_keeps_finished_results_and_marks_partial(loopback, tmp_path, capsys):
    """``ssc-deploy bench`` on the loopback phone and the host in parallel: the phone hangs on the
    second model; the first model's figures are kept, the run is marked partial, rows say where."""
    import json

    a, b = tiny_onnx(tmp_path / "a.onnx"), tiny_onnx(tmp_path / "b.onnx")
    dev = loopback(hang_on="b.onnx")
    phone = f"android:{dev.serial}"
    out = tmp_path / "out.json"
    rc = main(["bench", str(a), str(b), "--baselines", "", "--runs", "2", "--warmup", "0", "--n-eval", "4",
               "--no-store", "--timeout", "5", "--json", str(out),
               "--device", f"{phone}?python={sys.executable}", "--device", "host"])
    assert rc != 0
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith("error: 1 of 4 measurements did not pass")
    result = json.loads(out.read_text())
    assert result["status"] == "partial"
    rows = {(r["device"], r["model"]): r for r in result["rows"]}
    assert rows[(phone, "a")]["status"] == "ok" and rows[(phone, "a")]["latency_median_ms"] > 0
    assert rows[(phone, "a")]["source"] == "device-runner" and rows[(phone, "a")]["device_kind"] == "android"
    assert rows[(phone, "b")]["status"] == "failed" and "timed out after 5 s" in rows[(phone, "b")]["reason"]
    assert rows[("host", "a")]["status"] == rows[("host", "b")]["status"] == "ok"
    assert not (dev.sandbox / "ssc-deploy").exists()  # the phone was cleaned up after the fault


@pytest.mark.emulated
@pytest.mark.skipif(emulated_status().state != "ready", reason=f"arm64-emulated is {emulated_status().state}: {emulated_status().detail}")
def test_runner_through_adb_on_arm64(loopback, tmp_path):
    """The Python device runner pushed through adb and run in the arm64 userland under qemu."""
    dev = loopback(rootfs=emulated_status().root)
    model, inputs = tiny_onnx(tmp_path / "tiny.onnx"), tiny_inputs(tmp_path / "in.npz")
    with AndroidDevice(dev.serial, command_timeout=120) as android:
        info = android.info()
        assert info.machine == "aarch64" and info.python and "onnxruntime" in info.runtimes
        paths = android.stage([model, inputs])  # the runner is staged from the package on first use
        res = android.run_runner(["--artifact", paths[model], "--runtime", "onnxruntime", "--threads", "1",
                                  "--warmup", "1", "--runs", "2", "--inputs", paths[inputs]], timeout=300)
    assert res["ok"] is True and res["machine"] == "aarch64"
    assert res["parity"]["max_abs_diff"] < 1e-5


def test_devices_without_a_working_adb_still_lists_the_rest(tmp_path, monkeypatch, capsys):
    """A broken adb (here: SSC_DEPLOY_ADB names no file) is a note in the listing, not a failure."""
    import json

    monkeypatch.setenv("SSC_DEPLOY_ADB", str(tmp_path / "no-adb"))
    assert main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["android"] == [] and "is not installed" in listed["adb_error"]
    assert listed["arm64_emulated"]["state"] in ("ready", "not set up", "cannot emulate")
