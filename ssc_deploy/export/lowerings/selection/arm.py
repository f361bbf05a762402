"""The ``fast`` lowering for an ARM device (``ssc-deploy export --for arm64-emulated[:PROFILE]``).

Per target and precision, the candidate with the fewest ARM instructions per inference on the
device's CPU profile: the lowering probe's net (:mod:`.probe`) is exported once per
candidate and counted on the emulated device
(:func:`ssc_deploy.runtime_bench.insn_counts.count_artifacts`), then cached in the lowering cache
keyed by profile, precision and the device's runtime version. fp32 candidates are the probe's;
int8 candidates are the lowerings that keep the int8 chain whole (:data:`INT8_CANDIDATES`). With
``SSC_DEPLOY_MEASURE_LOWERINGS=0`` or ``--lowering fast-table`` the choice is :data:`KNOWN_FEWEST`.
Runtimes the emulated device does not count (the runtime table's ``emulated_counts``; ExecuTorch:
no aarch64 ``executor_runner``) keep the host's choice.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ssc_deploy.errors import SscDeployError, last_line
from ssc_deploy.runtimes import RUNTIME_TABLE, by_target, runtime_module

from ssc_deploy.export.lowerings.selection import cache as lowering_cache
from ssc_deploy.export.lowerings.selection.cache import Measurement

# The targets the emulated device runs and counts (the runtime table's emulated_counts).
COUNTED_TARGETS = tuple(spec.target for spec in RUNTIME_TABLE if spec.emulated_counts)
# The runtime table's int8_lowering of onnx and tflite (dwconv-nhwc) and ExecuTorch's (dwconv): depthwise
# convs, which the quantizers keep in int8 end to end (pad + slice lowerings dequantize around the slices).
# Group merge k=3 as a lowering (issue 22) counted fewer on cortex-a76 for both; k=9 and the batched MatMul more.
INT8_CANDIDATES = ("dwconv", "dwconv-nhwc", "dwconv-merge3", "dwconv-nhwc-merge3")


def not_counted(target: str) -> str:
    """Why ``target``'s files keep the host's choice on arm64-emulated."""
    spec = by_target(target)
    return f"{spec.label} has no instruction counts on arm64-emulated (no aarch64 {spec.native_tool}): the host's choice"


def _measured() -> dict[str, dict[tuple[str, str], dict[str, float]]]:
    rows: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    for spec in RUNTIME_TABLE:
        if spec.arm_counts_module is None:
            continue
        for profile, precisions in runtime_module(spec, "arm_counts_module").INSTRUCTIONS.items():
            for precision, counts in precisions.items():
                rows.setdefault(profile, {})[spec.target, precision] = counts
    return rows


# Instructions per inference counted 2026-12-02 on arm64-emulated, the probe (ssc-net-1-9 @ 32 px), 1 thread:
# profile -> (target, precision) -> lowering -> count, from each counted runtime's arm_counts module (where
# the runtime versions are said); KNOWN_FEWEST is their minimum. Profiles without a row (neoverse-n1, max)
# take the host's choice.
MEASURED: dict[str, dict[tuple[str, str], dict[str, float]]] = _measured()
KNOWN_FEWEST: dict[str, dict[tuple[str, str], str]] = {
    profile: {key: min(counts, key=counts.get) for key, counts in rows.items()} for profile, rows in MEASURED.items()
}


def candidates(target: str, precision: str) -> tuple[str, ...]:
    """The lowerings counted for ``target`` at ``precision``."""
    from ssc_deploy.export.lowerings.selection.probe import QUICK_CANDIDATES

    return INT8_CANDIDATES if precision == "int8" else QUICK_CANDIDATES[target]


def check_can_count() -> None:
    """One-line error saying how to set the emulated device up when it cannot count instructions."""
    from ssc_deploy.devices.arm_profiles import DEVICE
    from ssc_deploy.devices.emulated import emulated_status

    status = emulated_status()
    if status.state != "ready" or "no instruction counts" in status.detail:
        state = {"not set up": "is not set up", "cannot emulate": "cannot run here"}.get(
            status.state, "cannot count instructions")
        raise SscDeployError(f"--for {DEVICE}: the emulated device {state}: {status.detail} "
                             f"(or SSC_DEPLOY_MEASURE_LOWERINGS=0 / --lowering fast-table for the known table)")


def known_fewest(target: str, precision: str, profile: str) -> tuple[str, str] | None:
    """(lowering, reason) from :data:`KNOWN_FEWEST`; None where the table has no row."""
    best = KNOWN_FEWEST.get(profile, {}).get((target, precision))
    if best is None:
        return None
    return best, (f"known fewest ARM instructions on emulated {profile} (table, not measured here): "
                  f"{_figures(MEASURED[profile][target, precision])} on the probe, counted 2026-12-02")


def fewest_instructions(target: str, precision: str, profile: str) -> tuple[str, str]:
    """(lowering, reason) for ``target``'s ``precision`` files on emulated ``profile``: the cached count,
    else counted now on the emulated device (and cached); one-line error when it is not set up."""
    from ssc_deploy.devices.arm_profiles import get_profile
    from ssc_deploy.devices.emulated import EmulatedArm64Device

    from ssc_deploy.export.lowerings.selection.probe import PROBE_VERSION
    from ssc_deploy.export.lowerings import available_lowerings

    check_can_count()
    arm = get_profile(profile)
    device = EmulatedArm64Device(profile=arm.name)
    runtime = by_target(target).runtime
    version = device.info().runtimes.get(runtime)
    key = lowering_cache.cache_key(runtime, version, None, PROBE_VERSION, arm=(arm.name, arm.features, precision))
    hit = lowering_cache.lookup(key)
    if hit is not None and hit.best in available_lowerings():
        return hit.best, (f"fewest ARM instructions on emulated {arm.describe()}, counted {hit.measured[:10]}: "
                          f"{_figures(hit.instructions)} on {hit.probe} (cache {lowering_cache.cache_path()})")
    result = count_candidates(device, target, precision, version)
    path = lowering_cache.store(key, result)
    where = f"cached in {path}" if path is not None else "the cache could not be written"
    return result.best, (f"fewest ARM instructions on emulated {arm.describe()}, counted now, {result.seconds:.0f} s: "
                         f"{_figures(result.instructions)} on {result.probe} ({where})")


def count_candidates(device, target: str, precision: str, runtime_version: str | None) -> Measurement:
    """Export the probe net with each candidate and count it on ``device``; raises SscDeployError when none counts."""
    from ssc_deploy.runtime_bench.insn_counts import count_artifacts

    from ssc_deploy.export.lowerings.selection.probe import probe_description

    start, cpu_start = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-armprobe-") as tmp:
        files = probe_files(target, precision, Path(tmp), candidates(target, precision))
        rows = count_artifacts(device, files)
        counts = {low: round(r["instructions_per_inference"]) for low, r in zip(candidates(target, precision), rows)
                  if r.get("instructions_per_inference") is not None}
    if not counts:
        reasons = "; ".join(r.get("reason") or r["status"] for r in rows)
        raise SscDeployError(f"counting the {target} {precision} lowerings on {device.profile.name} failed: {reasons}")
    profile = device.profile
    return Measurement(
        runtime=by_target(target).runtime, runtime_version=runtime_version, best=min(counts, key=counts.get),
        medians_ms={}, probe=probe_description(), cpu=profile.describe(), isa="aarch64",
        vector_flags=list(profile.features), measured=lowering_cache.now_utc(),
        seconds=round(time.perf_counter() - start, 2), cpu_seconds=round(cpu_seconds() - cpu_start, 2),
        instructions=counts, precision=precision)


def probe_files(target: str, precision: str, out_dir: Path, lowerings: tuple[str, ...], *, strict: bool = False,
                keep_going: bool = False) -> list[Path | None]:
    """The probe's files for ``target`` at ``precision``, one a lowering, exported by
    :mod:`.arm_probe_worker` in a child process (why a child: its docstring). ``strict``: an int8
    chain broken on the runtime is an error; ``keep_going``: a lowering that fails to export is None
    in the list instead of failing them all."""
    import ssc_deploy

    from ssc_deploy.export.lowerings.selection.probe import PROBE_IMAGES, PROBE_MODEL, PROBE_SIZE

    env = dict(os.environ)
    root = str(Path(ssc_deploy.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    argv = ["--target", target, "--precision", precision, "--out", str(out_dir), "--model", PROBE_MODEL,
            "--in-size", str(PROBE_SIZE), "--n-verify", str(PROBE_IMAGES), "--calib", str(PROBE_CALIB),
            *(["--strict"] if strict else []), *(["--keep-going"] if keep_going else []), *lowerings]
    proc = subprocess.run([sys.executable, "-m", "ssc_deploy.export.lowerings.selection.arm_probe_worker", *argv],
                          capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        said = [ln for ln in proc.stderr.splitlines() if ln.startswith("error:")]
        last = last_line(proc.stderr, f"exit {proc.returncode}")
        raise SscDeployError(f"exporting the ARM probe's {target} {precision} files failed: "
                             f"{said[-1].removeprefix('error: ') if said else last}")
    return [None if p is None else Path(p) for p in json.loads(proc.stdout.strip().splitlines()[-1])]


def cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (the probe files are exported in one)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


PROBE_CALIB = 16  # calibration images of the probe's int8 files (their accuracy is not what is counted)


def _figures(counts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in sorted(counts.items(), key=lambda kv: kv[1])) \
        + " instructions/inference"
