"""Device scheduling: which devices measure at the same time, and the rows put back in ``--device`` order.

Devices that use this machine's CPU (the host, qemu emulation) take turns, so one never slows
the other's timings; remote devices run in parallel with them, one thread each.
"""

from __future__ import annotations

import threading
from typing import Any

from ssc_deploy.errors import SscDeployError

from .jobs import ProgressFn, run_device_jobs
from .model_under_test import Job
from .settings import BenchSettings


def device_infos(devices: list) -> list:
    """Each device's :class:`DeviceInfo`; an unreachable device is a one-line error before anything runs."""
    from ssc_deploy.devices.base import DeviceError

    try:
        return [d.info() for d in devices]
    except DeviceError as err:
        raise SscDeployError(str(err)) from None


def device_groups(devices: list, infos: list) -> list[list]:
    """Devices that share this CPU in one group (run in turn), every other device in its own."""
    local = [d for d, i in zip(devices, infos) if i.kind == "host" or i.emulated]
    return ([local] if local else []) + [[d] for d in devices if d not in local]


def run_on_devices(devices: list, infos: list, jobs: list[Job], settings: BenchSettings,
                   progress: ProgressFn | None) -> list[dict[str, Any]]:
    """Every job on every device, groups in parallel; one row per job and device, in ``devices`` order.

    The first group (this CPU's devices, when there are any) runs in the calling thread, so Ctrl-C
    or SIGTERM reaches the runner it waits for (``subprocess.run`` kills it); the other groups run
    in daemon threads, which never keep an interrupted process alive.
    """
    groups = device_groups(devices, infos)
    logits = len(devices) > 1  # rows keep their logits, compared across devices (cross_device.py)

    def run_group(group: list) -> list[dict[str, Any]]:
        return [r for d in group for r in run_device_jobs(d, jobs, settings, progress, logits)]

    others = [_Background(run_group, g) for g in groups[1:]]
    parts = [run_group(groups[0])] + [b.result() for b in others]
    by_device = {id(d): part[k * len(jobs):(k + 1) * len(jobs)]
                 for group, part in zip(groups, parts) for k, d in enumerate(group)}
    return [r for d in devices for r in by_device[id(d)]]


class _Background:
    """``fn(arg)`` in a daemon thread; :meth:`result` waits for it and re-raises what it raised."""

    def __init__(self, fn, arg) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._value = fn(arg)
            except BaseException as err:  # noqa: BLE001 - handed to the caller by result()
                self._error = err

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def device_dict(device) -> dict[str, Any]:
    """A device's entry in the result's ``devices`` list (its error when it cannot say)."""
    try:
        return dict(device.info().__dict__)
    except Exception as err:  # noqa: BLE001
        return {"name": getattr(device, "name", "device"), "error": str(err)}


def cleanup_devices(devices: list) -> None:
    """Remove what was staged on each device; a failing cleanup must not hide the results."""
    for d in devices:
        try:
            d.cleanup()
        except Exception:  # noqa: BLE001 - cleanup must not hide the results
            pass
