"""Result rows: one per job, filled from the runner's JSON, given a status, then ratio columns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .jobs import Job

# Verification: an artifact whose top-1 agrees with PyTorch on fewer images than this fails the row.
MIN_TOP1_AGREEMENT = 0.99
FIGURES = ("runtime_version", "load_ms", "import_ms", "throughput_ips", "peak_rss_mb", "top1", "top5", "n_eval", "runs",
           "warmup", "model_rss_mb", "planned_activation_bytes")


def one_line(err: BaseException) -> str:
    """The first line of an exception's text (its type name when it has none), at most 300 characters."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:300]


def base_row(job: Job, device_info: dict[str, Any]) -> dict[str, Any]:
    """A job's row before it runs: what is known without measuring, status ``failed`` until it passes."""
    m = job.model
    art = m.artifacts.get(job.runtime)
    return {
        "device": device_info.get("name", ""),
        "device_kind": device_info.get("kind", ""),
        "emulated": bool(device_info.get("emulated")),
        "model": m.name,
        "family": m.family,
        "role": m.role,
        "trained": m.trained,
        "runtime": job.runtime,
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


def row_from_result(row: dict[str, Any], res: dict[str, Any], atol: float) -> dict[str, Any]:
    """Fill a row from the runner's JSON result and decide its status."""
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
    row["device_machine"] = res.get("machine")
    row["device_python"] = res.get("python")
    if not row.get("trained"):
        row["top1"] = row["top5"] = None  # random weights: accuracy means nothing
    row["status"] = "ok"
    if parity:
        diff = parity.get("max_abs_diff")
        agree = parity.get("top1_agreement")
        if diff is not None and (diff != diff or diff > atol):  # NaN counts as a failure
            row["status"] = "verify-failed"
            row["reason"] = f"max |logit diff| vs PyTorch {diff:.2g} > atol {atol:g}"
        elif agree is not None and agree < MIN_TOP1_AGREEMENT:
            row["status"] = "verify-failed"
            row["reason"] = f"top-1 agrees with PyTorch on only {agree:.1%} of images"
    return row


def add_ratios(rows: list[dict[str, Any]], baseline: str | None) -> None:
    """Ratio columns against ``baseline``'s row on the same device, runtime, threads and source.

    size/params/MACs/latency ratios are model / baseline (below 1 is better for the model);
    ``top1_delta`` is model - baseline. Latency ratios are never formed on emulated devices.
    """
    if not baseline:
        return
    base = {(r["device"], r["runtime"], r["threads"], r["source"]): r for r in rows
            if r["model"] == baseline and r["role"] == "baseline" and r["status"] in ("ok", "verify-failed")}
    for r in rows:
        b = base.get((r["device"], r["runtime"], r["threads"], r["source"]))
        r["ratio_to"] = baseline if b is not None else None
        for key, col in (("bytes", "size_ratio"), ("params", "params_ratio"), ("macs", "macs_ratio"),
                         ("latency_median_ms", "latency_ratio")):
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
