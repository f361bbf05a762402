"""Devices that run exported artifacts: this host, Android phones (adb), ARM boards (SSH),
and an emulated arm64 Debian userland for CI. ``resolve_device(spec)`` maps a ``--device``
value to a :class:`~ssc_deploy.devices.base.Device`."""

from __future__ import annotations

from ssc_deploy.errors import SscDeployError

from .base import Device, DeviceError, DeviceInfo

__all__ = ["Device", "DeviceError", "DeviceInfo", "resolve_device"]


def resolve_device(spec: str) -> Device:
    """``host`` | ``android[:SERIAL][?python=PATH]`` | ``ssh://user@host[:port][?...]`` | ``arm64-emulated[:PROFILE]``."""
    s = spec.strip()
    if s in ("", "host", "local"):
        from .host import HostDevice

        return HostDevice()
    if s == "android" or s.startswith(("android:", "android?")):
        from .android import AndroidDevice

        return AndroidDevice(serial=s[len("android:"):] if s.startswith("android:") else s[len("android"):] or None)
    if s.startswith("ssh://"):
        from .ssh import SshDevice

        return SshDevice.from_url(s)
    from .arm_profiles import profile_from_spec

    profile = profile_from_spec(s)
    if profile is not None:
        from .emulated import EmulatedArm64Device

        return EmulatedArm64Device(profile=profile.name)
    raise SscDeployError(
        f"unknown device '{spec}' (use host, android[:SERIAL], ssh://user@host[:port] or arm64-emulated[:PROFILE])"
    )
