"""A thin wrapper over the ``adb`` client: list devices, shell, push, pull - with timeouts and
one-line errors. The adb server port follows adb's own ``ANDROID_ADB_SERVER_PORT`` /
``ADB_SERVER_SOCKET`` environment; ``SSC_DEPLOY_ADB`` points at a specific adb binary."""

from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from ssc_deploy.errors import SscDeployError, last_line

from .base import DeviceError
from .remote import run_local

# adb client messages that mean the device, not the command, failed.
_DEVICE_FAULTS = (
    ("unauthorized", "device unauthorized: unlock the phone and accept the 'Allow USB debugging' prompt"),
    ("offline", "device offline: reconnect it (adb reconnect) or restart adb on the device"),
    ("not found", "device not found: it was disconnected"),
    ("no devices", "device not found: it was disconnected"),
    ("error: closed", "the connection to the device closed (device gone?)"),
    ("protocol fault", "the connection to the device failed (device gone?)"),
    ("failed to get feature set", "cannot talk to the device"),
)


_RC_MARK = "__ssc_deploy_exit_status="
_DEVICE_PROPS = ("usb", "product", "model", "device", "transport_id", "features")


def adb_executable() -> str:
    """The adb client to use; a one-line :class:`SscDeployError` when there is none."""
    path = os.environ.get("SSC_DEPLOY_ADB") or shutil.which("adb")
    if not path:
        raise SscDeployError(
            "the 'adb' client is not installed: install Android platform-tools (Debian/Ubuntu: apt-get install adb)"
        )
    return path


@dataclass
class AdbDeviceEntry:
    """One line of ``adb devices -l``."""

    serial: str
    state: str  # device | unauthorized | offline | recovery | sideload | ...
    props: dict[str, str] = field(default_factory=dict)  # product, model, device, transport_id, usb

    @property
    def model(self) -> str:
        return self.props.get("model", "").replace("_", " ")


def parse_devices_l(text: str) -> list[AdbDeviceEntry]:
    """Parse ``adb devices -l`` output (the daemon start-up lines are ignored)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("*") or line.startswith("List of devices"):
            continue
        parts = line.split()
        if len(parts) < 2:
            continue
        serial, rest = parts[0], parts[1:]
        state_words = []
        props = {}
        for word in rest:
            key, sep, val = word.partition(":")
            if sep and key in _DEVICE_PROPS:
                props[key] = val
            else:
                state_words.append(word)
        out.append(AdbDeviceEntry(serial, " ".join(state_words) or "unknown", props))
    return out


def list_devices(timeout: float = 30.0) -> list[AdbDeviceEntry]:
    """The devices the adb server knows, with their state (starts the adb server if needed)."""
    rc, out, err = run_local([adb_executable(), "devices", "-l"], timeout, "adb devices")
    if rc != 0:
        raise SscDeployError(f"'adb devices' failed: {last_line(err or out, str(rc))}")
    return parse_devices_l(out)


def device_abi(serial: str, timeout: float = 10.0) -> str:
    """The device's primary ABI (``getprop ro.product.cpu.abi``); "unknown" where unreadable."""
    try:
        rc, out, _ = AdbClient(serial).shell("getprop ro.product.cpu.abi 2>/dev/null", timeout)
    except DeviceError:
        return "unknown"
    return out.strip() if rc == 0 and out.strip() else "unknown"


def classify_adb_error(text: str) -> str | None:
    """A clear description when adb's message means the device failed, else None."""
    low = text.lower()
    for needle, meaning in _DEVICE_FAULTS:
        if needle in low:
            return meaning
    return None


class AdbClient:
    """adb commands against one serial, each with a timeout."""

    def __init__(self, serial: str, label: str | None = None) -> None:
        self.serial = serial
        self.label = label or f"android:{serial}"

    def _argv(self, *args: str) -> list[str]:
        return [adb_executable(), "-s", self.serial, *args]

    def _run(self, args: list[str], timeout: float, what: str) -> tuple[int, str, str]:
        return run_local(self._argv(*args), timeout, f"{self.label}: {what}")

    def shell(self, command: str, timeout: float) -> tuple[int, str, str]:
        """Run ``command`` with the device's shell: (rc, stdout, stderr); device faults raise.

        The exit status travels as a last stdout line written after the command, so a
        connection lost mid-command (which adb may report as exit 0 with no output) is
        told apart from a command that finished, and shells without exit codes (adb
        before shell protocol v2) still give one.
        """
        rc, out, err = self._run(["shell", f"( {command} ); echo {_RC_MARK}$?"], timeout, f"'{_short(command)}'")
        head, mark, tail = out.rpartition(_RC_MARK)
        if mark and tail.strip().isdigit():
            return int(tail.strip()), head, err
        fault = classify_adb_error(err + out)
        if fault and (err + out).lstrip().startswith(("error:", "adb: error:")):
            raise DeviceError(f"{self.label}: {fault} (while running '{_short(command)}')")
        raise DeviceError(f"{self.label}: the connection closed while running '{_short(command)}' (device gone?)")

    def push(self, local: Path, remote: str, timeout: float) -> None:
        """Copy a local file to the device; no space, a gone device or a refusal raise one line."""
        rc, out, err = self._run(["push", str(local), remote], timeout, f"pushing {Path(local).name}")
        if rc != 0:
            text = (err + out).strip()
            if "no space" in text.lower():
                raise DeviceError(f"{self.label}: no space left on the device while pushing {Path(local).name} to {remote}")
            fault = classify_adb_error(text)
            detail = fault or last_line(text, f"exit {rc}")
            raise DeviceError(f"{self.label}: cannot push {Path(local).name} to {remote}: {detail}")

    def pull(self, remote: str, local: Path, timeout: float) -> None:
        """Copy a device file to ``local``."""
        rc, out, err = self._run(["pull", remote, str(local)], timeout, f"pulling {remote}")
        if rc != 0:
            text = (err + out).strip()
            detail = classify_adb_error(text) or last_line(text, f"exit {rc}")
            raise DeviceError(f"{self.label}: cannot pull {remote}: {detail}")


def _short(command: str, n: int = 60) -> str:
    command = re.sub(r"\s+", " ", command)
    return command if len(command) <= n else command[: n - 3] + "..."


__all__ = ["AdbClient", "AdbDeviceEntry", "adb_executable", "classify_adb_error", "device_abi", "list_devices", "parse_devices_l"]
