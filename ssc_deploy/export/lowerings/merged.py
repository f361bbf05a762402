"""int8 candidate lowerings with their grouped 1x1 convs group-merged (exact; issue 22).

``dwconv-merge3``, ``dwconv-nhwc-merge9``, ...: the ``dwconv`` / ``dwconv-nhwc`` lowering, then
every ``k`` neighbouring groups of each grouped 1x1 conv as one block-diagonal group
(:func:`~.group_merge.merge_grouped_convs`). As lowerings they can be measured and chosen like any
other (:mod:`ssc_deploy.export.lowerings.selection.int8`) without an export option; ``--group-merge`` stays
for a merge asked by hand. k = 9 makes SSC-Nets' 9-group layers dense: on this AMX host XNNPACK's
int8 tiles are 64 outputs wide and a 9-output group fills 9/64 of one.
"""

from __future__ import annotations

from torch import nn

from ssc_deploy.export.lowerings.fused import pipeline
from ssc_deploy.export.lowerings.group_merge import merge_grouped_convs, parse_spec
from ssc_deploy.export.lowerings.registry import register_lowering
from ssc_deploy.runtimes import meant_for

MERGE_KS = (3, 9)


def with_group_merge(shift: str, k: int, shuffle: str = "reshape"):
    """The fused ``pipeline(shift, shuffle=shuffle)`` lowering, then every grouped 1x1 conv merged by ``k``."""
    base = pipeline(shift, shuffle=shuffle)
    spec = parse_spec(k)

    def run(model: nn.Module) -> nn.Module:
        net = base(model)
        merge_grouped_convs(net, spec)
        return net

    return run


for _k in MERGE_KS:
    register_lowering(
        f"dwconv-merge{_k}",
        f"as dwconv, and every {_k} neighbouring groups of each grouped 1x1 conv as one (block-diagonal; int8 candidate)",
    )(with_group_merge("depthwise", _k))
    register_lowering(
        f"dwconv-nhwc-merge{_k}",
        f"as dwconv-nhwc, and every {_k} neighbouring groups of each grouped 1x1 conv as one (int8 candidate)",
        runtimes=meant_for(f"dwconv-nhwc-merge{_k}"),
    )(with_group_merge("depthwise", _k, shuffle="channel-last"))
