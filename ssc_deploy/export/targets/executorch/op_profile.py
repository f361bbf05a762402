"""ExecuTorch's per-op profiler (the runtime table's ``profiler_module`` of executorch; ssc_deploy/op_profile.py).

An ETDump recorded by the runtime (``enable_etdump``) read back with ``executorch.devtools.Inspector``:
XNNPACK operators by their delegate names, ops left to the portable kernels as ``portable <op>``.
"""

from __future__ import annotations

import re

from ssc_deploy.errors import SscDeployError
from ssc_deploy.op_profile import Op
from ssc_deploy.sessions import Session
from ssc_deploy.timing import median

_EVENT_NUMBER = re.compile(r" #\d+$")
# ETDump bookkeeping events that wrap the per-op ones.
_ET_WRAPPERS = {"Method::execute", "DELEGATE_CALL", "OPERATOR_CALL", "Method::init", "Program::load_method"}


def read(session: Session, runs: int) -> tuple[list[float], list[Op]]:
    """The last ``runs`` runs' wall times (ms) and ops of a profiled ``.pte`` session, from its ETDump:
    XNNPACK operators and portable kernels, each with its median time a run."""
    from executorch.devtools import Inspector

    from ssc_deploy.quiet import quiet_native

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
        raise SscDeployError(f"{session.path.name}: the ETDump holds no execution events")
    return wall, ops
