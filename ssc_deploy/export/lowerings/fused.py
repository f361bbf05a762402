"""Lowerings that spend run time on arithmetic instead of data movement (issue 6).

All are exact rewrites of the BN-folded eval net into standard ops (Conv, Pad, Slice,
Concat, Reshape, Transpose, Relu, Add); they differ in how each ``Shift`` and
``ChannelShuffle`` is paid for:

- ``dwconv``: each shift is a depthwise 3x3 conv with one-hot kernels (fastest on ExecuTorch);
- ``dwconv-nhwc``: as ``dwconv`` with each shuffle written channel-last, so LiteRT keeps one
  transpose per shuffle instead of three (fastest on LiteRT);
- ``dwconv-aligned``: depthwise only where onnxruntime's NCHWc path takes it (channels a
  multiple of 4), pad + slice elsewhere (fastest on onnxruntime);
- ``shift-conv``: each shift folded into the grouped 1x1 conv after it, giving one grouped
  3x3 conv with one-hot masked kernels (9x that conv's MACs; slower everywhere measured);
- ``*-foldshuffle``: each channel shuffle folded into the next conv's input channels (that
  conv becomes dense: 9x its MACs, one memory pass less; slower everywhere measured);
- all of them first merge chains of linear convs (conv -> [shuffle] -> 1x1 conv, no ReLU
  between) when the merged conv costs no more MACs. In SSC-Nets every conv but the module's
  last is followed by ReLU and the last feeds the residual add, so no such chain exists there.

Which one is fastest depends on the runtime; ``--lowering auto`` measures
(``ssc_deploy/export/lowerings/selection/autotune.py``), and ``benchmarks/RESULTS.md`` has the numbers.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ssc_deploy.runtimes import meant_for

from ssc_deploy.export.lowerings import graph_passes as gp
from ssc_deploy.export.lowerings.registry import register_lowering


def pipeline(
    shift: str, shuffle_mac_ratio: float = 1.0, shuffle: str = "reshape"
) -> Callable[[nn.Module], nn.Module]:
    """A lowering: merge linear 1x1 chains, lower shifts by ``shift`` ('conv', 'depthwise',
    'depthwise-aligned': depthwise where the channels are a multiple of 4, else pad-slice;
    'pad-slice'), fold shuffles costing at most ``shuffle_mac_ratio`` x the conv, and lower the
    rest by ``shuffle`` ('reshape': NCHW reshape/transpose, 'channel-last': NHWC one)."""

    def run(model: nn.Module) -> nn.Module:
        name = getattr(model, "model_name", None)
        gm = gp.drop_identities(gp.trace(model))
        gm = gp.merge_pointwise(gm)
        if shift == "conv":
            gm = gp.fuse_shift_into_conv(gm)
        elif shift == "depthwise":
            gm = gp.shifts_to_depthwise(gm)
        elif shift == "depthwise-aligned":
            gm = gp.shifts_to_depthwise(gm, _ORT_CHANNEL_ALIGNMENT)
        gm = gp.shifts_to_pad_slice(gm)
        gm = gp.fold_shuffles(gm, shuffle_mac_ratio)
        gm = gp.shuffles_to_channel_last(gm) if shuffle == "channel-last" else gp.shuffles_to_reshape(gm)
        if name is not None:
            gm.model_name = name
        return gm.eval()

    return run


# onnxruntime's x86 NCHWc layout transformer takes a depthwise conv only when its channels are a
# multiple of 4; other depthwise convs run a slow generic path (measured, see benchmarks/RESULTS.md).
_ORT_CHANNEL_ALIGNMENT = 4
# A shuffle folded into a C-group conv makes it dense: C = 9 times its MACs.
_FOLD_ALL = 9.0

register_lowering(
    "shift-conv",
    "shift + grouped 1x1 as one grouped 3x3 conv with one-hot kernels; shuffles as reshape/transpose"
    " (slower on all three runtimes here; auto skips it)",
)(pipeline("conv"))
register_lowering(
    "shift-conv-foldshuffle",
    "as shift-conv, and each shuffle folded into the next conv's weights (that conv becomes dense)"
    " (slower on all three runtimes here; auto skips it)",
)(pipeline("conv", _FOLD_ALL))
register_lowering(
    "dwconv",
    "each shift as a depthwise 3x3 conv with one-hot kernels; shuffles as reshape/transpose",
)(pipeline("depthwise"))
register_lowering(
    "dwconv-foldshuffle",
    "as dwconv, and each shuffle folded into the next conv's weights (that conv becomes dense)"
    " (slower on all three runtimes here; auto skips it)",
)(pipeline("depthwise", _FOLD_ALL))
register_lowering(
    "pad-slice-foldshuffle",
    "pad + slices per direction, and each shuffle folded into the next conv's weights"
    " (slower on all three runtimes here; auto skips it)",
)(pipeline("pad-slice", _FOLD_ALL))
register_lowering(
    "dwconv-nhwc",
    "as dwconv, with each shuffle done in channel-last order (LiteRT cancels the permutes against its "
    "own NHWC transposes; onnxruntime's int8 U8S8 path gains only with it; on ExecuTorch the 5-D "
    "permute falls back to a portable kernel)",
    runtimes=meant_for("dwconv-nhwc"),
)(pipeline("depthwise", shuffle="channel-last"))
register_lowering(
    "dwconv-aligned",
    "shifts over a multiple of 4 channels as depthwise 3x3 convs (onnxruntime's NCHWc path takes them), "
    "the others as pad + slices",
    runtimes=meant_for("dwconv-aligned"),
)(pipeline("depthwise-aligned"))
