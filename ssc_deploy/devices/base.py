"""What every device (host, Android over adb, ARM board over SSH, emulated arm64) offers.

The benchmark harness talks to devices only through this interface, so host and
device measurements share one code path: the harness stages files, then runs the
standalone device runner (``ssc_deploy/devices/runner/device_runner.py``, numpy + one
runtime, no torch, no ssc_deploy import) with command-line arguments; the runner prints
one JSON object on its last stdout line, which :meth:`Device.run_runner` returns parsed.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class DeviceError(Exception):
    """A device-side failure (gone, unauthorized, timed out, no space, runner crashed).

    The harness records it against the row it happened in, keeps earlier results and
    marks the run partial; the CLI turns it into one line and a non-zero exit.
    """


@dataclass
class DeviceInfo:
    """A description of the device, stored with every result."""

    name: str  # e.g. "host", "android:emulator-5554", "ssh://pi@board:22", "arm64-emulated"
    kind: str  # "host" | "android" | "ssh" | "arm64-emulated"
    machine: str = ""  # CPU architecture as the device reports it (x86_64, aarch64)
    model: str = ""  # phone/board model where readable
    os: str = ""  # "Linux 6.1", "Android 14"
    abi: str = ""  # Android ABI (arm64-v8a)
    cores: int = 0
    max_freq_mhz: list[float] = field(default_factory=list)
    python: str = ""  # device Python version, "" when there is none
    runtimes: dict[str, str] = field(default_factory=dict)  # runtime -> version on the device
    emulated: bool = False  # timings from emulation are labelled so, never compared with real ones
    extra: dict[str, Any] = field(default_factory=dict)


class Device(abc.ABC):
    """A place that runs exported artifacts."""

    name: str = "device"
    # Whether count_runner() can count the guest instructions of a runner run (the emulated device).
    counts_instructions: bool = False

    @abc.abstractmethod
    def info(self) -> DeviceInfo:
        """Describe the device (cheap; cached by implementations)."""

    @abc.abstractmethod
    def stage(self, files: list[Path]) -> dict[Path, str]:
        """Copy ``files`` (artifacts, inputs, the runner) to the device; return local -> device path."""

    @abc.abstractmethod
    def run_runner(self, args: list[str], timeout: float) -> dict[str, Any]:
        """Run the Python device runner with ``args`` (device paths already substituted),
        return its JSON result. Raises :class:`DeviceError` on timeout or a lost device."""

    def run_command(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run an arbitrary command on the device (native benchmark tools): (rc, stdout, stderr)."""
        raise DeviceError(f"{self.name}: running native commands is not supported on this device")

    def count_runner(self, args: list[str], timeout: float) -> tuple[dict[str, Any], dict[str, int]]:
        """Run the runner with ``args`` counting the device's instructions: (its JSON result, counts with
        ``insns`` and, where the device counts them, ``loads`` and ``stores``)."""
        raise DeviceError(f"{self.name}: this device cannot count instructions")

    def cleanup(self) -> None:
        """Remove what :meth:`stage` put on the device. Safe to call twice."""

    def __enter__(self) -> "Device":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()
