"""Android phones through the ``adb`` client: ``--device android[:SERIAL][?python=PATH]``.

Files are pushed to ``/data/local/tmp/ssc-deploy/<run>/``, run there, and removed by
:meth:`AndroidDevice.cleanup`. The Python device runner needs a Python with numpy and a
runtime on the device (``python3`` on the shell's PATH, or ``?python=PATH``); the native
benchmark tools (:mod:`ssc_deploy.devices.native_tools`) need nothing but the tool.
"""

from __future__ import annotations

import json
import shlex
import uuid
from pathlib import Path
from urllib.parse import parse_qs

from ssc_deploy.runtimes import dist_pairs

from .adb import AdbClient, list_devices
from .base import DeviceError, DeviceInfo
from .remote import ShellDevice

DEVICE_BASE = "/data/local/tmp/ssc-deploy"
ABI_MACHINE = {"arm64-v8a": "aarch64", "armeabi-v7a": "arm", "x86_64": "x86_64", "x86": "x86"}

# Run on the phone (it has no ssc_deploy): the (runtime, distribution) pairs come from the runtime table.
_PROBE_PY = (
    "import json, platform\n"
    "import importlib.metadata as md\n"
    "rt = {}\n"
    f"for key, dist in {dist_pairs()!r}:\n"
    "    try: rt.setdefault(key, md.version(dist))\n"
    "    except Exception: pass\n"
    "print('pyinfo=' + json.dumps({'python': platform.python_version(), 'runtimes': rt}))\n"
)


def info_script(python: str) -> str:
    """One shell command that prints the device facts as ``key=value`` lines (missing ones empty)."""
    py = shlex.quote(python)
    return (
        "echo model=$(getprop ro.product.model 2>/dev/null); "
        "echo abi=$(getprop ro.product.cpu.abi 2>/dev/null); "
        "echo release=$(getprop ro.build.version.release 2>/dev/null); "
        "echo machine=$(uname -m 2>/dev/null); echo kernel=$(uname -sr 2>/dev/null); "
        "echo nproc=$(nproc 2>/dev/null || grep -c ^processor /proc/cpuinfo 2>/dev/null); "
        "for f in /sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq; do "
        "[ -r \"$f\" ] && echo freq=$(cat \"$f\"); done; "
        f"{py} -c {shlex.quote(_PROBE_PY)} 2>/dev/null; true"
    )


def parse_info(text: str) -> dict:
    """The ``key=value`` lines of :func:`info_script` (``freq`` collected as a list of kHz)."""
    facts: dict = {"freq": []}
    for line in text.splitlines():
        key, sep, val = line.strip().partition("=")
        if not sep:
            continue
        if key == "freq":
            if val.strip().isdigit():
                facts["freq"].append(int(val))
        elif key == "pyinfo":
            try:
                facts["pyinfo"] = json.loads(val)
            except json.JSONDecodeError:
                pass
        else:
            facts[key] = val.strip()
    return facts


class AndroidDevice(ShellDevice):
    """A phone reached through adb (the serial is optional when exactly one device is attached)."""

    kind = "android"

    def __init__(self, serial: str | None = None, python: str | None = None, command_timeout: float = 60.0) -> None:
        super().__init__()
        if serial and "?" in serial:
            serial, _, query = serial.partition("?")
            python = python or parse_qs(query).get("python", [None])[0]
        self.requested = serial or None
        self.python = python or "python3"
        self.command_timeout = command_timeout
        self._client: AdbClient | None = None
        self._info: DeviceInfo | None = None
        self._banner_model = ""
        self.name = f"android:{serial}" if serial else "android"

    @property
    def client(self) -> AdbClient:
        """The adb client for the chosen device; no device, unauthorized or offline raise one line."""
        if self._client is None:
            entries = list_devices()
            if self.requested:
                match = [e for e in entries if e.serial == self.requested]
                if not match:
                    listed = ", ".join(f"{e.serial} ({e.state})" for e in entries) or "none"
                    raise DeviceError(f"android:{self.requested}: not attached (adb devices lists: {listed})")
                entry = match[0]
            else:
                if not entries:
                    raise DeviceError("android: no Android device attached (adb devices lists none; check the cable and USB debugging)")
                ready = [e for e in entries if e.state == "device"]
                if len(ready) > 1:
                    serials = ", ".join(e.serial for e in ready)
                    raise DeviceError(f"android: {len(ready)} devices attached ({serials}): choose one with --device android:SERIAL")
                entry = ready[0] if ready else entries[0]
            self.name = f"android:{entry.serial}"
            if entry.state == "unauthorized":
                raise DeviceError(f"{self.name}: device unauthorized: unlock the phone and accept the 'Allow USB debugging' prompt")
            if entry.state != "device":
                raise DeviceError(f"{self.name}: device {entry.state}: reconnect it (adb reconnect) and try again")
            self._banner_model = entry.model
            self._client = AdbClient(entry.serial, self.name)
        return self._client

    def _shell(self, command: str, timeout: float) -> tuple[int, str, str]:
        return self.client.shell(command, timeout)

    def _push(self, local: Path, remote: str, timeout: float) -> None:
        size_mb = local.stat().st_size / 2**20
        self.client.push(local, remote, max(timeout, 30 + 5 * size_mb))

    def pull(self, remote: str, local: Path, timeout: float = 120.0) -> None:
        """Copy a result file from the device."""
        self.client.pull(remote, local, timeout)

    def _make_work_dir(self) -> str:
        path = f"{DEVICE_BASE}/{uuid.uuid4().hex[:10]}"
        rc, out, err = self._shell(f"mkdir -p {path}", self.command_timeout)
        if rc != 0:
            raise DeviceError(f"{self.name}: cannot create {path}: {(err or out).strip() or f'exit {rc}'}")
        return path

    def _remove_work_dir(self, path: str) -> None:
        self._shell(f"rm -rf {shlex.quote(path)}; rmdir {DEVICE_BASE} 2>/dev/null; true", self.command_timeout)

    def run_runner(self, args: list[str], timeout: float) -> dict:
        """Run the Python device runner (needs Python with numpy and a runtime on the phone)."""
        if not self.info().python:
            raise DeviceError(
                f"{self.name}: no Python at '{self.python}' on the device: use native tools "
                "(--runner tflite=PATH/benchmark_model ...) or android:SERIAL?python=PATH"
            )
        return super().run_runner(args, timeout)

    def info(self) -> DeviceInfo:
        """Model, ABI, Android version, cores and their max frequencies ("unknown" where unreadable)."""
        if self._info is None:
            rc, out, err = self._shell(info_script(self.python), self.command_timeout)
            facts = parse_info(out)
            py = facts.get("pyinfo", {})
            abi = facts.get("abi") or ""
            release = facts.get("release") or ""
            kernel = facts.get("kernel") or ""
            self._info = DeviceInfo(
                name=self.name,
                kind=self.kind,
                machine=facts.get("machine") or ABI_MACHINE.get(abi, ""),
                model=facts.get("model") or self._banner_model or "unknown",
                os=f"Android {release}" if release else (f"{kernel} (not Android: no getprop)" if kernel else "unknown"),
                abi=abi or "unknown",
                cores=int(facts["nproc"]) if facts.get("nproc", "").isdigit() else 0,
                max_freq_mhz=[f / 1000.0 for f in facts["freq"]],
                python=py.get("python", ""),
                runtimes=py.get("runtimes", {}),
                extra={"serial": self.client.serial, "python_path": self.python},
            )
        return self._info
