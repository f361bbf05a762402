"""The per-layer int8 error table: how far each Conv2d/Linear of the int8 net strays from fp32.

The int8 net is simulated in PyTorch with the scheme the artifacts use: PT2E with XNNPACK's
quantizer (per-channel symmetric int8 weights, int8 activations per tensor, the ExecuTorch
target's :func:`~ssc_deploy.export.targets.executorch.quantized.quantizer`), calibrated on the
calibration images, then ``convert_pt2e`` (a fake-quant graph: every quantize/dequantize pair
rounds as the runtime does, the arithmetic stays float32).

Each layer is tapped at its conv/linear op (found by the node's ``nn_module_stack``, so the
names are :func:`~ssc_deploy.export.quantize.layers.quantizable_layers`' module names), in the
fp32 graph and in the int8 graph, on every calibration image. Two errors per layer:

- **isolated** (``sqnr_db``, ``cosine``; the table's sort key): the layer alone in int8. Its
  input is the fp32 net's activation, rounded by the input quantization the layer has in the
  int8 net, and its weights are int8; every other layer's error is kept out. This names the
  layers that lose most by themselves, the ones worth ``--keep-float``.
- **accumulated** (``chain_sqnr_db``, ``chain_cosine``): the same op in the whole int8 chain,
  with every earlier layer's error in its input. This is what explains an accuracy drop; it
  mostly falls with depth, so it ranks the deepest layers worst whatever their own part.

The measured value is the op's output before its activation (ReLU, ReLU6) and before its own
output rounding: that rounding is the next layer's input quantization and is counted there.
SQNR is pooled over all calibration images, ``10 log10(sum ref^2 / sum (int8 - ref)^2)``, and
so is the cosine. Layers in ``keep_float`` stay float32 in the int8 graph (excluded from
quantization): their isolated error is 0 (inf dB, cosine 1); their chain error is still measured.

torchao's numeric debugger (``prepare_for_propagation_comparison``) is not used for the taps:
it keys a conv by whichever converted node last inherited its source (the output dequantize of
a bare conv, the pre-ReLU conv of a fused one), so its points would not be comparable between
layers, and it keeps every node's output of every image in memory.

The ONNX and TFLite int8 files use their own quantizers (ONNX Runtime's ``quantize_static``, the
AI Edge Quantizer: other activation signedness and calibration methods, same per-channel int8
weights), so for them the table is the same scheme's estimate, not their exact rounding.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
from torch import fx, nn

from ssc_deploy.errors import SscDeployError, missing_package

from ssc_deploy.export.quantize.layers import check_keep_float, quantizable_layers

LAYER_OPS = (torch.ops.aten.conv2d.default, torch.ops.aten.linear.default)
SCHEME = "PT2E XNNPACKQuantizer: int8 weights per channel (symmetric), int8 activations per tensor"


@dataclass(frozen=True)
class LayerError:
    """One layer's int8 error against fp32: isolated (``sqnr_db``, ``cosine``) and accumulated (``chain_*``)."""

    name: str
    kind: str
    sqnr_db: float
    cosine: float
    chain_sqnr_db: float = math.nan
    chain_cosine: float = math.nan
    float_kept: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready fields (inf and nan as the strings ``"inf"``/``"nan"``, which JSON lacks)."""
        return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def layer_kind(module: nn.Module) -> str:
    """A short description of a Conv2d or Linear: ``conv 3x3 /2``, ``dwconv 3x3``, ``conv 1x1 g4``, ``linear``."""
    if isinstance(module, nn.Linear):
        return "linear"
    kh, kw = module.kernel_size
    depthwise = module.groups > 1 and module.groups == module.in_channels == module.out_channels
    kind = f"{'dwconv' if depthwise else 'conv'} {kh}x{kw}"
    if module.groups > 1 and not depthwise:
        kind += f" g{module.groups}"
    stride = module.stride[0] if module.stride[0] == module.stride[1] else "x".join(map(str, module.stride))
    return kind + (f" /{stride}" if stride != 1 else "")


class _Tap(nn.Module):
    """Sits on one graph edge: keeps the last value that passed, or passes ``feed`` instead when set."""

    def __init__(self) -> None:
        super().__init__()
        self.value: torch.Tensor | None = None
        self.feed: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.feed is not None:
            return self.feed
        self.value = x.detach().clone()  # a later in-place op (relu_, hardtanh_) must not change it
        return x


def _module_name(node: fx.Node) -> str | None:
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return None
    path = list(stack.values())[-1][0]
    return path[len("L['self'].") :] if path.startswith("L['self'].") else path


def _is_op(node: Any, name: str) -> bool:
    return isinstance(node, fx.Node) and node.op == "call_function" and name in str(node.target)


def _insert_tap(gm: fx.GraphModule, src: fx.Node, user: fx.Node | None) -> _Tap:
    """A tap on the edge ``src -> user`` (``user`` None: on every use of ``src``)."""
    tap = _Tap()
    attr = f"_qerr_tap_{len([m for m in gm.children() if isinstance(m, _Tap)])}"
    gm.add_module(attr, tap)
    anchor = user if user is not None else src.next
    with gm.graph.inserting_before(anchor):
        node = gm.graph.call_module(attr, (src,))
    if user is not None:
        user.replace_input_with(src, node)
    else:
        src.replace_all_uses_with(node, delete_user_cb=lambda u: u is not node)
    return tap


def _tap_layers(gm: fx.GraphModule, names: Sequence[str], kept: Sequence[str]) -> dict[str, list[tuple[_Tap, _Tap]]]:
    """``{layer: [(input tap, output tap), ...]}`` (one pair per call of the layer) inserted into ``gm``.

    The input tap of an int8 layer sits before its input's quantize node, so a fed fp32 value is
    rounded as the layer's input is; for a float layer it sits right at the op's input.
    """
    wanted = set(names)
    taps: dict[str, list[tuple[_Tap, _Tap]]] = {}
    for node in [n for n in gm.graph.nodes if n.op == "call_function" and n.target in LAYER_OPS]:
        name = _module_name(node)
        if name not in wanted:
            continue
        act = node.args[0]
        if name not in kept and _is_op(act, "dequantize") and _is_op(act.args[0], "quantize"):
            tap_in = _insert_tap(gm, act.args[0].args[0], act.args[0])
        else:
            tap_in = _insert_tap(gm, act, node)
        taps.setdefault(name, []).append((tap_in, _insert_tap(gm, node, None)))
    missing = [n for n in names if n not in taps]
    if missing:
        raise SscDeployError(f"quant error: layer '{missing[0]}' has no conv or linear op in the exported graph")
    gm.graph.lint()
    gm.recompile()
    return taps


def fake_quant_graph(net: nn.Module, example: torch.Tensor, calib: torch.Tensor,
                     keep_float: Sequence[str] = ()) -> fx.GraphModule:
    """``net`` as PT2E's converted fake-quant graph (the ExecuTorch scheme), calibrated on ``calib`` one image per call."""
    return _convert(torch.export.export(net, (example,), strict=False).module(), calib, keep_float)


def _convert(captured: fx.GraphModule, calib: torch.Tensor, keep_float: Sequence[str]) -> fx.GraphModule:
    """``torch.export``'s module ``captured`` (changed in place) prepared, calibrated and converted."""
    try:
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        from ssc_deploy.export.targets.executorch.quantized import quantizer
    except ImportError as err:  # the scheme is ExecuTorch's XNNPACK quantizer (with torchao's PT2E)
        from ssc_deploy.export.targets.executorch.target import SPEC

        raise missing_package(err.name or SPEC.dist, SPEC.extra) from None
    prepared = prepare_pt2e(captured, quantizer(keep_float))
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(calib[i : i + 1])
    return convert_pt2e(prepared)


class _Score:
    """Pooled sums for SQNR and cosine of ``actual`` against ``ref`` over many calls."""

    def __init__(self) -> None:
        self.signal = self.noise = self.dot = self.power = 0.0

    def add(self, ref: torch.Tensor, actual: torch.Tensor) -> None:
        r, a = ref.double(), actual.double()
        self.signal += float((r * r).sum())
        self.noise += float(((a - r) ** 2).sum())
        self.dot += float((a * r).sum())
        self.power += float((a * a).sum())

    def sqnr_db(self) -> float:
        if self.noise == 0.0:
            return math.inf
        return -math.inf if self.signal == 0.0 else 10.0 * math.log10(self.signal / self.noise)

    def cosine(self) -> float:
        if self.signal == 0.0 or self.power == 0.0:
            return 1.0 if self.signal == self.power else 0.0
        return self.dot / math.sqrt(self.signal * self.power)


def _check_inputs(example: torch.Tensor, calib: torch.Tensor) -> None:
    if example.ndim != 4 or example.shape[0] != 1:
        raise SscDeployError(f"quant error: the example input must be (1, C, H, W), got {tuple(example.shape)}")
    if calib.ndim != 4 or len(calib) < 1 or calib.shape[1:] != example.shape[1:]:
        raise SscDeployError(f"quant error: calibration images must be (N>=1, {', '.join(map(str, example.shape[1:]))}), "
                             f"got {tuple(calib.shape)}")


def layer_errors(net: nn.Module, example: torch.Tensor, calib: torch.Tensor, *,
                 keep_float: Sequence[str] = ()) -> list[LayerError]:
    """The int8 error of every Conv2d/Linear of the deployment ``net`` on ``calib``, worst (lowest isolated SQNR) first.

    ``net``: the eval, BN-folded, already lowered deployment net; ``example`` (1,C,H,W);
    ``calib`` (N,C,H,W) normalised images, run one per call. ``keep_float`` layers stay float32
    (checked with :func:`check_keep_float`). See the module docstring for what is measured.
    """
    _check_inputs(example, calib)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # batch-1 calls on small images: a second thread only spins
    try:
        return _layer_errors(net.eval(), example, calib, keep_float)
    finally:
        torch.set_num_threads(threads)


def _layer_errors(net: nn.Module, example: torch.Tensor, calib: torch.Tensor,
                  keep_float: Sequence[str]) -> list[LayerError]:
    names = quantizable_layers(net)
    kept = check_keep_float(net, keep_float)
    ref = torch.export.export(net, (example,), strict=False).module()
    quant = _convert(copy.deepcopy(ref), calib, kept)
    ref_taps, quant_taps = _tap_layers(ref, names, kept), _tap_layers(quant, names, kept)
    chain = {n: _Score() for n in names}
    alone = {n: _Score() for n in names}
    with torch.no_grad():
        for i in range(len(calib)):
            x = calib[i : i + 1]
            ref(x)
            quant(x)
            for n in names:
                for (_, r_out), (_, q_out) in zip(ref_taps[n], quant_taps[n]):
                    chain[n].add(r_out.value, q_out.value)
            for n in names:
                for (r_in, _), (q_in, _) in zip(ref_taps[n], quant_taps[n]):
                    q_in.feed = r_in.value
            quant(x)
            for n in names:
                for (_, r_out), (q_in, q_out) in zip(ref_taps[n], quant_taps[n]):
                    alone[n].add(r_out.value, q_out.value)
                    q_in.feed = None
    modules = dict(net.named_modules())
    errors = [LayerError(n, layer_kind(modules[n]), alone[n].sqnr_db(), alone[n].cosine(),
                         chain[n].sqnr_db(), chain[n].cosine(), n in kept) for n in names]
    return sorted(errors, key=lambda e: (e.sqnr_db, e.chain_sqnr_db))


def format_worst(errors: Sequence[LayerError], n: int = 3) -> str:
    """The ``n`` worst int8 layers on one line: ``stage3.0.conv4.0 (12.1 dB), fc (14.0 dB)`` (isolated SQNR)."""
    worst = [e for e in errors if not e.float_kept][: max(n, 0)]
    if not worst:
        return "no int8 layers"
    return ", ".join(f"{e.name} ({e.sqnr_db:.1f} dB)" for e in worst)


__all__ = ["LayerError", "SCHEME", "fake_quant_graph", "format_worst", "layer_errors", "layer_kind"]
