"""Paired comparisons behind every top-1 delta: which images flip between two rows, and McNemar's p.

Each row carries its top-1 class per evaluated image (``predictions``, from the device runner).
Three deltas get their flips, each on the images both rows evaluated (an emulated device fewer):

- ``vs_fp32_*``: an int8/fp16 row against the fp32 file of the same model and runtime (the rows
  :func:`.precision.add_fp32_columns` pairs);
- ``vs_base_*``: a model's row against its baseline's (the rows :func:`.rows.add_ratios` pairs);
- ``device_*``: a row on a later device against the same file on the first device that measured it
  (the rows :mod:`.cross_device` pairs).

Each is ``<prefix>right_to_wrong`` (the reference right, this row wrong), ``<prefix>wrong_to_right``,
``<prefix>changed`` (predicted class differs) and ``<prefix>p`` (exact McNemar); None where there is
no reference row, no labels or no accuracy (untrained). Flips against PyTorch fp32 (``vs_pytorch_*``)
are counted by the runner itself (:mod:`.rows`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np

from ssc_deploy.accuracy_stats import Flips, flips

from .cross_device import _key as device_key
from .precision import DEFAULT_PRECISION, _group as precision_group
from .rows import PREDICTIONS, _slot as baseline_slot

PREFIXES = ("vs_fp32_", "vs_base_", "device_")
COLUMNS = tuple(f"{p}{k}" for p in PREFIXES for k in ("right_to_wrong", "wrong_to_right", "changed", "p"))
_MEASURED = ("ok", "verify-failed")


def eval_facts(models: Iterable[Any]) -> dict[str, dict[str, Any]]:
    """Per model, from the inputs ``.npz`` the harness wrote for it: ``eval_labels`` and
    ``eval_predictions_pytorch`` (PyTorch fp32's top-1 class per image) as lists of ints, and its
    ``classes``; what the report's flip matrix and picture grid are drawn from (``result["models"]``)."""
    out: dict[str, dict[str, Any]] = {}
    for m in models:
        path = getattr(m, "inputs", None)
        if path is None or not Path(path).is_file():
            continue
        with np.load(path, allow_pickle=False) as z:
            labels = z["labels"].astype(np.int64).tolist() if "labels" in z.files else None
            ref = z["reference"].argmax(1).astype(np.int64).tolist() if "reference" in z.files else None
        out[m.name] = {"eval_labels": labels, "eval_predictions_pytorch": ref, "classes": m.classes}
    return out


def pair(row: dict[str, Any], ref: dict[str, Any] | None, labels: np.ndarray | None) -> Flips | None:
    """The flips of ``row`` against ``ref`` on the first images both evaluated; None when not comparable."""
    if ref is None or ref is row or labels is None:
        return None
    if not (row.get("trained") and ref.get("trained")) or row.get("status") not in _MEASURED \
            or ref.get("status") not in _MEASURED:
        return None
    a, b = ref.get(PREDICTIONS), row.get(PREDICTIONS)
    if not a or not b:
        return None
    n = min(len(a), len(b), len(labels))
    return flips(labels[:n], a[:n], b[:n])


def add_paired(rows: list[dict[str, Any]], facts: dict[str, dict[str, Any]], baseline: str | None) -> None:
    """The ``vs_fp32_*``, ``vs_base_*`` and ``device_*`` flip columns on every row (see the module doc);
    ``facts``: :func:`eval_facts` (each model's labels)."""
    labels = {name: np.asarray(f["eval_labels"], dtype=np.int64) for name, f in facts.items()
              if f.get("eval_labels") is not None}
    fp32 = {precision_group(r): r for r in rows
            if r.get("precision", DEFAULT_PRECISION) == DEFAULT_PRECISION and r.get("status") in _MEASURED}
    base = {baseline_slot(r): r for r in rows if baseline and r["model"] == baseline and r.get("role") == "baseline"}
    first: dict[tuple, dict[str, Any]] = {}
    for r in rows:
        if r.get(PREDICTIONS):
            first.setdefault(device_key(r), r)
    refs: tuple[tuple[str, Callable[[dict[str, Any]], dict[str, Any] | None]], ...] = (
        ("vs_fp32_", lambda r: fp32.get(precision_group(r))
         if r.get("precision", DEFAULT_PRECISION) != DEFAULT_PRECISION else None),
        ("vs_base_", lambda r: base.get(baseline_slot(r))),
        ("device_", lambda r: first.get(device_key(r)) if first.get(device_key(r), r)["device"] != r["device"]
         else None),
    )
    for r in rows:
        for prefix, ref_of in refs:
            f = pair(r, ref_of(r), labels.get(r["model"]))
            if f is not None:
                r.update(f.to_dict(prefix))
            else:
                r.update({c: None for c in COLUMNS if c.startswith(prefix)})
