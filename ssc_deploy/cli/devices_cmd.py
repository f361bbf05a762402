"""CLI: ``devices`` (what is attached), ``device info SPEC`` and ``device setup arm64-emulated``.
Thin: parse options, call the library, print."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from ssc_deploy.errors import SscDeployError

from .app import app

device_app = typer.Typer(help="Inspect one device or set up the emulated arm64 device.", no_args_is_help=True)
app.add_typer(device_app, name="device")


@app.command("devices")
def devices(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (adb devices and the emulated device) instead of a table."),
) -> None:
    """List Android devices attached through adb (state: device, unauthorized, offline) and whether the emulated arm64 device is ready."""
    from ssc_deploy.devices.adb import device_abi, list_devices
    from ssc_deploy.devices.base import DeviceError
    from ssc_deploy.devices.arm_profiles import PROFILES
    from ssc_deploy.devices.emulated import emulated_status

    adb_note = ""
    try:
        entries = list_devices()
    except (SscDeployError, DeviceError) as exc:  # adb missing or its server hung: still show the rest
        entries, adb_note = [], str(exc)
    abis = {e.serial: device_abi(e.serial) if e.state == "device" else "" for e in entries}
    emu = emulated_status()
    if as_json:
        payload = {
            "android": [{"serial": e.serial, "state": e.state, "abi": abis[e.serial] or None, **e.props} for e in entries],
            "adb_error": adb_note or None,
            "arm64_emulated": {"state": emu.state, "detail": emu.detail},
        }
        typer.echo(json.dumps(payload, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title="Devices")
    table.add_column("--device", no_wrap=True)
    table.add_column("state", no_wrap=True)
    for col in ("model", "ABI", "notes"):
        table.add_column(col)
    hints = {"unauthorized": "accept the USB debugging prompt on the phone", "offline": "reconnect it (adb reconnect)"}
    for e in entries:
        style = "green" if e.state == "device" else "yellow"
        table.add_row(f"android:{e.serial}", f"[{style}]{e.state}[/]", e.model or "-", abis[e.serial] or "-",
                      hints.get(e.state, ""))
    if adb_note:
        table.add_row("android", "[red]adb unavailable[/]", "-", "-", adb_note)
    elif not entries:
        table.add_row("android", "none attached", "-", "-", "check the cable and USB debugging; adb devices -l")
    emu_style = {"ready": "green", "not set up": "yellow"}.get(emu.state, "red")
    table.add_row("arm64-emulated[:PROFILE]", f"[{emu_style}]{emu.state}[/]",
                  f"qemu-user (timings emulated; profiles {', '.join(PROFILES)})", "aarch64", emu.detail)
    console.print(table)


@device_app.command("info")
def device_info(
    spec: str = typer.Argument(..., help="The device: host, android[:SERIAL], ssh://user@host[:port][?python=PATH] or arm64-emulated[:PROFILE] (cortex-a76, cortex-a53, neoverse-n1, max)."),
    as_json: bool = typer.Option(False, "--json", help="Print the device description as JSON."),
) -> None:
    """Describe one device: CPU, cores and max frequencies, OS, model, Python and runtimes."""
    from ssc_deploy.devices import DeviceError, resolve_device

    try:
        with resolve_device(spec) as dev:
            info = dev.info()
    except DeviceError as exc:
        raise SscDeployError(str(exc)) from None
    data = asdict(info)
    if as_json:
        typer.echo(json.dumps(data, indent=1))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Device {info.name}" + (" (emulated: timings are not ARM figures)" if info.emulated else ""))
    table.add_column("field")
    table.add_column("value")
    for key, val in data.items():
        if key == "max_freq_mhz":
            val = ", ".join(f"{v:g}" for v in val) or "unknown"
        elif isinstance(val, dict):
            val = ", ".join(f"{k} {v}" for k, v in val.items()) or "-"
        table.add_row(key, str(val) if val not in ("", None) else "unknown")
    Console().print(table)


@device_app.command("setup")
def device_setup(
    target: str = typer.Argument(..., help="What to set up: arm64-emulated (a Debian arm64 userland under qemu-user)."),
    with_executorch: bool = typer.Option(
        False, "--with-executorch",
        help="Also install ExecuTorch 1.1.0 for aarch64 with torch 2.10.0 (about 900 MB more; each emulated ExecuTorch run then spends about 2 minutes importing torch); off by default.",
    ),
    mirror: str = typer.Option("http://deb.debian.org/debian", "--mirror", help="Debian mirror for debootstrap."),
) -> None:
    """Build the emulated arm64 device once (about 5 minutes; needs root, qemu-user-static, debootstrap and binfmt_misc) and cache it under $SSC_DEPLOY_CACHE or ~/.cache/ssc-deploy; run again to reuse the cache (seconds).

    Its timings are emulated (50-400x slower, unevenly by runtime): it checks that artifacts run on aarch64 and match PyTorch, never how fast ARM is.
    """
    if target != "arm64-emulated":
        raise SscDeployError(f"unknown setup target '{target}' (only arm64-emulated can be set up)")
    from rich.console import Console

    from ssc_deploy.devices.emulated import emulated_status, setup_rootfs

    console = Console(stderr=True, log_path=False)
    with console.status("arm64-emulated: starting") as status:
        def on_step(step: str) -> None:
            status.update(f"arm64-emulated: {step}")
            console.log(step)

        root = setup_rootfs(with_executorch=with_executorch, on_step=on_step, mirror=mirror)
    st = emulated_status()
    typer.echo(f"arm64-emulated: {st.state}: {st.detail if st.state != 'ready' else root}")
