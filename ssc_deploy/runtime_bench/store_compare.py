"""Two stored runs side by side: the rows they share, B against A, and which are regressions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .precision import DEFAULT_PRECISION
from .store import load_run_rows

# A row is a regression when it is this much slower, or loses any top-1 accuracy.
SLOWER_THRESHOLD = 1.10
ACCURACY_DROP = 0.005


def _key(row: dict[str, Any]) -> tuple:
    return (row.get("device", ""), row.get("model", ""), row.get("runtime", ""),
            row.get("precision") or DEFAULT_PRECISION, int(row.get("threads") or 0), row.get("source", ""))


def compare_runs(run_a: int, run_b: int, db: str | Path | None = None) -> list[dict[str, Any]]:
    """Rows present in both runs (same device, model, runtime, precision, threads, source), B against A.

    Each comparison carries ``latency_ratio`` (B / A median), ``top1_delta`` (B - A) and
    ``regression``: True when B is more than 10 % slower or its top-1 accuracy dropped.
    Latency changes on emulated devices are shown but never called regressions.
    """
    rows_a = {_key(r): r for r in load_run_rows(run_a, db)}
    rows_b = {_key(r): r for r in load_run_rows(run_b, db)}
    out = []
    for key in list(rows_a) + [k for k in rows_b if k not in rows_a]:
        a, b = rows_a.get(key), rows_b.get(key)
        la = a.get("latency_median_ms") if a else None
        lb = b.get("latency_median_ms") if b else None
        ta = a.get("top1") if a else None
        tb = b.get("top1") if b else None
        ratio = lb / la if la and lb else None
        delta = tb - ta if ta is not None and tb is not None else None
        emulated = bool((a or {}).get("emulated") or (b or {}).get("emulated"))
        reasons = []
        if ratio is not None and ratio > SLOWER_THRESHOLD and not emulated:
            reasons.append(f"{(ratio - 1) * 100:.0f}% slower")
        if delta is not None and delta < -ACCURACY_DROP:
            reasons.append(f"top-1 {delta * 100:+.1f} pts")
        if a and b and a.get("status") == "ok" and b.get("status") != "ok":
            reasons.append(f"now {b.get('status')}")
        out.append({
            "device": key[0], "model": key[1], "runtime": key[2], "precision": key[3], "threads": key[4],
            "source": key[5],
            "in_a": a is not None, "in_b": b is not None,
            "latency_a_ms": la, "latency_b_ms": lb, "latency_ratio": ratio,
            "top1_a": ta, "top1_b": tb, "top1_delta": delta,
            "status_a": (a or {}).get("status"), "status_b": (b or {}).get("status"),
            "emulated": emulated,
            "regression": bool(reasons), "reasons": reasons,
        })
    return out
