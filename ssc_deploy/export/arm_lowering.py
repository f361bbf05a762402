"""The ``fast`` lowering for an ARM device (``ssc-deploy export --for arm64-emulated[:PROFILE]``).

Per target and precision, the candidate with the fewest ARM instructions per inference on the
device's CPU profile: the lowering probe's net (:mod:`.lowering_probe`) is exported once per
candidate and counted on the emulated device
(:func:`ssc_deploy.runtime_bench.insn_counts.count_artifacts`), then cached in the lowering cache
keyed by profile, precision and the device's runtime version. fp32 candidates are the probe's;
int8 candidates are the lowerings that keep the int8 chain whole (:data:`INT8_CANDIDATES`). With
``SSC_DEPLOY_MEASURE_LOWERINGS=0`` or ``--lowering fast-table`` the choice is :data:`KNOWN_FEWEST`.
ExecuTorch has no instruction counts on the emulated device (no aarch64 ``executor_runner``),
so its files keep the host's choice.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from ssc_deploy.errors import SscDeployError

from . import lowering_cache
from .lowering_cache import Measurement

COUNTED_TARGETS = ("onnx", "tflite")  # the targets the emulated device runs and counts
# The runtime table's int8_lowering of onnx and tflite (dwconv-nhwc) and ExecuTorch's (dwconv): depthwise
# convs, which the quantizers keep in int8 end to end (pad + slice lowerings dequantize around the slices).
# Group merge k=3 as a lowering (issue 22) counted fewer on cortex-a76 for both; k=9 and the batched MatMul more.
INT8_CANDIDATES = ("dwconv", "dwconv-nhwc", "dwconv-merge3", "dwconv-nhwc-merge3")
NOT_COUNTED = "ExecuTorch has no instruction counts on arm64-emulated (no aarch64 executor_runner): the host's choice"
# Instructions per inference counted 2026-12-02 on arm64-emulated (qemu 7.2 TCG plugin; aarch64 onnxruntime
# 1.32.0 and LiteRT 2.3.0), the probe (ssc-net-1-9 @ 32 px, untrained, seed 0), 1 thread; KNOWN_FEWEST is
# their minimum. Profiles without a row (neoverse-n1, max) take the host's choice.
MEASURED: dict[str, dict[tuple[str, str], dict[str, float]]] = {
    "cortex-a76": {
        ("onnx", "fp32"): {"pad-slice": 25.97e6, "dwconv-aligned": 26.59e6, "dwconv": 29.27e6},
        ("tflite", "fp32"): {"dwconv-nhwc": 32.88e6, "dwconv": 32.92e6, "pad-slice": 33.74e6},
        # the merge/bmm rows: issue 22, the same net (BatchNorms randomised, seed 0) exported u8s8 on x86
        ("onnx", "int8"): {"dwconv-nhwc": 24.88e6, "dwconv": 31.84e6, "dwconv-nhwc-merge3": 23.94e6,
                           "dwconv-nhwc-merge9": 28.78e6, "dwconv-nhwc-bmm": 29.90e6},
        ("tflite", "int8"): {"dwconv": 15.12e6, "dwconv-nhwc": 15.36e6, "dwconv-merge3": 14.18e6,
                             "dwconv-merge9": 19.02e6},
    },
    "cortex-a53": {
        ("onnx", "fp32"): {"pad-slice": 25.97e6, "dwconv-aligned": 26.61e6, "dwconv": 29.20e6},
        ("tflite", "fp32"): {"pad-slice": 37.51e6, "dwconv-nhwc": 40.47e6, "dwconv": 40.50e6},
        ("onnx", "int8"): {"dwconv-nhwc": 38.78e6, "dwconv": 45.49e6},
        ("tflite", "int8"): {"dwconv": 30.58e6, "dwconv-nhwc": 30.83e6},
    },
}
KNOWN_FEWEST: dict[str, dict[tuple[str, str], str]] = {
    profile: {key: min(counts, key=counts.get) for key, counts in rows.items()} for profile, rows in MEASURED.items()
}


def candidates(target: str, precision: str) -> tuple[str, ...]:
    """The lowerings counted for ``target`` at ``precision``."""
    from .lowering_probe import QUICK_CANDIDATES

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
    from ssc_deploy.runtimes import by_target

    from .lowering_probe import PROBE_VERSION
    from .lowerings import available_lowerings

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
    import torch

    from ssc_deploy.runtime_bench.insn_counts import count_artifacts
    from ssc_deploy.runtimes import by_target

    from .exporter import export_model
    from .lowering_probe import PROBE_IMAGES, PROBE_MODEL, PROBE_SIZE, probe_description

    start, cpu_start = time.perf_counter(), time.process_time()
    files = []
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-armprobe-") as tmp:
        for low in candidates(target, precision):
            torch.manual_seed(0)
            results = export_model(None, targets=[target], out_dir=Path(tmp) / low, model_name=PROBE_MODEL,
                                   in_size=PROBE_SIZE, lowering=low, precisions=[precision], progress=False,
                                   n_verify=PROBE_IMAGES, calib=PROBE_CALIB, int8_lowering=low)
            files.append(results[0].artifact)
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
        seconds=round(time.perf_counter() - start, 2), cpu_seconds=round(time.process_time() - cpu_start, 2),
        instructions=counts, precision=precision)


PROBE_CALIB = 16  # calibration images of the probe's int8 files (their accuracy is not what is counted)


def _figures(counts: dict[str, float]) -> str:
    return ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in sorted(counts.items(), key=lambda kv: kv[1])) \
        + " instructions/inference"
