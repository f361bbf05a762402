"""What the adb, SSH and emulated devices share: a shell on the other side, a staging
directory there, and the device runner's JSON on its last stdout line."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
from pathlib import Path
from typing import Any

from ssc_deploy.errors import last_line

from .base import Device, DeviceError
from .host import RUNNER, RUNNER_FILES
from .host import parse_runner_output as last_json_object

def parse_runner_output(device: str, stdout: str, stderr: str, rc: int) -> dict[str, Any]:
    """The JSON object on the runner's last non-empty stdout line, or a one-line :class:`DeviceError`."""
    result = last_json_object(stdout)
    if result is not None:
        return result
    detail = last_line(stderr or stdout, "no output")
    raise DeviceError(f"{device}: the device runner exited with code {rc} without a JSON result: {detail}")


def run_local(argv: list[str], timeout: float, what: str, input_bytes: bytes | None = None) -> tuple[int, str, str]:
    """Run a local client process (adb, ssh, chroot) with a timeout; a timeout becomes :class:`DeviceError`.

    The process runs in its own session and a timeout kills that whole process group, so
    children it started (a shell's subshells, the chrooted runner under qemu) do not keep
    running after the timeout.
    """
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE if input_bytes is not None else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    except FileNotFoundError:
        raise DeviceError(f"{what}: '{argv[0]}' is not installed") from None
    try:
        out, err = proc.communicate(input_bytes, timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise DeviceError(f"{what} timed out after {timeout:g} s (device gone or hung?)") from None
    except BaseException:
        _kill_group(proc)
        raise
    return proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")


def _kill_group(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and every process in its group, reap it and close its pipes."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


class ShellDevice(Device):
    """A device reached through a shell. Subclasses provide :meth:`_shell` (one command string),
    :meth:`_push` (one local file to a device path) and :meth:`_make_work_dir`."""

    python: str = "python3"

    def __init__(self) -> None:
        self._work_dir: str | None = None
        self._staged: dict[Path, str] = {}

    # -- transport primitives ------------------------------------------------------------
    def _shell(self, command: str, timeout: float) -> tuple[int, str, str]:
        raise NotImplementedError

    def _push(self, local: Path, remote: str, timeout: float) -> None:
        raise NotImplementedError

    def _make_work_dir(self) -> str:
        raise NotImplementedError

    def _remove_work_dir(self, path: str) -> None:
        self._shell(f"rm -rf {shlex.quote(path)}", timeout=60)

    # -- Device interface ------------------------------------------------------------------
    def run_command(self, argv: list[str], timeout: float) -> tuple[int, str, str]:
        """Run ``argv`` on the device (quoted for its shell): (rc, stdout, stderr)."""
        return self._shell(shlex.join(argv), timeout)

    @property
    def work_dir(self) -> str:
        """The device directory files are staged into (created on first use)."""
        if self._work_dir is None:
            self._work_dir = self._make_work_dir()
        return self._work_dir

    def stage(self, files: list[Path], timeout: float = 300.0) -> dict[Path, str]:
        """Copy files into the device's work directory (same names; already staged files are skipped)."""
        out: dict[Path, str] = {}
        used = {Path(p).name for p in self._staged.values()}
        for f in files:
            f = Path(f)
            if f.resolve() in self._staged:
                out[f] = self._staged[f.resolve()]
                continue
            if not f.is_file():
                raise DeviceError(f"{self.name}: cannot stage {f}: no such file")
            name = f.name
            i = 1
            while name in used:
                name = f"{f.stem}-{i}{f.suffix}"
                i += 1
            remote = f"{self.work_dir}/{name}"
            self._push(f, remote, timeout)
            used.add(name)
            self._staged[f.resolve()] = remote
            out[f] = remote
        return out

    def runner_device_path(self) -> str:
        """Where the device runner is on the device; its files not staged yet are staged from the package
        first, under their own names in the one work directory (the runner imports its helper as a sibling)."""
        staged = {Path(remote).name: remote for remote in self._staged.values()}
        missing = [f for f in RUNNER_FILES if f.name not in staged]
        for f in missing:
            if not f.is_file():
                raise DeviceError(f"{self.name}: the device runner's {f} is missing from the package")
        staged.update((Path(remote).name, remote) for remote in self.stage(missing).values())
        for f in RUNNER_FILES:
            if f.name not in staged:  # the name was taken by another file: staged under another one
                raise DeviceError(f"{self.name}: cannot stage the device runner's {f.name}: another staged file has its name")
        return staged[RUNNER.name]

    def run_runner(self, args: list[str], timeout: float) -> dict[str, Any]:
        """Run ``python3 device_runner.py ARGS`` on the device and return its JSON result."""
        runner = self.runner_device_path()
        rc, out, err = self._shell(shlex.join([self.python, runner, *args]), timeout)
        return parse_runner_output(self.name, out, err, rc)

    def cleanup(self) -> None:
        """Remove the device work directory (safe to call twice; a gone device is not an error here)."""
        if self._work_dir is not None:
            path, self._work_dir = self._work_dir, None
            self._staged.clear()
            try:
                self._remove_work_dir(path)
            except DeviceError:
                pass
