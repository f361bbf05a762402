"""The native benchmark tools a user supplies (run on the device): staging, checking and running them.

Each runtime's tool (the runtime table's ``native_tool``) has its command line and output
parser in its folder's ``native_tool.py`` (``native_tool_module``; what statistics it gives is
said there); all times are returned in milliseconds. The helpers those parsers share are in
:mod:`ssc_deploy.devices.tool_output`.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from ssc_deploy.errors import SscDeployError, last_line
from ssc_deploy.runtimes import RUNTIME_NAMES, by_runtime, runtime_module

from .base import DeviceError

if TYPE_CHECKING:
    from .base import Device

def tool_module(runtime: str) -> ModuleType:
    """The module of ``runtime``'s native tool (the runtime table's ``native_tool_module``):
    ``command(tool, artifact, threads, warmup, runs)``, ``parse(text)`` and ``WARMUP_IN_RUNS``.
    One-line :class:`DeviceError` for a name that is not a runtime."""
    try:
        spec = by_runtime(runtime)
    except SscDeployError:
        raise DeviceError(f"unknown runtime '{runtime}' for a native tool (use {', '.join(RUNTIME_NAMES)})") from None
    return runtime_module(spec, "native_tool_module")


def native_command(
    runtime: str, tool: str, artifact: str, threads: int, warmup: int, runs: int, pin_cores: str | None = None
) -> list[str]:
    """The documented command line of each tool (``pin_cores`` like ``"4-7"`` adds ``taskset -c``)."""
    argv = tool_module(runtime).command(tool, artifact, threads, warmup, runs)
    if pin_cores:
        argv = ["taskset", "-c", str(pin_cores), *argv]
    return argv


ELF_MACHINES = {0x3E: "x86_64", 0xB7: "aarch64", 0x28: "arm", 0x03: "x86", 0xF3: "riscv"}


def elf_machine(path: Path) -> str | None:
    """The CPU architecture of an ELF executable (``aarch64``, ``x86_64``...), or None for a script."""
    with open(path, "rb") as fh:
        head = fh.read(20)
    if head[:4] != b"\x7fELF":
        return None
    order = "little" if head[5] == 1 else "big"
    code = int.from_bytes(head[18:20], order)
    return ELF_MACHINES.get(code, f"elf-machine-{code:#x}")


def check_tool(tool_path: str | Path, device_machine: str) -> Path:
    """Fail with one clear line when the tool is missing, not a file, or built for another CPU."""
    path = Path(tool_path)
    if not path.is_file():
        raise DeviceError(f"native tool not found: {path}")
    machine = elf_machine(path)
    norm = {"arm64": "aarch64", "arm64-v8a": "aarch64", "amd64": "x86_64"}
    want = norm.get(device_machine, device_machine)
    if want.startswith("armv") or want == "armeabi-v7a":
        want = "arm"
    if machine is not None and want and machine != want:
        raise DeviceError(f"native tool {path.name} is built for {machine}, but the device is {want}: build it for {want}")
    return path


def run_native(
    device: "Device",
    runtime: str,
    tool_path: str | Path,
    artifact_device_path: str,
    threads: int = 1,
    warmup: int = 5,
    runs: int = 50,
    pin_cores: str | None = None,
    timeout: float = 600.0,
) -> dict[str, Any]:
    """Stage the native tool on ``device``, run it on an already staged artifact, parse its output.

    Returns ``{"latency_ms": {...}, "peak_memory_mb"?, "init_ms"?, "source": "native-tool",
    "tool": name, "statistics": what the tool gives, "command": ..., "raw": output}``.
    Raises :class:`DeviceError` (one line) on a missing/wrong-ABI tool, a failed run or unparseable output.
    """
    tool = tool_module(runtime)
    path = check_tool(tool_path, device.info().machine)
    staged = device.stage([path])[path]
    device.run_command(["chmod", "755", staged], timeout=30)
    n = runs + warmup if tool.WARMUP_IN_RUNS else runs
    argv = native_command(runtime, staged, artifact_device_path, threads, warmup, n, pin_cores)
    rc, out, err = device.run_command(argv, timeout=timeout)
    text = out + ("\n" + err if err else "")
    if rc != 0:
        last = last_line(text, "no output")
        if rc in (126, 127) or "exec format error" in text.lower() or "not found" in last.lower():
            raise DeviceError(f"{device.name}: cannot execute {path.name} (exit {rc}: {last.strip()}); is it built for this device's CPU?")
        raise DeviceError(f"{device.name}: {path.name} failed with exit code {rc}: {last.strip()}")
    try:
        result = tool.parse(text)
    except ValueError as exc:
        raise DeviceError(f"{device.name}: {path.name}: {exc}") from None
    result.update(source="native-tool", tool=path.name, command=shlex.join(argv), raw=text)
    if tool.WARMUP_IN_RUNS:
        result["warmup_included"] = warmup
    return result
