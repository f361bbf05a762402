"""The same file on two devices: how far apart their logits are (an ARM int8 kernel is not x86's).

When a run measures more than one device, the runner returns each row's logits on the evaluation
images (``--logits``); every row on a later device is compared with the row of the same model,
runtime, precision, threads and source on the first device that measured it, then the logits are
dropped so they reach no output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ssc_deploy.accuracy_stats import describe_flips

from .rows import LOGITS

# The same file on another device: its top-1 may differ from the first device's on near-ties only
# (int8 kernels round differently on ARM); below this the row fails verification.
MIN_DEVICE_AGREEMENT = 0.90


def _key(row: dict[str, Any]) -> tuple:
    return (row.get("model"), row.get("role"), row.get("runtime"), row.get("precision", "fp32"), row.get("threads"),
            row.get("source"))


def add_device_diffs(rows: list[dict[str, Any]]) -> None:
    """``device_diff_to`` (the first device's name), ``device_max_abs_diff`` (largest |logit
    difference|), ``device_top1_agreement`` and ``device_diff_n`` (images compared: the first ones
    both evaluated) on each later device's row; the logits removed."""
    first: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        logits = r.get(LOGITS)
        if logits is None:
            continue
        ref = first.setdefault(_key(r), r)
        if ref is r:
            continue
        a, b = np.asarray(ref[LOGITS], dtype=np.float64), np.asarray(logits, dtype=np.float64)
        n = min(len(a), len(b))  # both evaluated the first images of the same inputs (an emulated device fewer)
        if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or n == 0:
            continue
        a, b = a[:n], b[:n]
        r["device_diff_to"] = ref.get("device")
        r["device_diff_n"] = n
        r["device_max_abs_diff"] = float(np.max(np.abs(a - b)))
        r["device_top1_agreement"] = float(np.mean(a.argmax(1) == b.argmax(1)))
        if r.get("status") == "ok" and r["device_top1_agreement"] < MIN_DEVICE_AGREEMENT:
            r["status"] = "verify-failed"
            r["reason"] = (f"top-1 agrees with {ref.get('device')} on only {r['device_top1_agreement']:.1%} of {n} "
                           "images (the same file: this device's kernels compute something else)")
    for r in rows:
        r.pop(LOGITS, None)


def diff_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per compared row: ``arm64-emulated vs host: ssc-net-1-9 tflite int8 x1: ...``."""
    out = []
    for r in rows:
        if r.get("device_diff_to") is None:
            continue
        flipped = ""
        if r.get("device_p") is not None:  # the flips behind the accuracy difference (paired.py)
            flipped = "; " + describe_flips(r["device_right_to_wrong"], r["device_wrong_to_right"])
        out.append(f"{r['device']} vs {r['device_diff_to']}: {r['model']} {r['runtime']} {r.get('precision', 'fp32')} "
                   f"x{r.get('threads')}: max |logit diff| {r['device_max_abs_diff']:.2g}, top-1 agreement "
                   f"{r['device_top1_agreement']:.1%} on {r['device_diff_n']} images{flipped}")
    return out
