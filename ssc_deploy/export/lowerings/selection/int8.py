"""The host's int8 lowering by measurement, and whether int8 pays at all (issue 22).

With ``--lowering fast`` (the default) on the host, each int8 file gets the int8 candidate
(the runtime table's ``int8_candidates``: lowerings that keep the int8 chain whole, with grouped 1x1 convs as
they are, group-merged or as a batched MatMul) chosen on the lowering probe's net
(:mod:`.probe`): its fp32 file at the target's fp32 ``fast`` lowering and its int8 file under
each candidate are timed side by side (1 thread, interleaved medians). The choice
(:func:`pick`): the smallest int8 file at most :data:`TARGET_RATIO` x the fp32 latency, else the
smallest within :data:`NEAR_FASTEST` x the fastest (a gain under 5 % is noise on a shared host,
bytes are not). ``pays`` records whether that int8 file is faster than the fp32 file; when it is not, the
export says so in one line with both figures and the manifest's ``quantization.int8_pays`` is false.
Measured once per CPU and runtime version and cached beside the fp32 measurement
(:mod:`.cache`, precision ``int8``).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ssc_deploy.errors import SscDeployError

from ssc_deploy.export.lowerings.selection import cache as lowering_cache
from ssc_deploy.export.lowerings.selection.cache import Measurement

TARGET_RATIO = 0.80  # issue 22: an int8 file should take at most 0.80x its fp32 file's time
NEAR_FASTEST = 1.05  # when none is fast enough: candidates this close to the fastest count as tied
FP32 = "fp32:"  # medians_ms key prefix of the fp32 file the candidates were timed against
SIZE = "bytes:"  # medians_ms key prefix of each candidate's int8 file size (bytes, not ms)
# Distinct from the fp32 probe's PROBE_VERSION so their cache keys differ; bump when a candidate or the default
# int8 scheme changes (1002: u8s8-rr on x86 without VNNI).
INT8_PROBE_VERSION = 1002


@dataclass(frozen=True)
class Int8Pick:
    """The int8 lowering of one target and the figures it was chosen on."""

    lowering: str
    int8_ms: float
    fp32_ms: float
    fp32_lowering: str
    int8_bytes: int

    @property
    def ratio(self) -> float:
        return self.int8_ms / self.fp32_ms

    @property
    def pays(self) -> bool:
        """Whether the int8 file is faster than the fp32 file on the probe."""
        return self.int8_ms < self.fp32_ms

    def facts(self, probe: str) -> dict:
        """The manifest's ``quantization.int8_pays``."""
        return {"pays": self.pays, "int8_ms": self.int8_ms, "fp32_ms": self.fp32_ms, "ratio": round(self.ratio, 3),
                "fp32_lowering": self.fp32_lowering, "probe": probe}

    def line(self, target: str) -> str:
        """The one line an export prints when int8 does not pay."""
        return (f"{target}: int8 does not pay here: the chosen int8 candidate ({self.lowering}) takes "
                f"{self.int8_ms:.3f} ms against {self.fp32_ms:.3f} ms for fp32 ({self.fp32_lowering}) on the "
                f"probe ({self.ratio:.2f}x); use the fp32 file on this CPU")


def pick(m: Measurement) -> Int8Pick:
    """The choice rule of the module docstring applied to a measurement."""
    fp32_low, fp32_ms = next((k[len(FP32):], v) for k, v in m.medians_ms.items() if k.startswith(FP32))
    times = _int8_times(m)
    sizes = {k: int(m.medians_ms.get(SIZE + k, 0)) for k in times}
    fast_enough = [k for k in times if times[k] <= TARGET_RATIO * fp32_ms]
    if not fast_enough:
        fastest = min(times.values())
        fast_enough = [k for k in times if times[k] <= NEAR_FASTEST * fastest]
    best = min(fast_enough, key=lambda k: (sizes[k], times[k]))
    return Int8Pick(best, times[best], fp32_ms, fp32_low, sizes[best])


def cached_pick(target: str, measure: bool, fp32_lowering: str) -> tuple[Int8Pick, str] | None:
    """(pick, reason) for ``target`` on this CPU: the cached measurement, else measured now when ``measure``
    (and cached; the fp32 file at ``fp32_lowering``); None when neither (the caller falls back to the table)."""
    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.runtimes import by_target

    from ssc_deploy.export.lowerings import available_lowerings
    from ssc_deploy.export.targets import TARGETS

    cpu = cpu_features()
    spec = by_target(target)
    key = lowering_cache.cache_key(spec.runtime, TARGETS[target].runtime_version(), cpu, INT8_PROBE_VERSION)
    hit = lowering_cache.lookup(key)
    if hit is not None and hit.best in available_lowerings() and any(k.startswith(FP32) for k in hit.medians_ms):
        chosen = pick(hit)
        return chosen, _reason(chosen, hit, f"measured on this CPU ({cpu.isa}) {hit.measured[:10]}",
                               f"cache {lowering_cache.cache_path()}")
    if not measure:
        return None
    result = measure_int8(target, fp32_lowering)
    path = lowering_cache.store(key, result)
    chosen = pick(result)
    where = f"cached in {path}" if path is not None else "the cache could not be written"
    return chosen, _reason(chosen, result, f"measured on this CPU ({cpu.isa}) now, {result.seconds:.0f} s", where)


def _int8_times(m: Measurement) -> dict[str, float]:
    """The int8 candidates' medians of ``m`` (no fp32 or size entries)."""
    return {k: v for k, v in m.medians_ms.items() if ":" not in k}


def _reason(chosen: Int8Pick, m: Measurement, when: str, where: str) -> str:
    int8 = _int8_times(m)
    times = ", ".join(f"{k} {v:.3f}" for k, v in sorted(int8.items(), key=lambda kv: kv[1]))
    rule = (f"the smallest within {TARGET_RATIO:.2f}x fp32" if chosen.ratio <= TARGET_RATIO
            else f"none within {TARGET_RATIO:.2f}x fp32: the fastest" if chosen.int8_ms <= min(int8.values())
            else f"none within {TARGET_RATIO:.2f}x fp32: the smallest within {NEAR_FASTEST:.2f}x the fastest")
    return (f"int8: {rule}, {when}: int8 {times} ms vs fp32 ({chosen.fp32_lowering}) {chosen.fp32_ms:.3f} ms "
            f"on {m.probe} ({where})")


def measure_int8(target: str, fp32_lowering: str) -> Measurement:
    """Export the probe net's fp32 file and one int8 file per candidate of ``target``, time them side by
    side (the fp32 file at ``fp32_lowering``); raises SscDeployError when no int8 candidate exports."""
    import numpy as np

    from ssc_deploy.cpu_features import cpu_features
    from ssc_deploy.runtimes import by_target
    from ssc_deploy.sessions import load_runner
    from ssc_deploy.timing import medians, time_interleaved

    from ssc_deploy.export.lowerings.selection.arm import cpu_seconds, probe_files
    from ssc_deploy.export.lowerings.selection.probe import PROBE_ROUNDS, _load, probe_description
    from ssc_deploy.export.targets import TARGETS

    start, cpu_start = time.perf_counter(), cpu_seconds()
    spec = by_target(target)
    with tempfile.TemporaryDirectory(prefix="ssc-deploy-int8probe-") as tmp:
        # exported in a child process (the exporter imports this choice: see arm_probe_worker)
        (fp32_file,) = probe_files(target, "fp32", Path(tmp) / "fp32", (fp32_lowering,))
        candidates = spec.int8_candidates
        int8_files = probe_files(target, "int8", Path(tmp) / "int8", candidates, strict=True, keep_going=True)
        # a candidate whose int8 chain breaks on this runtime is not timed
        files: dict[str, Path] = {FP32 + fp32_lowering: fp32_file,
                                  **{low: f for low, f in zip(candidates, int8_files) if f is not None}}
        if len(files) < 2:
            raise SscDeployError(f"no int8 candidate of {target} exported on the probe")
        sessions = {low: load_runner(spec.runtime, path, 1) for low, path in files.items()}
        shape = next(iter(sessions.values())).input_shape  # the files' own input layout (NHWC on LiteRT)
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        ms = medians(time_interleaved(sessions, x, rounds=PROBE_ROUNDS))
        sizes = {SIZE + low: float(path.stat().st_size) for low, path in files.items() if not low.startswith(FP32)}
    figures = {low: round(v, 4) for low, v in ms.items()}
    int8_only = {k: v for k, v in figures.items() if not k.startswith(FP32)}
    cpu = cpu_features()
    return Measurement(
        runtime=spec.runtime, runtime_version=TARGETS[target].runtime_version(), best=min(int8_only, key=int8_only.get),
        medians_ms={**figures, **sizes}, probe=probe_description(), cpu=cpu.model, isa=cpu.isa,
        vector_flags=list(cpu.vector_flags), measured=lowering_cache.now_utc(),
        seconds=round(time.perf_counter() - start, 2), cpu_seconds=round(cpu_seconds() - cpu_start, 2),
        load_average=_load(), precision="int8")
