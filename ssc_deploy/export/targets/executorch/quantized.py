"""ExecuTorch int8: PT2E static quantization with XNNPACK's quantizer, the whole graph lowered into XNNPACK.

``torch.export`` -> ``prepare_pt2e`` (int8 activations per tensor, int8 weights per channel,
symmetric) -> calibration, one image per call -> ``convert_pt2e`` -> ``to_edge_transform_and_lower``
with the XNNPACK partitioner. The int8 chain is then checked twice: every edge op, quantize and
dequantize included, must sit inside an XNNPACK delegate (the Python runtime may not carry the
portable quantized kernels), and the ``.pte`` must load once in ExecuTorch's runtime, since
XNNPACK compiles its subgraphs at load time and rejects there what it cannot run (a pad whose
input and output quantization differ).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Sequence

import torch
from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
    XNNPACKQuantizer,
    get_symmetric_quantization_config,
)
from torch import nn

from ssc_deploy.errors import SscDeployError, one_line

from ssc_deploy.export.targets.common import TargetExport, version_of
from ssc_deploy.export.targets.executorch.options import ExecutorchOptions
from ssc_deploy.export.targets.executorch.target import SPEC, delegation_summary, program_info
from ssc_deploy.export.quantize.layers import check_keep_float

SCHEME = "s8s8"  # XNNPACK's quantizer: signed int8 activations (with zero point), signed int8 weights
# Ops XNNPACK runs in int8 only when input and output share one quantization; the stock quantizer
# propagates shared qparams through views, slices and pools but leaves these out.
PAD_OPS = (torch.ops.aten.pad.default, torch.ops.aten.constant_pad_nd.default)
# Edge op names as the delegation summary gives them.
QUANTIZE_OPS = ("quantized_decomposed_quantize_per_tensor", "quantized_decomposed_quantize_per_channel")
DEQUANTIZE_OPS = ("quantized_decomposed_dequantize_per_tensor", "quantized_decomposed_dequantize_per_channel")

# ExecuTorch 1.5.1: SSC-Net-1-9 with per-tensor grouped convs was 382760 bytes against 267688 per-channel,
# about 4 more bytes per grouped-conv weight (as if XNNPACK kept those weights in float32), so its weights
# stay per channel (read by quantize/prepare.py).
PER_CHANNEL_ONLY = ("per-tensor conv weights made the .pte larger (382760 vs 267688 bytes measured), so its int8 "
                    "weights stay per-channel")


class PadSharingQuantizer(XNNPACKQuantizer):
    """``XNNPACKQuantizer`` whose shared-qparams propagation also covers ``pad``/``constant_pad_nd``.

    Without it a pad's output takes the next op's qparams and XNNPACK refuses the ``.pte`` at
    load ("Failed to create StaticConstantPad node"); sharing its input's qparams keeps the
    pad exact in int8 (its zero is the zero point). Layers named in :meth:`keep_float` are
    left unannotated, so they stay float32 (still inside XNNPACK).
    """

    # The conv+BatchNorm patterns are for QAT: the deployment net has its BatchNorms folded, and
    # matching them traces a dozen pattern graphs per export (half of a small net's export time).
    SUPPORTED_PATTERNS = [p for p in XNNPACKQuantizer.SUPPORTED_PATTERNS if "_bn" not in p.name]

    def keep_float(self, names: Sequence[str]) -> PadSharingQuantizer:
        """Leave the modules ``names`` (exact module names of the exported net) in float32."""
        for name in names:
            # set_module_name asserts a config; None is what _annotate_for_quantization_config
            # reads as "annotate nothing in this module, and keep the global config out".
            self.module_name_config[name] = None
        return self

    def annotate(self, model: torch.fx.GraphModule) -> torch.fx.GraphModule:
        """The stock pattern annotation, then qparams shared forward through layout ops and pads."""
        from executorch.backends.xnnpack.quantizer import xnnpack_quantizer_utils as utils
        from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, SharedQuantizationSpec

        model = self._annotate_for_quantization_config(model)
        key = utils.Q_ANNOTATION_KEY
        for node in model.graph.nodes:  # topological: a pad's sharing reaches the slices after it
            if node.op != "call_function" or not (utils._is_share_obs_or_fq_op(node.target) or node.target in PAD_OPS):
                continue
            prev = node.args[0]
            ann = prev.meta.get(key) if isinstance(prev, torch.fx.Node) else None
            if not ann or not ann.output_qspec or (key in node.meta and node.meta[key]._annotated):
                continue
            shared = SharedQuantizationSpec(prev)
            node.meta[key] = QuantizationAnnotation(input_qspec_map={prev: shared}, output_qspec=shared,
                                                    _annotated=True)
        return model


def quantizer(keep_float: Sequence[str] = ()) -> PadSharingQuantizer:
    """The quantizer ssc-deploy uses: per-channel symmetric int8 weights, int8 activations per tensor."""
    config = get_symmetric_quantization_config(is_per_channel=True)
    return PadSharingQuantizer().set_global(config).keep_float(keep_float)


def quantize(net: nn.Module, example: torch.Tensor, calib: torch.Tensor,
             using: XNNPACKQuantizer | None = None) -> torch.export.ExportedProgram:
    """``net`` quantized by PT2E (``using`` a quantizer, default :func:`quantizer`) and calibrated on
    ``calib``, one image per call (the graph is batch 1)."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    captured = torch.export.export(net, (example,), strict=False).module()
    prepared = prepare_pt2e(captured, using or quantizer())
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(calib[i : i + 1])
    return torch.export.export(convert_pt2e(prepared), (example,), strict=False)


def _count(by_op: dict, names: Sequence[str]) -> int:
    return sum(v["delegated"] + v["not_delegated"] for op, v in by_op.items() if op.startswith(names))


def chain_facts(delegation: dict) -> dict:
    """Counts of the int8 chain in a delegation summary: q/dq nodes, subgraphs, ops left outside XNNPACK."""
    by_op = delegation["by_op"]
    return {
        "quantize_nodes": _count(by_op, QUANTIZE_OPS),
        "dequantize_nodes": _count(by_op, DEQUANTIZE_OPS),
        "delegated_subgraphs": delegation["delegated_subgraphs"],
        "delegated_nodes": delegation["delegated_nodes"],
        "not_delegated": dict(delegation["not_delegated"]),
    }


def check_loads(path: Path, example: torch.Tensor) -> None:
    """Load ``path`` in ExecuTorch's runtime (XNNPACK compiles its delegates here) and run ``example``."""
    from ssc_deploy.sessions import load_runner

    try:
        session = load_runner(SPEC.runtime, path)
        session(example.numpy())
    except RuntimeError as err:
        first = one_line(err)
        raise SscDeployError(
            f"executorch: the int8 program does not load in ExecuTorch's runtime ({first}): XNNPACK "
            "refused a quantized subgraph at compile time (SSC_DEPLOY_DEBUG=1 shows its log); "
            "no artifact was written") from None


def lower_checked(program: torch.export.ExportedProgram, example: torch.Tensor, path: Path,
                  strict: bool = False) -> tuple[dict, list[str]]:
    """Lower the quantized ``program`` into XNNPACK and write the ``.pte`` at ``path`` once its int8
    chain is checked (every op delegated: else a warning, the error with ``strict``; and it loads).

    Returns the delegation summary and the warnings; nothing is written at ``path`` on failure.
    """
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
    delegation = delegation_summary(edge.exported_program().graph_module)
    warnings = []
    if delegation["not_delegated"]:
        msg = ("the int8 chain leaves XNNPACK at: "
               + ", ".join(f"{op} x{n}" for op, n in sorted(delegation["not_delegated"].items()))
               + " (these run on portable kernels, if the runtime has them)")
        if strict:
            raise SscDeployError(f"executorch: {msg} (--strict); no artifact was written")
        warnings.append(msg)
    buffer = edge.to_executorch().buffer
    with tempfile.TemporaryDirectory(prefix="ssc-et-int8-") as tmp:
        staged = Path(tmp) / Path(path).name
        staged.write_bytes(buffer)
        check_loads(staged, example)
        shutil.move(staged, path)
    return delegation, warnings


def export_int8(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, path: Path,
                options: ExecutorchOptions | None = None, *, keep_float: Sequence[str] = (),
                metadata: dict | None = None) -> TargetExport:
    """Quantize the deployment ``net`` (calibrated on ``calib``), lower it into XNNPACK, write the ``.pte``.

    Float32 input and output, NCHW (``metadata`` is not stored in a ``.pte``, as for the fp32
    target). ``keep_float`` names layers to leave in float32. An op left outside XNNPACK is a
    warning, or the one-line error with ``options.strict``; a program XNNPACK refuses at load is
    always the one-line error. Nothing is written at ``path`` on failure.
    """
    strict = (options or ExecutorchOptions()).strict
    keep = check_keep_float(net, keep_float)
    if len(calib) < 1:
        raise SscDeployError("executorch: int8 needs at least one calibration image")
    program = quantize(net, example, calib, quantizer(keep))
    delegation, warnings = lower_checked(program, example, path, strict)
    return program_info(
        example, delegation, warnings,
        exporter={"torch": torch.__version__, "executorch": version_of(SPEC.dist), "torchao": version_of("torchao"),
                  "partitioner": "XnnpackPartitioner", "quantizer": "XNNPACKQuantizer (PT2E, pads share qparams)"},
        quantization={
            "scheme": SCHEME,
            "weights": "int8 per-channel (symmetric)",
            "activations": "int8 per-tensor",
            "io": "float32",
            "keep_float": keep,
            "calibration_calls": len(calib),
            **chain_facts(delegation),
            "loads": True,
        },
    )
