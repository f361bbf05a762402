"""This machine as a :class:`Device`: the runner runs in a fresh ``sys.executable`` subprocess.

Files stay where they are (``stage`` is the identity), so host and remote devices go
through the same harness code path and every measurement gets its own process.
"""

from __future__ import annotations

import glob
import json
import os
import platform
import subprocess
import sys
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

from ssc_deploy.errors import last_line
from ssc_deploy.runtimes import dist_pairs

from .base import Device, DeviceError, DeviceInfo

# The standalone runner (package data: ssc_deploy/devices/runner/), copied to devices as these files, side by side.
RUNNER_DIR = Path(str(resources.files("ssc_deploy.devices") / "runner"))
RUNNER = RUNNER_DIR / "device_runner.py"
RUNNER_FILES = (RUNNER, RUNNER_DIR / "runner_support.py")  # the runner imports runner_support as a sibling


def _dist_version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return ""


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("model name", "Hardware", "Model"):
                    return value.strip()
    except OSError:
        pass
    return platform.processor()


def _max_freqs_mhz() -> list[float]:
    freqs = []
    for path in sorted(glob.glob("/sys/devices/system/cpu/cpu[0-9]*/cpufreq/cpuinfo_max_freq")):
        try:
            freqs.append(int(Path(path).read_text().strip()) / 1000.0)
        except (OSError, ValueError):
            continue
    return freqs


def parse_runner_output(stdout: str) -> dict[str, Any] | None:
    """The JSON object on the runner's last non-empty stdout line, or None if there is none."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if not line:
            continue
        if line.startswith("{"):
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                return None
            return obj if isinstance(obj, dict) else None
        return None
    return None


class HostDevice(Device):
    """The machine ssc-deploy runs on."""

    name = "host"

    def __init__(self, python: str | None = None, env: dict[str, str] | None = None) -> None:
        self.python = python or sys.executable
        self.env = env

    @cached_property
    def _info(self) -> DeviceInfo:
        runtimes: dict[str, str] = {}
        for rt, dist in dist_pairs():  # the first installed distribution of a runtime names its version
            if rt not in runtimes and (v := _dist_version(dist)):
                runtimes[rt] = v
        return DeviceInfo(
            name="host",
            kind="host",
            machine=platform.machine(),
            model=_cpu_model(),
            os=f"{platform.system()} {platform.release()}",
            cores=os.cpu_count() or 0,
            max_freq_mhz=_max_freqs_mhz(),
            python=platform.python_version(),
            runtimes=runtimes,
            emulated=False,
            extra={"hostname": platform.node()},
        )

    def info(self) -> DeviceInfo:
        """Describe this machine (CPU model, cores, OS, Python, installed runtime versions)."""
        return self._info

    def stage(self, files: list[Path]) -> dict[Path, str]:
        """Nothing to copy: every file is already here."""
        return {Path(f): str(Path(f).resolve()) for f in files}

    def run_runner(self, args: list[str], timeout: float) -> dict[str, Any]:
        """Run ``device_runner.py`` in a fresh subprocess and return its JSON result."""
        argv = [self.python, str(RUNNER), *args]
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=self.env)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"host: the runner did not finish within {timeout:.0f} s") from None
        except OSError as err:
            raise DeviceError(f"host: could not start {self.python}: {err.strerror}") from None
        result = parse_runner_output(proc.stdout)
        if result is None:
            tail = last_line(proc.stderr, "no output")
            raise DeviceError(f"host: the runner exited with code {proc.returncode} and no result ({tail})")
        return result

    def run_command(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run a native command on this machine: (returncode, stdout, stderr)."""
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise DeviceError(f"host: '{argv[0]}' did not finish within {timeout:.0f} s") from None
        except OSError as err:
            raise DeviceError(f"host: could not run '{argv[0]}': {err.strerror}") from None
        return proc.returncode, proc.stdout, proc.stderr
