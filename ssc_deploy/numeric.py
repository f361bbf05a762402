"""The checks every numeric command-line option goes through before any work (one place, one wording).

NaN and infinity are refused everywhere: a comparison with NaN is always false, so a NaN
tolerance would let every mismatch pass and a NaN timeout would never fire.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Iterable

from ssc_deploy.errors import SscDeployError

# More threads than this in one measurement or one training process is refused: no CPU a
# benchmark or training here runs on has that many cores, and 100000 threads hang the machine.
MAX_THREADS = 256
_CPU_LIST = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def check_int(option: str, value: int | None, minimum: int | None = None, maximum: int | None = None,
              note: str = "") -> int | None:
    """``value`` (None passes: left to the default) when it is an integer in ``minimum..maximum``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise SscDeployError(f"{option} takes a whole number, got {value!r}")
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SscDeployError(f"{option} must be {_range(minimum, maximum)}, got {value}" + (f" ({note})" if note else ""))
    return value


def check_float(option: str, value: float | None, minimum: float | None = None, maximum: float | None = None,
                positive: bool = False) -> float | None:
    """``value`` (None passes) when it is a finite number in range (``positive``: above 0)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise SscDeployError(f"{option} must be a finite number, got {value!r}")
    if positive and not value > 0:
        raise SscDeployError(f"{option} must be a positive number, got {value:g}")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise SscDeployError(f"{option} must be {_range(minimum, maximum)}, got {value:g}")
    return float(value)


def check_threads(option: str, values: int | Iterable[int] | None) -> None:
    """Each thread count from 1 to :data:`MAX_THREADS`."""
    if values is None:
        return
    for v in [values] if isinstance(values, int) else values:
        check_int(option, v, 1, MAX_THREADS, note=f"at most {MAX_THREADS} threads per process")


def check_cpu_list(option: str, value: str | None) -> str | None:
    """A taskset CPU list such as ``4-7`` or ``0,2,4-5`` (ranges low to high)."""
    if value is None:
        return None
    text = value.strip()
    ok = bool(_CPU_LIST.match(text))
    if ok:
        for part in text.split(","):
            lo, _, hi = part.partition("-")
            ok = ok and (not hi or int(lo) <= int(hi))
    if not ok:
        raise SscDeployError(f"{option} takes a CPU list such as 4-7 or 0,2,4-5, got '{value}'")
    return text


def _range(minimum, maximum) -> str:
    if minimum is not None and maximum is not None:
        return f"from {minimum:g} to {maximum:g}"
    return f"at least {minimum:g}" if minimum is not None else f"at most {maximum:g}"
