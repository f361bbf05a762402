"""ARM instructions per inference on a device that counts them (the emulated arm64 device's profiles).

Two counted runs of the device runner on the same file, one thread, no inputs file (the runner's
fixed-seed random input of the model's shape): one with 1 warm-up and 1 timed inference, one with
1 warm-up and ``1 + COUNTED_INFERENCES``. Everything else (interpreter start, imports, loading, the
first inference's one-off work) is the same in both, so the difference divided by
``COUNTED_INFERENCES`` is what one steady-state inference executes on the main thread: guest
instructions, and the memory accesses qemu performs for them. Repeatable (two runs within 1 %),
but instructions, not time.
"""

from __future__ import annotations

from typing import Any

from ssc_deploy.errors import SscDeployError

COUNTED_INFERENCES = 10
# The row keys: per-inference figures from the plugin's counters, and what they were counted on.
PER_INFERENCE_KEYS = {"insns": "instructions_per_inference", "loads": "loads_per_inference",
                      "stores": "stores_per_inference"}
PROFILE_KEY = "insn_profile"


def per_inference(counts_0: dict[str, int], counts_n: dict[str, int], n: int) -> dict[str, float]:
    """(counts of the run with ``n`` more inferences - counts of the other run) / ``n``, per counter.

    A run with more inferences that executed no more instructions is a one-line error.
    """
    if n < 1:
        raise SscDeployError(f"instruction counts need at least 1 counted inference, not {n}")
    out = {}
    for key, col in PER_INFERENCE_KEYS.items():
        if key in counts_0 and key in counts_n:
            out[col] = (counts_n[key] - counts_0[key]) / n
    if out.get("instructions_per_inference", 0) <= 0:
        raise SscDeployError(f"the run with {n} more inferences executed no more instructions "
                             f"({counts_n.get('insns')} vs {counts_0.get('insns')})")
    return out


def count_args(artifact: str, runtime: str, layout: str, inferences: int) -> list[str]:
    """The runner's command line for a counted run: one thread, 1 warm-up, ``inferences`` timed runs."""
    return ["--artifact", artifact, "--runtime", runtime, "--threads", "1", "--warmup", "1",
            "--runs", str(inferences), "--layout", layout]


def count_per_inference(device, artifact: str, runtime: str, layout: str, timeout: float,
                        n: int = COUNTED_INFERENCES) -> dict[str, Any]:
    """The per-inference figures of one staged artifact on ``device`` (see the module docstring), with
    the CPU profile they were counted on; :class:`DeviceError` or :class:`SscDeployError` when a run fails."""
    counts = []
    for inferences in (1, 1 + n):
        res, c = device.count_runner(count_args(artifact, runtime, layout, inferences), timeout)
        if not res.get("ok"):
            raise SscDeployError(f"counted run failed: {res.get('error') or 'the runner reported a failure'}")
        counts.append(c)
    profile = getattr(getattr(device, "profile", None), "name", None)
    return {**per_inference(counts[0], counts[1], n), PROFILE_KEY: profile}


def add_instruction_counts(row: dict[str, Any], device, artifact_path: str, timeout: float) -> None:
    """Count a measured row's artifact on a device that counts instructions (1-thread rows only: the figures are
    the main thread's, where a 1-thread runtime infers); a failed count fails the row, naming why."""
    if not getattr(device, "counts_instructions", False) or row.get("threads") != 1 \
            or row.get("source") != "device-runner" or row.get("status") not in ("ok", "verify-failed"):
        return
    from ssc_deploy.devices.base import DeviceError

    try:
        row.update(count_per_inference(device, artifact_path, row["runtime"], row.get("layout") or "NCHW", timeout))
    except (DeviceError, SscDeployError) as err:
        row["status"] = "failed"
        row["reason"] = f"instruction count: {err}"


def instruction_label(rows: list[dict[str, Any]]) -> str | None:
    """``emulated cortex-a76, instructions, not time`` for rows with counts (profiles joined), None without."""
    profiles = list(dict.fromkeys(r[PROFILE_KEY] for r in rows if r.get("instructions_per_inference") is not None
                                  and r.get(PROFILE_KEY)))
    return f"emulated {'/'.join(profiles)}, instructions, not time" if profiles else None


def count_artifacts(device, artifacts: list, baseline: str | None = None, timeout: float = 900.0,
                    progress=None) -> list[dict[str, Any]]:
    """Per-inference counts of exported files (our manifests say model, runtime, precision and layout) on
    ``device``, as bench-shaped rows with the ratios against ``baseline`` and against each model's fp32
    file. Files of runtimes the device has not (ExecuTorch on the emulated device) are left out; a count
    that fails is that row's ``reason``."""
    from pathlib import Path

    from ssc_deploy.devices.base import DeviceError
    from ssc_deploy.export.manifest import Manifest

    from .precision import add_fp32_columns
    from .rows import add_ratios

    info = device.info()
    files = [(Path(a), Manifest.read(a)) for a in artifacts]
    files = [(p, m) for p, m in files if m.runtime in info.runtimes]
    paths = device.stage([p for p, _ in files])
    rows = []
    for path, man in files:
        if progress:
            progress(f"{info.name}: {man.model.name} {man.runtime} {man.precision}")
        row = {"device": info.name, "emulated": info.emulated, "model": man.model.name,
               "role": "baseline" if man.model.name == baseline else "model", "runtime": man.runtime,
               "precision": man.precision, "threads": 1, "source": "device-runner", "status": "ok", "reason": "",
               "artifact": str(path)}
        try:
            row.update(count_per_inference(device, paths[path], man.runtime, man.input.layout, timeout))
        except (DeviceError, SscDeployError) as err:
            row["status"], row["reason"] = "failed", str(err)
        rows.append(row)
    add_fp32_columns(rows)
    add_ratios(rows, baseline)
    return rows
