"""The quick per-machine lowering measurement behind the default ``--lowering fast``.

A small SSC net (:data:`PROBE_MODEL`: one SSC module a stage, so every stage width and both
strides are there) is exported with each of a few candidate lowerings (:data:`QUICK_CANDIDATES`)
to one runtime, checked for parity on a few real images and timed interleaved at 1 thread
(:func:`ssc_deploy.export.lowerings.selection.autotune.autotune`, the same search as ``--lowering auto`` on a small
net with few candidates). Bump :data:`PROBE_VERSION` when the probe or a lowering changes, so
cached results are measured again.
"""

from __future__ import annotations

import os
import time

from ssc_deploy.cpu_features import cpu_features
from ssc_deploy.runtimes import RUNTIME_TABLE, by_target

from ssc_deploy.export.lowerings.selection.cache import Measurement, now_utc

PROBE_VERSION = 1
PROBE_MODEL = "ssc-net-1-9"
PROBE_SIZE = 32
PROBE_IMAGES = 4
PROBE_ROUNDS = 15
# Per target: the fp32 lowerings that won somewhere (benchmarks/RESULTS.md, issue 15) and pad-slice
# (the runtime table's probe_lowerings).
QUICK_CANDIDATES: dict[str, tuple[str, ...]] = {spec.target: spec.probe_lowerings for spec in RUNTIME_TABLE}


def probe_description() -> str:
    """What the probe times, as the cache and the manifests name it."""
    return f"{PROBE_MODEL} @ {PROBE_SIZE} px, 1 thread"


def measure(target: str) -> Measurement:
    """Time :data:`QUICK_CANDIDATES` of ``target`` on the probe net here; raises SscDeployError when none passes."""
    import torch

    from ssc_deploy.data import DEFAULT_DATA, DEFAULT_MEAN, DEFAULT_STD, eval_batch
    from ssc_deploy.models import create_model

    from ssc_deploy.export.lowerings.selection.autotune import autotune
    from ssc_deploy.export.targets import TARGETS

    start, cpu_start = time.perf_counter(), time.process_time()
    torch.manual_seed(0)
    net = create_model(PROBE_MODEL, in_size=PROBE_SIZE).eval()
    images, _ = eval_batch(DEFAULT_DATA, PROBE_IMAGES, DEFAULT_MEAN, DEFAULT_STD, PROBE_SIZE)
    result = autotune(net, target, images, candidates=QUICK_CANDIDATES[target], threads=1, rounds=PROBE_ROUNDS)
    cpu = cpu_features()
    return Measurement(
        runtime=by_target(target).runtime, runtime_version=TARGETS[target].runtime_version(), best=result.best,
        medians_ms={c.lowering: round(c.median_ms, 4) for c in result.candidates if c.median_ms is not None},
        probe=probe_description(), cpu=cpu.model, isa=cpu.isa, vector_flags=list(cpu.vector_flags),
        measured=now_utc(), seconds=round(time.perf_counter() - start, 2),
        cpu_seconds=round(time.process_time() - cpu_start, 2), load_average=_load())


def _load() -> float | None:
    """The 1-minute load average, where the OS has one."""
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
