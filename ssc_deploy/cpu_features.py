"""This CPU's model name and vector instruction sets (torch-free, read once).

The vector ISA class (``avx512``, ``avx2``, ``arm64-neon-dotprod``, ...) picks the row of known
fastest lowerings when nothing was measured here; the model name and the vector flags key the
per-machine lowering measurement (:mod:`ssc_deploy.export.lowerings.selection.choice`).

>>> from ssc_deploy.cpu_features import cpu_features
>>> cpu_features().isa in ISA_CLASSES
True
"""

from __future__ import annotations

import functools
import platform
import re
from dataclasses import dataclass

ISA_CLASSES = ("avx512", "avx2", "x86-sse", "arm64-neon-dotprod", "arm64-neon", "other")
# Flags that change which vector kernels a runtime picks (x86 ``flags``, arm64 ``Features``).
_VECTOR_FLAG = re.compile(r"^(avx\w*|fma\w*|f16c|amx\w*|sse4\w*|asimd\w*|sve\w*|i8mm|bf16|fphp|dotprod|sme(?!p$)\w*)$")


@dataclass(frozen=True)
class CpuFeatures:
    """What the lowering choice needs to know about this CPU."""

    model: str  # e.g. "AMD EPYC"
    machine: str  # platform.machine(): x86_64, aarch64, arm64, ...
    vector_flags: tuple[str, ...]  # sorted vector-relevant flags
    isa: str  # one of ISA_CLASSES

    def describe(self) -> str:
        """One short line: model, machine and ISA class."""
        return f"{self.model or 'unknown CPU'} ({self.machine}, {self.isa})"


def isa_class(machine: str, flags: set[str] | frozenset[str]) -> str:
    """The vector ISA class of a CPU from its machine name and flags.

    >>> isa_class("x86_64", {"avx2", "fma", "avx512f"})
    'avx512'
    >>> isa_class("aarch64", {"asimd", "asimddp"})
    'arm64-neon-dotprod'
    """
    machine = machine.lower()
    if machine in ("x86_64", "amd64", "i686", "x86"):
        if "avx512f" in flags:
            return "avx512"
        if "avx2" in flags and "fma" in flags:
            return "avx2"
        return "x86-sse"
    if machine in ("aarch64", "arm64", "armv8l"):
        # Linux names dot product "asimddp"; every Apple arm64 CPU has it (macOS lists no flags).
        return "arm64-neon-dotprod" if "asimddp" in flags or "dotprod" in flags or not flags else "arm64-neon"
    return "other"


def _cpuinfo() -> tuple[str, set[str]]:
    """(model name, flags) from /proc/cpuinfo's first processor; empty where there is none."""
    model, flags = "", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in ("model name", "Hardware", "Model") and not model:
                    model = value.strip()
                elif key in ("flags", "Features") and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    return model, flags


@functools.lru_cache(maxsize=1)
def cpu_features() -> CpuFeatures:
    """This machine's :class:`CpuFeatures` (read once a process)."""
    model, flags = _cpuinfo()
    machine = platform.machine()
    vector = tuple(sorted(f for f in flags if _VECTOR_FLAG.match(f)))
    return CpuFeatures(model=model or platform.processor(), machine=machine, vector_flags=vector,
                       isa=isa_class(machine, flags))
