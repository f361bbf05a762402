"""Devices that run exported artifacts: this host, Android phones (adb), ARM boards (SSH),
and an emulated arm64 Debian userland for CI. ``resolve_device(spec)`` maps a ``--device``
value to a :class:`~ssc_deploy.devices.base.Device`."""

from .base import Device, DeviceError, DeviceInfo

__all__ = ["Device", "DeviceError", "DeviceInfo"]
