"""Numeric precision in the benchmark: names, an artifact's precision, and the columns against fp32.

Files follow the exporter's naming: fp32 keeps ``NAME.SUFFIX``, the others are ``NAME.int8.SUFFIX``
and ``NAME.fp16.SUFFIX``. A row's precision is its manifest's (``fp32`` for an old manifest);
the file name only speaks for a file without a manifest. Torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from ssc_deploy.errors import SscDeployError
from ssc_deploy.export.options import DEFAULT_MAX_DROP
from ssc_deploy.export.quantize import PRECISIONS

DEFAULT_PRECISION = "fp32"
# A quantized row fails verification when its top-1 is DEFAULT_MAX_DROP points (the export gate's
# default, ssc_deploy.export.options) below PyTorch fp32 on the same images and its manifest records no
# max_drop of its own.


def precision_order(name: str) -> int:
    """Sort key: fp32, int8, fp16, then anything else."""
    return PRECISIONS.index(name) if name in PRECISIONS else len(PRECISIONS)


def check_precisions(names: Iterable[str], prefix: str = "--precision ") -> list[str]:
    """The names lower-cased, once each and in order; one-line error naming the first unknown one."""
    out = list(dict.fromkeys(n.strip().lower() for n in names if n.strip()))
    for n in out:
        if n not in PRECISIONS:
            raise SscDeployError(f"{prefix}{n}: unknown precision (use {', '.join(PRECISIONS)})")
    return out


def precision_from_name(path: Path) -> str:
    """The precision a file name carries (``x.int8.onnx`` -> ``int8``); fp32 when it carries none."""
    parts = path.name.split(".")
    return parts[-2].lower() if len(parts) >= 3 and parts[-2].lower() in PRECISIONS else DEFAULT_PRECISION


def stem_without_precision(path: Path) -> str:
    """The file's stem without a precision part (``x.int8.onnx`` -> ``x``)."""
    stem = path.stem
    tail = f".{precision_from_name(path)}"
    return stem[: -len(tail)] if precision_from_name(path) != DEFAULT_PRECISION and stem.lower().endswith(tail) else stem


def max_drop(manifest: dict[str, Any] | None) -> float:
    """The accuracy gate (top-1 points) a quantized file was exported under, from its manifest."""
    acc = ((manifest or {}).get("quantization") or {}).get("accuracy") or {}
    value = acc.get("max_drop")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else DEFAULT_MAX_DROP


def gate_alpha(manifest: dict[str, Any] | None) -> float:
    """The significance level of the accuracy gate a quantized file was exported under (0.05 unless recorded)."""
    from ssc_deploy.accuracy_stats import ALPHA

    acc = ((manifest or {}).get("quantization") or {}).get("accuracy") or {}
    value = acc.get("alpha")
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else ALPHA


def scheme(manifest: dict[str, Any] | None) -> str | None:
    """The quantization scheme the manifest records (e.g. ``u8s8``), None for fp32 files."""
    value = ((manifest or {}).get("quantization") or {}).get("scheme")
    return str(value) if value else None


def _group(row: dict[str, Any]) -> tuple:
    return (row.get("device"), row.get("model"), row.get("role"), row.get("runtime"), row.get("threads"),
            row.get("source"))


def add_fp32_columns(rows: list[dict[str, Any]]) -> None:
    """Each row against the fp32 file of the same model and runtime (same device, threads and source).

    ``vs_fp32_size_ratio`` is bytes / fp32 bytes, ``vs_fp32_speedup`` fp32 median / this median
    (above 1: faster; never on an emulated device), ``vs_fp32_top1_delta`` top-1 minus fp32 top-1
    (a fraction, like ``top1``), ``vs_fp32_instructions_ratio`` instructions per inference / fp32's (on a
    device that counts them). None for the fp32 rows themselves and where no fp32 row passed.
    """
    measured = ("ok", "verify-failed")
    base = {_group(r): r for r in rows if r.get("precision", DEFAULT_PRECISION) == DEFAULT_PRECISION
            and r.get("status") in measured}
    for r in rows:
        b = base.get(_group(r)) if r.get("precision", DEFAULT_PRECISION) != DEFAULT_PRECISION else None
        ok = b is not None and r.get("status") in measured
        size, bsize = r.get("bytes"), (b or {}).get("bytes")
        r["vs_fp32_size_ratio"] = size / bsize if ok and size and bsize else None
        lat, blat = r.get("latency_median_ms"), (b or {}).get("latency_median_ms")
        r["vs_fp32_speedup"] = blat / lat if ok and lat and blat and not r.get("emulated") else None
        t, tb = r.get("top1"), (b or {}).get("top1")
        r["vs_fp32_top1_delta"] = t - tb if ok and t is not None and tb is not None else None
        ins, bins = r.get("instructions_per_inference"), (b or {}).get("instructions_per_inference")
        r["vs_fp32_instructions_ratio"] = ins / bins if ok and ins and bins else None


INT8_DOES_NOT_PAY = "int8 does not pay here"


def int8_does_not_pay(row: dict[str, Any]) -> bool:
    """An int8 row slower than the fp32 file of the same model and runtime (or, counted on an emulated
    device, more instructions): the report marks it instead of recommending it (issue 22)."""
    if row.get("precision") != "int8":
        return False
    speedup, insn = row.get("vs_fp32_speedup"), row.get("vs_fp32_instructions_ratio")
    return (speedup is not None and speedup < 1.0) or (speedup is None and insn is not None and insn > 1.0)


def speedup_text(row: dict[str, Any], value: str) -> str:
    """``value`` (the formatted speed-up cell), with :data:`INT8_DOES_NOT_PAY` on a row where it does not."""
    return f"{value} ({INT8_DOES_NOT_PAY})" if int8_does_not_pay(row) else value
