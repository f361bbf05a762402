"""A traced program as a plain ``torch.fx`` graph: one input, one output, weights as ``get_attr``.

:func:`program_graph` copies the aten graph of an ``ExportedProgram`` into an
``fx.GraphModule`` whose parameters, buffers and lifted constants are buffers of the module
(no signature, no pytree), and :class:`Constants` evaluates the nodes that depend on those
weights only (``weight * mask``), so the rewrites see the kernel a convolution really uses.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import fx, nn

from ssc_deploy.errors import SscDeployError, one_line

# Graph bookkeeping the copy leaves out: shape assertions of the trace.
_DROPPED = {torch.ops.aten._assert_scalar.default, torch.ops.aten._assert_tensor_metadata.default}


def trace_module(model: nn.Module, example: torch.Tensor) -> torch.export.ExportedProgram:
    """``torch.export`` of ``model`` (eval mode) on ``example``; one-line error when it cannot trace."""
    try:
        return torch.export.export(model.eval(), (example,), strict=False)
    except Exception as err:  # noqa: BLE001 - an untraceable module is one line
        first = one_line(err)
        raise SscDeployError(f"torch.export cannot trace the model ({type(err).__name__}: {first})") from None


def attr_name(fqn: str) -> str:
    """A flat attribute name for a dotted weight name."""
    return "w_" + fqn.replace(".", "_")


def program_graph(program: torch.export.ExportedProgram) -> fx.GraphModule:
    """The program's graph with its weights as ``get_attr`` buffers of one flat module.

    The program must take one tensor and return one tensor (a classifier); ``meta['val']``
    (shapes) is kept on every node. The weights are the program's own tensors (not copied).
    """
    sig = program.graph_signature
    user_inputs = list(sig.user_inputs)
    if len(user_inputs) != 1:
        raise SscDeployError(f"the program takes {len(user_inputs)} inputs; one image tensor is supported")
    lifted = {**sig.inputs_to_parameters, **sig.inputs_to_buffers, **sig.inputs_to_lifted_tensor_constants}
    tensors = {**program.state_dict, **program.constants}
    root = nn.Module()
    graph = fx.Graph()
    env: dict[fx.Node, Any] = {}
    for node in program.graph.nodes:
        if node.op == "placeholder":
            if node.name in user_inputs:
                env[node] = graph.placeholder("x")
            elif node.name in lifted and isinstance(tensors.get(lifted[node.name]), torch.Tensor):
                fqn = lifted[node.name]
                name = attr_name(fqn)
                if not hasattr(root, name):
                    root.register_buffer(name, tensors[fqn].detach())
                env[node] = graph.get_attr(name)
                env[node].meta["fqn"] = fqn
            else:
                raise SscDeployError(f"the program's input {node.name} is neither the image nor a weight tensor")
            env[node].meta.update({k: v for k, v in node.meta.items() if k == "val"})
        elif node.op == "output":
            outs = node.args[0]
            if len(sig.user_outputs) != 1 or len(outs) != 1:
                raise SscDeployError(f"the program returns {len(sig.user_outputs)} outputs; one logits tensor is supported")
            graph.output(env[outs[0]])
        elif node.op == "call_function" and node.target in _DROPPED:
            continue
        elif node.op == "call_function":
            env[node] = graph.node_copy(node, lambda n: env[n])
        else:
            raise SscDeployError(f"the program has a '{node.op}' node ({node.name}); only aten calls are supported")
    gm = fx.GraphModule(root, graph)
    gm.graph.eliminate_dead_code()
    _any_batch(gm)
    gm.recompile()
    return gm.eval()


_BATCH_SIZED = {torch.ops.aten.view.default, torch.ops.aten.reshape.default, torch.ops.aten._unsafe_view.default,
                torch.ops.aten.expand.default}


def _any_batch(gm: fx.GraphModule) -> None:
    """A graph traced at batch 1 bakes the 1 into its reshapes; make it -1 there so any batch runs.

    Only where the input's first dimension is the batch of 1 and no other dimension is inferred.
    """
    if static_batch(gm) != 1:
        return
    for node in gm.graph.nodes:
        if node.op == "call_function" and node.target in _BATCH_SIZED:
            src, size = shape(node.args[0]), list(node.args[1])
            if src and src[0] == 1 and size and size[0] == 1 and -1 not in size[1:]:
                node.args = (node.args[0], [-1, *size[1:]], *node.args[2:])


def static_batch(gm: fx.GraphModule) -> int | None:
    """The batch size the graph's input was traced with, when it is a fixed number."""
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    val = x.meta.get("val")
    return int(val.shape[0]) if val is not None and isinstance(val.shape[0], int) else None


def input_shape(gm: fx.GraphModule) -> tuple[int, ...]:
    """The traced input shape (as ints)."""
    x = next(n for n in gm.graph.nodes if n.op == "placeholder")
    return tuple(int(d) for d in x.meta["val"].shape)


def shape(node: Any) -> tuple[int, ...] | None:
    """The traced shape of a node's value (None for non-tensors)."""
    val = node.meta.get("val") if isinstance(node, fx.Node) else None
    return tuple(int(d) for d in val.shape) if isinstance(val, torch.Tensor) else None


class Constants:
    """Values of the nodes computed from weights alone (memoized); None for the others."""

    def __init__(self, gm: fx.GraphModule) -> None:
        self.gm = gm
        self._values: dict[fx.Node, torch.Tensor | None] = {}

    def __call__(self, node: Any) -> torch.Tensor | None:
        if not isinstance(node, fx.Node):
            return None
        if node not in self._values:
            self._values[node] = self._evaluate(node)
        return self._values[node]

    def fqn(self, node: Any) -> str | None:
        """The weight name a constant node comes from (the first weight it reads)."""
        if not isinstance(node, fx.Node):
            return None
        if node.op == "get_attr":
            return node.meta.get("fqn", node.target)
        for arg in node.all_input_nodes:
            name = self.fqn(arg)
            if name:
                return name
        return None

    def _evaluate(self, node: fx.Node) -> torch.Tensor | None:
        if node.op == "get_attr":
            value = getattr(self.gm, node.target)
            return value if isinstance(value, torch.Tensor) else None
        if node.op != "call_function" or not isinstance(node.target, torch._ops.OpOverload):
            return None
        if torch.Tag.nondeterministic_seeded in node.target.tags or not node.all_input_nodes:
            return None
        if any(self(arg) is None for arg in node.all_input_nodes):
            return None
        args, kwargs = fx.node.map_arg((node.args, node.kwargs), self)
        with torch.no_grad():
            out = node.target(*args, **kwargs)
        return out if isinstance(out, torch.Tensor) else None
