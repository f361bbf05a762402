"""ExecuTorch's per-op profiler (the runtime table's ``profiler_module`` of executorch; ssc_deploy/op_profile.py).

An ETDump recorded by the runtime (``enable_etdump``) read back with ``executorch.devtools.Inspector``:
XNNPACK operators by their delegate names, ops left to the portable kernels as ``portable <op>``.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

from ssc_deploy.errors import SscDeployError, missing_package
from ssc_deploy.op_profile import Op, OpProfile, profiled_runs
from ssc_deploy.runtimes import by_target
from ssc_deploy.timing import median

SPEC = by_target("executorch")
RUNTIME = SPEC.runtime
_EVENT_NUMBER = re.compile(r" #\d+$")
# ETDump bookkeeping events that wrap the per-op ones.
_ET_WRAPPERS = {"Method::execute", "DELEGATE_CALL", "OPERATOR_CALL", "Method::init", "Program::load_method"}


def profile(path: Path, threads: int = 1, runs: int = 50, warmup: int = 10) -> OpProfile:
    """ETDump profile of a ``.pte``: XNNPACK operators and portable kernels, per run."""
    try:
        from executorch.devtools import Inspector
    except ImportError as err:
        raise missing_package(SPEC.dist, SPEC.extra) from err
    from ssc_deploy.quiet import quiet_native

    with tempfile.TemporaryDirectory() as tmp:
        session = profiled_runs(RUNTIME, path, threads, runs, warmup, Path(tmp))
        with quiet_native():
            inspector = Inspector(etdump_path=str(session.end_profile()))
    ops: list[Op] = []
    wall: list[float] = []
    for block in inspector.event_blocks:
        if block.name != "Execute":
            continue
        for ev in block.events:
            if ev.perf_data is None:
                continue
            raw = list(ev.perf_data.raw)[-runs:]
            if ev.name == "Method::execute":
                wall = raw
            elif ev.name not in _ET_WRAPPERS:
                op_class = _EVENT_NUMBER.sub("", ev.name) if ev.is_delegated_op else (
                    "portable " + ev.name.removeprefix("native_call_"))
                ops.append(Op(ev.name, op_class, median(raw)))
    if not wall:
        raise SscDeployError(f"{path.name}: the ETDump holds no execution events")
    return OpProfile(str(path), RUNTIME, threads, runs, median(wall), ops)
