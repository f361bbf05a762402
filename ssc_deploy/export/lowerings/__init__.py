"""Lowerings of ``Shift`` (and ``ChannelShuffle``) to plain graph ops.

Each lowering lives in its own module and registers itself with :func:`register_lowering`;
add one import line below for a new module.
"""

from ssc_deploy.export.lowerings.registry import LoweringEntry, apply_lowering, available_lowerings, get_lowering, register_lowering

from ssc_deploy.export.lowerings import pad_slice  # noqa: F401,E402
from ssc_deploy.export.lowerings import fused  # noqa: F401,E402
from ssc_deploy.export.lowerings import batched_matmul  # noqa: F401,E402
from ssc_deploy.export.lowerings import merged  # noqa: F401,E402

DEFAULT_LOWERING = "pad-slice"

__all__ = [
    "DEFAULT_LOWERING",
    "LoweringEntry",
    "apply_lowering",
    "available_lowerings",
    "get_lowering",
    "register_lowering",
]
