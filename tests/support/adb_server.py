"""A private adb server for a test session: Debian's real ``adb`` client on its own port
(``ANDROID_ADB_SERVER_PORT``), killed at teardown."""

from __future__ import annotations

import os
import shutil
import subprocess
from contextlib import contextmanager
from typing import Iterator

from .sshd import free_port


def adb_unavailable() -> str | None:
    """Why the adb tests cannot run here (None when they can)."""
    if shutil.which("adb") is None:
        return "the adb client is not installed (apt-get install adb; .ci/setup-devices.sh does it)"
    return None


def adb(*args: str, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run the adb client against the current server port."""
    return subprocess.run(["adb", *args], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@contextmanager
def private_adb_server() -> Iterator[int]:
    """Start an adb server on a free port, point ``ANDROID_ADB_SERVER_PORT`` at it, kill it after."""
    port = free_port()
    old = os.environ.get("ANDROID_ADB_SERVER_PORT")
    os.environ["ANDROID_ADB_SERVER_PORT"] = str(port)
    try:
        adb("start-server")
        yield port
    finally:
        try:
            adb("kill-server", timeout=15)
        except subprocess.TimeoutExpired:
            pass
        if old is None:
            os.environ.pop("ANDROID_ADB_SERVER_PORT", None)
        else:
            os.environ["ANDROID_ADB_SERVER_PORT"] = old


def connect(serial: str, timeout: float = 30) -> str:
    """``adb connect`` (its output: connected / failed to authenticate / failed to connect)."""
    return adb("connect", serial, timeout=timeout).stdout.strip()


def disconnect(serial: str) -> None:
    adb("disconnect", serial, timeout=15)
