"""Parameter and multiply-accumulate counts, for the model table, export manifests and benchmarks."""

from __future__ import annotations

import torch
from torch import nn

from .layer_calls import layer_calls
from .layers import MaskedConv2d


# Graph ops whose weight (and bias) arguments are learnable: (op name, argument positions).
_WEIGHTED_OPS = {"conv2d": (1, 2), "convolution": (1, 2), "linear": (1, 2), "batch_norm": (1, 2),
                 "native_batch_norm": (1, 2), "_native_batch_norm_legit_no_training": (1, 2), "layer_norm": (2, 3),
                 "addmm": (0, 2)}
_CONV_OPS = ("conv2d", "convolution")


def _op_name(node: torch.fx.Node) -> str | None:
    """``conv2d`` for ``torch.ops.aten.conv2d.default`` (None for anything that is not an aten call)."""
    target = node.target
    if node.op != "call_function" or not isinstance(target, torch._ops.OpOverload) or target.namespace != "aten":
        return None
    return target._schema.name.split("::")[-1]


def _is_program_graph(model: nn.Module) -> bool:
    """A graph module whose weights are plain tensors (a loaded ``.pt2``): no parameters, no conv modules."""
    return isinstance(model, torch.fx.GraphModule) and next(model.parameters(), None) is None


def _graph_params(gm: torch.fx.GraphModule) -> int:
    """Elements of the tensors that are a conv's, a linear's or a norm's weight or bias (running
    statistics are not learnable)."""
    seen: dict[str, int] = {}
    for node in gm.graph.nodes:
        positions = _WEIGHTED_OPS.get(_op_name(node) or "", ())
        for i in positions:
            arg = node.args[i] if i < len(node.args) else None
            if isinstance(arg, torch.fx.Node) and arg.op == "get_attr":
                value = _attr(gm, str(arg.target))
                if isinstance(value, torch.Tensor):
                    seen[str(arg.target)] = value.numel()
    return sum(seen.values())


def _attr(gm: nn.Module, target: str):
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part, None)
    return obj


class _MacCounter(torch.fx.Interpreter):
    """Runs a graph on ``meta`` tensors (shapes only) and adds up its conv and matmul MACs."""

    def __init__(self, gm: torch.fx.GraphModule) -> None:
        super().__init__(gm)
        self.macs = 0
        self.output_bytes = 0  # float32 conv/matmul outputs

    def get_attr(self, target, args, kwargs):
        value = super().get_attr(target, args, kwargs)
        return torch.empty_like(value, device="meta") if isinstance(value, torch.Tensor) else value

    def run_node(self, n: torch.fx.Node):
        out = super().run_node(n)
        name = _op_name(n)
        if isinstance(out, torch.Tensor) and name in (*_CONV_OPS, "linear", "mm", "addmm", "matmul"):
            args, _ = self.fetch_args_kwargs_from_env(n)
            self.output_bytes += 4 * out.numel()
            if name in _CONV_OPS:
                self.macs += out.numel() * args[1][0].numel()  # each output: in/groups x kh x kw
            else:
                self.macs += out.numel() * int((args[1] if name == "addmm" else args[0]).shape[-1])
        return out


def _graph_counts(gm: torch.fx.GraphModule, in_size: int, in_channels: int) -> tuple[int, int]:
    """(MACs, float32 conv/matmul output bytes) of a program graph, traced on ``meta`` tensors."""
    counter = _MacCounter(gm)
    inputs = [torch.empty(1, in_channels, in_size, in_size, device="meta")
              for node in gm.graph.nodes if node.op == "placeholder"]
    with torch.no_grad():
        counter.run(*inputs)
    return int(counter.macs), int(counter.output_bytes)


def _graph_macs(gm: torch.fx.GraphModule, in_size: int, in_channels: int) -> int:
    return _graph_counts(gm, in_size, in_channels)[0]


def estimate_outputs(shapes: dict[str, tuple[int, ...]], modules: dict[str, nn.Module]) -> tuple[int, int]:
    """(dense MACs, float32 output bytes) of the convs and linears with these output shapes."""
    macs = act = 0
    for name, shape in shapes.items():
        elements = 1
        for d in shape:
            elements *= d
        act += 4 * elements
        macs += layer_macs(modules[name], shape, dense=True)
    return macs, act


def size_estimate(model: nn.Module, in_size: int, in_channels: int = 3) -> tuple[int, int, int]:
    """(parameters, dense MACs, float32 conv/linear output bytes) of one image through ``model``,
    from shapes alone (``meta`` tensors): nothing the size of an activation is allocated."""
    if _is_program_graph(model):
        return (_graph_params(model), *_graph_counts(model, in_size, in_channels))
    macs, act = estimate_outputs(output_shapes(model, in_size, in_channels), dict(model.named_modules()))
    return sum(p.numel() for p in model.parameters()), macs, act


def count_params(model: nn.Module) -> int:
    """Learnable parameters; a :class:`MaskedConv2d` counts only the weights its mask keeps; a
    loaded ``.pt2`` program (weights as plain tensors) counts its convs', linears' and norms' ones."""
    if _is_program_graph(model):
        return _graph_params(model)
    total = sum(p.numel() for p in model.parameters())
    for m in model.modules():
        if isinstance(m, MaskedConv2d):
            total -= int(m.mask.numel() - m.mask.sum().item())
    return int(total)


def output_shapes(model: nn.Module, in_size: int = 32, in_channels: int = 3) -> dict[str, tuple[int, ...]]:
    """Output shape of every Conv2d and Linear for one 1 x in_channels x in_size x in_size input.

    Shapes only (``meta`` tensors, see :func:`layer_calls`): no arithmetic, the model is untouched.
    """
    example = torch.empty(1, in_channels, in_size, in_size, device="meta")
    return {call.name: call.out_shape for call in layer_calls(model, example, shapes_only=True)}


def layer_macs(module: nn.Module, out_shape: tuple[int, ...], dense: bool = False) -> int:
    """MACs of one Conv2d / Linear producing ``out_shape`` (batch 1); a MaskedConv2d counts only
    its kept connections unless ``dense`` (then its full kernel: an upper bound)."""
    if isinstance(module, MaskedConv2d) and not dense:
        return int(out_shape[-2] * out_shape[-1] * module.mask.sum().item())
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        elements = 1
        for d in out_shape[1:]:
            elements *= d
        return elements * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        rows = 1
        for d in out_shape[1:-1]:
            rows *= d
        return rows * module.in_features * module.out_features
    return 0


def count_macs(model: nn.Module, in_size: int = 32, in_channels: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a 1 x ``in_channels`` x in_size x in_size input.

    Counts Conv2d (output elements x in/groups x kh x kw; a MaskedConv2d only its kept
    connections) and Linear (in x out) layers; BN, activations, pooling, shifts and shuffles
    are free here (BN folds into the conv at export).
    """
    if _is_program_graph(model):
        return _graph_macs(model, in_size, in_channels)
    shapes = output_shapes(model, in_size, in_channels)
    modules = dict(model.named_modules())
    return sum(layer_macs(modules[name], shape) for name, shape in shapes.items())


def net_complexity(model: nn.Module, in_size: int, in_channels: int = 3) -> tuple[int, int | None]:
    """(parameters, MACs) of ``model`` on square ``in_size`` inputs; MACs None when the counter
    cannot run the module (they are informative: a module the counter cannot trace still exports)."""
    params = count_params(model)
    try:
        return params, int(count_macs(model, in_size=in_size, in_channels=in_channels))
    except Exception:  # noqa: BLE001 - see the docstring
        return params, None

