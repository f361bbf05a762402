"""Which lowering each export target gets, and why (the manifest's ``model.lowering_reason``).

``--lowering`` takes a lowering's name, or one of:

- ``fast`` (the default): per target, the lowering measured fastest for that runtime on this
  machine. Measured once (:mod:`ssc_deploy.export.lowerings.selection.probe`: a small SSC net, a few
  candidates, interleaved medians) and cached under the user cache
  (:mod:`ssc_deploy.export.lowerings.selection.cache`, keyed by CPU model, vector flags and runtime
  version); later exports read the cache. With ``SSC_DEPLOY_MEASURE_LOWERINGS=0``, or when the
  measurement fails, the known fastest for this CPU's vector ISA (:data:`KNOWN_FASTEST`) is used.
- ``fast-table``: the known fastest for this vector ISA, never measured (a cached measurement
  is not read either).
- with ``export --for arm64-emulated[:PROFILE]``, ``fast``/``fast-table`` pick per target and
  precision the fewest ARM instructions on that CPU profile instead (:func:`arm_choice`).
- ``auto``: the full measured search on the exported net itself (:mod:`ssc_deploy.export.lowerings.selection.autotune`).

A net without ``Shift`` layers gets the default lowering whatever ``fast`` would say: its
lowering only writes out shuffles, and nothing is measured for it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass

from ssc_deploy.cpu_features import CpuFeatures, cpu_features
from ssc_deploy.errors import SscDeployError, raise_if_stopped
from ssc_deploy.runtimes import RUNTIME_TABLE, by_target

from ssc_deploy.export.lowerings.selection import cache as lowering_cache
from ssc_deploy.export.lowerings.selection.autotune import AUTO

FAST = "fast"
FAST_TABLE = "fast-table"
CHOSEN_HERE = (FAST, FAST_TABLE, AUTO)  # --lowering values that are not lowering names
INT8_REASON = "int8: the runtime table's int8_lowering, which keeps the int8 chain whole on this runtime"
MEASURE_ENV = "SSC_DEPLOY_MEASURE_LOWERINGS"  # "0": never measure, use KNOWN_FASTEST

# The fastest fp32 lowering per vector ISA class and target, where one was measured: avx512 from
# benchmarks/RESULTS.md (the runtime table's fastest_lowering), other classes from its isa_fastest
# column (avx2: issue 15, an AMD EPYC). Rows and targets not measured take the runtime's default_lowering.
def _known_fastest() -> dict[str, dict[str, str]]:
    table = {"avx512": {spec.target: spec.fastest_lowering for spec in RUNTIME_TABLE}}
    for spec in RUNTIME_TABLE:
        for isa, lowering in spec.isa_fastest:
            table.setdefault(isa, {})[spec.target] = lowering
    return table


KNOWN_FASTEST: dict[str, dict[str, str]] = _known_fastest()


@dataclass(frozen=True)
class LoweringChoice:
    """One target's lowering and the reason it got it."""

    lowering: str
    reason: str
    int8_pays: dict | None = None  # int8 files chosen by measurement: the manifest's quantization.int8_pays
    note: str | None = None  # one line the export prints (int8: when it does not pay)


def measuring_enabled() -> bool:
    """False when ``$SSC_DEPLOY_MEASURE_LOWERINGS`` is ``0`` (or ``no``/``false``/``off``)."""
    return os.environ.get(MEASURE_ENV, "1").strip().lower() not in ("0", "no", "false", "off")


def has_shifts(model) -> bool:
    """Whether ``model`` has a ``Shift`` layer (only then does the lowering change its speed)."""
    from ssc_deploy.models.layers import Shift

    return any(isinstance(m, Shift) for m in model.modules())


def known_fastest(target: str, cpu: CpuFeatures | None = None) -> LoweringChoice:
    """The table's lowering for ``target`` on this CPU's vector ISA class (never measured here)."""
    cpu = cpu or cpu_features()
    known = KNOWN_FASTEST.get(cpu.isa, {}).get(target)
    if known is not None:
        return LoweringChoice(known, f"known fastest for {cpu.isa} (table, not measured on this CPU)")
    return LoweringChoice(by_target(target).default_lowering,
                          f"the default: no known fastest for {target} on {cpu.isa} (not measured on this CPU)")


def cached_or_known(target: str) -> LoweringChoice:
    """This machine's cached measurement for ``target`` when there is one, else :func:`known_fastest`;
    never measures (for callers with a time budget, such as the quickstart)."""
    return _fast(target, measure=False)


def fast_lowering(target: str) -> LoweringChoice:
    """The ``fast`` choice for ``target``: cached measurement, else measured now (and cached) when
    :func:`measuring_enabled`, else :func:`known_fastest`."""
    return _fast(target, measure=measuring_enabled())


def _fast(target: str, measure: bool) -> LoweringChoice:
    from ssc_deploy.export.lowerings import available_lowerings
    from ssc_deploy.export.lowerings.selection.probe import PROBE_VERSION
    from ssc_deploy.export.targets import TARGETS

    cpu = cpu_features()
    spec = by_target(target)
    key = lowering_cache.cache_key(spec.runtime, TARGETS[target].runtime_version(), cpu, PROBE_VERSION)
    hit = lowering_cache.lookup(key)
    if hit is not None and hit.best in available_lowerings():
        return LoweringChoice(hit.best, f"measured on this CPU ({cpu.isa}) {hit.measured[:10]}: "
                                        f"{_medians(hit)} (cache {lowering_cache.cache_path()})")
    if not measure:
        return known_fastest(target, cpu)
    from ssc_deploy.export.lowerings.selection.probe import measure as measure_now

    try:
        result = measure_now(target)
    except SscDeployError as err:
        fallback = known_fastest(target, cpu)
        return LoweringChoice(fallback.lowering, f"{fallback.reason}; measuring failed: {err}")
    raise_if_stopped()  # an interrupted measurement is not cached
    path = lowering_cache.store(key, result)
    where = f"cached in {path}" if path is not None else "the cache could not be written"
    return LoweringChoice(result.best, f"measured on this CPU ({cpu.isa}) now, {result.seconds:.0f} s: "
                                       f"{_medians(result)} ({where})")


def _medians(m: lowering_cache.Measurement) -> str:
    times = ", ".join(f"{k} {v:.2f}" for k, v in sorted(m.medians_ms.items(), key=lambda kv: kv[1]))
    return f"{times} ms on {m.probe}"


def arm_choice(target: str, precision: str, lowering: str, profile: str) -> LoweringChoice:
    """The ``fast``/``fast-table`` choice of ``target``'s ``precision`` files for emulated ARM ``profile``
    (:mod:`ssc_deploy.export.lowerings.selection.arm`); a runtime not counted there keeps the host's choice."""
    from ssc_deploy.export.lowerings.selection import arm as arm_lowering

    def host(why: str) -> LoweringChoice:
        chosen = (LoweringChoice(by_target(target).int8_lowering, "the runtime table's int8_lowering")
                  if precision != "fp32" else fast_lowering(target) if lowering == FAST else known_fastest(target))
        return LoweringChoice(chosen.lowering, f"for arm64-emulated:{profile}: {why}: {chosen.reason}")

    if target not in arm_lowering.COUNTED_TARGETS:
        return host(arm_lowering.not_counted(target))
    if lowering == FAST and measuring_enabled():
        low, reason = arm_lowering.fewest_instructions(target, precision, profile)
        return LoweringChoice(low, f"for arm64-emulated:{profile}: {reason}")
    off = f"{MEASURE_ENV}=0" if lowering == FAST else "--lowering fast-table"
    known = arm_lowering.known_fewest(target, precision, profile)
    if known is None:
        return host(f"no counts for {target} {precision} on {profile} in the table ({off}): the host's choice")
    return LoweringChoice(known[0], f"for arm64-emulated:{profile}: {known[1]} ({off})")


def int8_choice(target: str, lowering: str, profile: str | None, given: str | None = None) -> LoweringChoice:
    """The lowering of ``target``'s int8 file: ``given``; else for an ARM ``profile`` with ``fast``/``fast-table``
    the fewest-instructions int8 candidate; else with ``fast`` the host's measured int8 candidate
    (:mod:`ssc_deploy.export.lowerings.selection.int8`, cached or measured now when measuring is on); else the
    runtime table's ``int8_lowering``."""
    if given is not None:
        return LoweringChoice(given, "int8: given by name")
    if profile is not None and lowering in (FAST, FAST_TABLE):
        return arm_choice(target, "int8", lowering, profile)
    if lowering == FAST:
        from ssc_deploy.export.lowerings.selection.int8 import cached_pick
        from ssc_deploy.export.lowerings.selection.probe import probe_description

        try:
            found = cached_pick(target, measuring_enabled(), fast_lowering(target).lowering)
        except SscDeployError as err:
            return LoweringChoice(by_target(target).int8_lowering, f"{INT8_REASON}; measuring int8 failed: {err}")
        if found is not None:
            chosen, reason = found
            return LoweringChoice(chosen.lowering, reason, chosen.facts(probe_description()),
                                  None if chosen.pays else chosen.line(target))
    return LoweringChoice(by_target(target).int8_lowering, INT8_REASON)


def choose_lowerings(model, lowering: str, targets: Iterable[str], images, arm_profile: str | None = None,
                     **kwargs) -> dict[str, LoweringChoice]:
    """Each target's :class:`LoweringChoice` for ``--lowering`` value ``lowering``.

    ``fast``/``fast-table`` as the module docstring says (for an ARM ``arm_profile``: :func:`arm_choice`
    of the fp32 files); ``auto``: each target's
    :func:`~ssc_deploy.export.lowerings.selection.autotune.autotune` winner on ``model`` and ``images`` (``kwargs`` go
    to it); a lowering's name: that lowering for every target.
    """
    targets = list(targets)
    if lowering == AUTO:
        from ssc_deploy.export.lowerings.selection.autotune import autotune

        chosen = {}
        for t in targets:
            result = autotune(model, t, images, **kwargs)
            times = ", ".join(f"{c.lowering} {c.median_ms:.2f}" for c in result.candidates if c.median_ms is not None)
            chosen[t] = LoweringChoice(result.best, f"--lowering auto: measured on this net here ({times} ms)")
        return chosen
    if lowering in (FAST, FAST_TABLE):
        if not has_shifts(model):
            return {t: LoweringChoice(by_target(t).default_lowering, "the default: the net has no Shift layers")
                    for t in targets}
        if arm_profile is not None:
            return {t: arm_choice(t, "fp32", lowering, arm_profile) for t in targets}
        pick = fast_lowering if lowering == FAST else known_fastest
        return {t: pick(t) for t in targets}
    return {t: LoweringChoice(lowering, "given by name") for t in targets}
