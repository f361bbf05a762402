"""The per-machine cache of quick lowering measurements (torch-free).

One JSON file, ``<user cache>/lowerings.json`` (:func:`ssc_deploy.user_cache.user_cache_dir`),
holding one entry per key; a key hashes the CPU model, its vector flags, the runtime and its
version and the probe's version, so a new CPU, a runtime upgrade or a changed probe measures
again. Entries counted for an ARM device (``export --for arm64-emulated:PROFILE``,
:mod:`ssc_deploy.export.lowerings.selection.arm`) key on the CPU profile and the precision instead of this
machine's CPU, and hold instructions per inference instead of times. A missing, unreadable or corrupt file is an empty cache; a cache that cannot be written
costs a measurement next time, never an export.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import types
import typing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ssc_deploy.atomic import write_text_atomic
from ssc_deploy.cpu_features import CpuFeatures
from ssc_deploy.errors import SscDeployError
from ssc_deploy.user_cache import user_cache_dir

SCHEMA = "ssc-deploy-lowerings/1"
FILE_NAME = "lowerings.json"
MAX_BYTES = 4 * 2**20  # one entry is about 600 bytes


@dataclass(frozen=True)
class Measurement:
    """One runtime's quick measurement on this machine."""

    runtime: str
    runtime_version: str | None
    best: str  # the fastest lowering that passed parity
    medians_ms: dict[str, float]  # every candidate that passed parity
    probe: str  # what was timed, e.g. "ssc-net-1-9 @ 32 px, 1 thread"
    cpu: str
    isa: str
    vector_flags: list[str] = field(default_factory=list)
    measured: str = ""  # UTC time, ISO 8601
    seconds: float = 0.0  # what the measurement cost (wall)
    cpu_seconds: float = 0.0  # and in this process's CPU time
    load_average: float | None = None  # 1-minute load average when measured (timings under load are noisier)
    instructions: dict[str, float] = field(default_factory=dict)  # ARM: instructions per inference per candidate
    precision: str = "fp32"  # the files' precision the candidates were exported at

    @property
    def figures(self) -> dict[str, float]:
        """What ``best`` was chosen on: instructions per inference (ARM entries) or median milliseconds."""
        return self.instructions or self.medians_ms


def cache_path() -> Path:
    """Where the cache file lives (honours ``$SSC_DEPLOY_CACHE`` and ``$XDG_CACHE_HOME``)."""
    return user_cache_dir() / FILE_NAME


def cache_key(runtime: str, runtime_version: str | None, cpu: CpuFeatures | None, probe_version: int,
              arm: tuple[str, tuple[str, ...], str] | None = None) -> str:
    """The entry key: a hash of CPU model, vector flags, runtime, runtime version and probe version.

    ``arm``: (profile, its features, precision) of an ARM device's count; it replaces ``cpu``.
    """
    where = [cpu.model, cpu.machine, list(cpu.vector_flags)] if arm is None else ["arm", arm[0], list(arm[1]), arm[2]]
    text = json.dumps([*where, runtime, runtime_version, probe_version])
    return hashlib.sha256(text.encode()).hexdigest()[:20]


def _entries(path: Path) -> dict[str, dict]:
    from ssc_deploy.safe_read import read_regular_file

    try:  # a FIFO or a huge file in its place is an empty cache too, never a hang
        data = json.loads(read_regular_file(path, MAX_BYTES, "lowering cache").decode("utf-8"))
    except (OSError, ValueError, SscDeployError):
        return {}
    entries = data.get("entries") if isinstance(data, dict) and data.get("schema") == SCHEMA else None
    return entries if isinstance(entries, dict) else {}


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value has the type a :class:`Measurement` field declares (``float`` takes ints,
    no field takes a bool that is not declared so)."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_fits(value, h) for h in typing.get_args(hint))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is dict:
        return isinstance(value, dict) and all(_fits(k, args[0]) and _fits(v, args[1]) for k, v in value.items())
    if origin is list:
        return isinstance(value, list) and all(_fits(v, args[0]) for v in value)
    if hint is type(None):
        return value is None
    if isinstance(value, bool):
        return hint is bool
    if hint is float:
        return isinstance(value, (int, float))
    return isinstance(value, hint)


def lookup(key: str) -> Measurement | None:
    """The cached measurement of ``key``; None when absent or not a well-formed entry (every field
    of the type :class:`Measurement` declares, ``best`` among its figures)."""
    raw = _entries(cache_path()).get(key)
    if not isinstance(raw, dict):
        return None
    hints = typing.get_type_hints(Measurement)
    if set(raw) - set(hints) or not all(_fits(v, hints[k]) for k, v in raw.items()):
        return None
    try:
        m = Measurement(**raw)
    except TypeError:  # a field without a default is missing
        return None
    return m if m.best in m.figures else None


def store(key: str, measurement: Measurement) -> Path | None:
    """Add ``measurement`` under ``key`` (other entries kept); the file, or None when it cannot be written."""
    path = cache_path()
    entries = _entries(path)
    entries[key] = asdict(measurement)
    try:
        write_text_atomic(path, json.dumps({"schema": SCHEMA, "entries": entries}, indent=2) + "\n")
    except (SscDeployError, OSError):
        return None
    return path


def now_utc() -> str:
    """The current UTC time as the cache records it."""
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
