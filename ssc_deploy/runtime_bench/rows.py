"""Result rows: one per job, filled from the runner's JSON, given a status, then ratio columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ssc_deploy.accuracy_stats import describe_flips, gate_fails, mcnemar_p, top1_interval

from .precision import DEFAULT_PRECISION, gate_alpha, max_drop, scheme

if TYPE_CHECKING:
    from .model_under_test import Job

# Verification: an artifact whose top-1 agrees with PyTorch on fewer images than this fails the row.
MIN_TOP1_AGREEMENT = 0.99
# A row's logits on the evaluation images while the run compares devices; never in the outputs.
LOGITS = "_logits"
# A row's top-1 class per evaluated image: in bench.json (paired comparisons), never in the CSV or the store.
PREDICTIONS = "predictions"
FIGURES = ("runtime_version", "load_ms", "import_ms", "throughput_ips", "peak_rss_mb", "top1", "top5", "n_eval", "runs",
           "warmup", "model_rss_mb", "planned_activation_bytes")


def base_row(job: Job, device_info: dict[str, Any]) -> dict[str, Any]:
    """A job's row before it runs: what is known without measuring, status ``failed`` until it passes."""
    m = job.model
    art = m.artifacts.get((job.runtime, job.precision))
    return {
        "device": device_info.get("name", ""),
        "device_kind": device_info.get("kind", ""),
        "emulated": bool(device_info.get("emulated")),
        "model": m.name,
        "family": m.family,
        "role": m.role,
        "trained": m.trained,
        "runtime": job.runtime,
        "precision": job.precision,
        "quant_scheme": scheme(art.manifest) if art else None,
        "threads": job.threads,
        "source": job.source,
        "artifact": str(art.path) if art else None,
        "bytes": art.bytes if art else None,
        "sha256": (art.manifest or {}).get("sha256") if art else None,
        "layout": art.layout if art else None,
        "params": m.params,
        "macs": m.macs,
        "test_top1_pytorch": m.test_top1,
        "status": "failed",
        "reason": "",
    }


def row_from_result(row: dict[str, Any], res: dict[str, Any], atol: float,
                    manifest: dict[str, Any] | None = None) -> dict[str, Any]:
    """Fill a row from the runner's JSON result and decide its status.

    fp32 files must match PyTorch within ``atol``; an int8 or fp16 file cannot, so it is checked
    by accuracy instead (:func:`_check_quantized`, the gate its ``manifest`` records).
    """
    if not res.get("ok"):
        row["status"] = "failed"
        row["reason"] = str(res.get("error") or "the runner reported a failure")
        return row
    for k in FIGURES:
        row[k] = res.get(k)
    for k, v in (res.get("latency_ms") or {}).items():
        row[f"latency_{k}_ms"] = v
    parity = res.get("parity") or {}
    row["parity_max_abs_diff"] = parity.get("max_abs_diff")
    row["parity_top1_agreement"] = parity.get("top1_agreement")
    row["eval_top1_pytorch"] = parity.get("reference_top1")  # PyTorch fp32 on the same images
    row["device_machine"] = res.get("machine")
    row["device_python"] = res.get("python")
    if res.get("logits") is not None:
        row[LOGITS] = res["logits"]  # compared across devices, then dropped (cross_device.py)
    row[PREDICTIONS] = res.get("predictions")
    _add_vs_pytorch(row, parity)
    if not row.get("trained"):
        row["top1"] = row["top5"] = row["eval_top1_pytorch"] = None  # random weights: accuracy means nothing
        for k in VS_PYTORCH:
            row[k] = None
    row["top1_ci_low"], row["top1_ci_high"] = top1_interval(row.get("top1"), row.get("n_eval"))
    row["status"] = "ok"
    if row.get("precision", DEFAULT_PRECISION) != DEFAULT_PRECISION:
        _check_quantized(row, max_drop(manifest), gate_alpha(manifest))
    elif parity:
        diff = parity.get("max_abs_diff")
        agree = parity.get("top1_agreement")
        if diff is not None and (diff != diff or diff > atol):  # NaN counts as a failure
            row["status"] = "verify-failed"
            row["reason"] = f"max |logit diff| vs PyTorch {diff:.2g} > atol {atol:g}"
        elif agree is not None and agree < MIN_TOP1_AGREEMENT:
            row["status"] = "verify-failed"
            row["reason"] = f"top-1 agrees with PyTorch on only {agree:.1%} of images"
    return row


VS_PYTORCH = ("vs_pytorch_right_to_wrong", "vs_pytorch_wrong_to_right", "vs_pytorch_changed", "vs_pytorch_p")


def _add_vs_pytorch(row: dict[str, Any], parity: dict[str, Any]) -> None:
    """The row's flips against PyTorch fp32 on the same images (the runner's counts) and McNemar's p."""
    b, c = parity.get("right_to_wrong"), parity.get("wrong_to_right")
    agree, n = parity.get("top1_agreement"), parity.get("n")
    row["vs_pytorch_right_to_wrong"], row["vs_pytorch_wrong_to_right"] = b, c
    row["vs_pytorch_changed"] = int(round((1 - agree) * n)) if agree is not None and n else None
    row["vs_pytorch_p"] = mcnemar_p(b, c) if b is not None and c is not None else None


def _check_quantized(row: dict[str, Any], drop_pts: float, alpha: float) -> None:
    """A trained quantized row fails verification when its top-1 through the runtime is more than
    ``drop_pts`` points below PyTorch fp32's on the same images and McNemar's p of the flips is
    below ``alpha`` (the export's accuracy gate, :func:`ssc_deploy.accuracy_stats.gate_fails`)."""
    top1, ref = row.get("top1"), row.get("eval_top1_pytorch")
    if top1 is None or ref is None:
        return  # untrained, or no labels or reference: latency and size only
    p = row.get("vs_pytorch_p")
    if gate_fails((ref - top1) * 100, drop_pts, p, alpha):
        flips = "" if p is None else "; " + describe_flips(row["vs_pytorch_right_to_wrong"],
                                                             row["vs_pytorch_wrong_to_right"], alpha)
        row["status"] = "verify-failed"
        row["reason"] = (f"{row['precision']} top-1 {top1:.1%} is {(ref - top1) * 100:.1f} points below PyTorch fp32 "
                         f"({ref:.1%}) on the same {row.get('n_eval')} images{flips} (gate: {drop_pts:g})")


def _slot(r: dict[str, Any]) -> tuple:
    """What a row is compared with the baseline on: device, runtime, precision, threads and source."""
    return r["device"], r["runtime"], r.get("precision", DEFAULT_PRECISION), r["threads"], r["source"]


def add_ratios(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Ratio columns against ``baseline``'s row on the same device, runtime, precision, threads and source.

    size/params/MACs/latency/instruction ratios are model / baseline (below 1 is better for the model);
    ``top1_delta`` is model - baseline. Latency ratios are never formed on emulated devices; instruction
    ratios (``instructions_ratio``, counted on the emulated device's CPU profile) are.
    """
    if not baseline:
        return
    base = {_slot(r): r for r in rows
            if r["model"] == baseline and r["role"] == "baseline" and r["status"] in ("ok", "verify-failed")}
    for r in rows:
        b = base.get(_slot(r))
        r["ratio_to"] = baseline if b is not None else None
        for key, col in (("bytes", "size_ratio"), ("params", "params_ratio"), ("macs", "macs_ratio"),
                         ("latency_median_ms", "latency_ratio"), ("instructions_per_inference", "instructions_ratio")):
            a, c = r.get(key), (b or {}).get(key)
            ok = b is not None and a and c and r["status"] in ("ok", "verify-failed")
            if key == "latency_median_ms" and (r.get("emulated") or (b or {}).get("emulated")):
                ok = False
            r[col] = a / c if ok else None
        t, tb = r.get("top1"), (b or {}).get("top1")
        r["top1_delta"] = t - tb if b is not None and t is not None and tb is not None else None


def run_status(rows: list[dict[str, Any]]) -> str:
    """``complete`` when every row passed, ``failed`` when none did, else ``partial``."""
    n_ok = sum(r["status"] == "ok" for r in rows)
    return "complete" if n_ok == len(rows) else ("failed" if n_ok == 0 else "partial")
