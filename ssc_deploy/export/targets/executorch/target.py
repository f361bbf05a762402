"""ExecuTorch target: ``torch.export`` + XNNPACK partitioner to a ``.pte``; runs on ExecuTorch's runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import by_target
from ssc_deploy.sessions import load_runner, run_each

from ssc_deploy.export.targets.common import TargetExport, histogram, require, version_of
from ssc_deploy.export.targets.executorch.options import ExecutorchOptions

SPEC = by_target("executorch")
SUFFIX, RUNTIME = SPEC.suffix, SPEC.runtime
INPUT_NAME = "x"
OUTPUT_NAME = "output"

# Ops that only move or view data; anything else left outside XNNPACK runs on a portable kernel.
LAYOUT_OPS = frozenset({
    "getitem", "alias", "clone", "view_copy", "view", "reshape", "permute_copy", "transpose_copy",
    "t_copy", "expand_copy", "squeeze_copy", "unsqueeze_copy", "slice_copy", "select_copy", "cat",
    "constant_pad_nd", "_to_copy", "_to_dim_order_copy", "_clone_dim_order", "split_copy",
    "split_with_sizes_copy", "unbind_copy",
})


def check_installed() -> None:
    """Raise the one-line missing-package error unless executorch (with XNNPACK) imports."""
    require("executorch.exir", SPEC.dist, SPEC.extra)
    require("executorch.backends.xnnpack.partition.xnnpack_partitioner", SPEC.dist, SPEC.extra)


def runtime_version() -> str | None:
    """Installed version of ExecuTorch, or None."""
    return version_of(SPEC.dist)


def _op_type(target) -> str:
    name = getattr(target, "__name__", str(target))
    return name.split(".")[0]


def delegation_summary(graph_module) -> dict:
    """Delegation by op (from ExecuTorch's devtools): which edge ops XNNPACK took and which it left."""
    from executorch.devtools.backend_debug import get_delegation_info

    info = get_delegation_info(graph_module)
    by_op = {
        op: {"delegated": b.delegated, "not_delegated": b.non_delegated}
        for op, b in sorted(info.delegation_by_operator.items())
        if op != "getitem"
    }
    not_delegated = {op: v["not_delegated"] for op, v in by_op.items() if v["not_delegated"]}
    portable_compute = sorted(op for op in not_delegated if op not in LAYOUT_OPS)
    return {
        "backend": "XnnpackBackend",
        "delegated_subgraphs": info.num_delegated_subgraphs,
        "delegated_nodes": sum(v["delegated"] for v in by_op.values()),
        "not_delegated_nodes": sum(not_delegated.values()),
        "by_op": by_op,
        "not_delegated": not_delegated,
        "portable_compute_ops": portable_compute,
    }


def export(net, example, path: Path, options: ExecutorchOptions | None = None, *,
           metadata: dict | None = None) -> TargetExport:
    """Lower ``net`` with the XNNPACK partitioner and write the ``.pte`` program to ``path``.

    Compute ops left to portable kernels produce a warning, or an error with ``options.strict``.
    ``metadata`` is not stored in the program (the manifest beside it has it).
    """
    strict = (options or ExecutorchOptions()).strict
    import torch
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    ep = torch.export.export(net, (example,), strict=False)
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()])
    delegation = delegation_summary(edge.exported_program().graph_module)
    warnings = []
    if delegation["portable_compute_ops"]:
        msg = ("compute ops not delegated to XNNPACK (they run on portable kernels): "
               + ", ".join(f"{op} x{delegation['not_delegated'][op]}" for op in delegation["portable_compute_ops"]))
        if strict:
            raise SscDeployError(f"executorch: {msg} (--strict)")
        warnings.append(msg)
    program = edge.to_executorch()
    path.write_bytes(program.buffer)
    return program_info(example, delegation, warnings,
                        exporter={"torch": torch.__version__, "executorch": version_of(SPEC.dist),
                                  "partitioner": "XnnpackPartitioner"})


def program_info(example, delegation: dict, warnings: list[str], *, exporter: dict, **extra) -> TargetExport:
    """What the exporter reports of a written ``.pte``: NCHW I/O at ``example``'s shape, its ops from
    the delegation summary (``extra`` goes beside ``delegation`` in ``TargetExport.extra``)."""
    return TargetExport(
        input_name=INPUT_NAME,
        output_name=OUTPUT_NAME,
        input_shape=list(example.shape),
        layout="NCHW",
        op_histogram={op: v["delegated"] + v["not_delegated"] for op, v in delegation["by_op"].items()},
        exporter=exporter,
        extra={"delegation": delegation, **extra},
        warnings=warnings,
    )


def op_histogram(path: Path) -> dict[str, int]:
    """Operators the ``.pte`` program calls outside delegates, plus one entry per delegate call."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    program = deserialize_pte_binary(path.read_bytes())
    program = getattr(program, "program", program)
    names = []
    for plan in program.execution_plan:
        ops = [op.name for op in plan.operators]
        delegates = [d.id for d in plan.delegates]
        for chain in plan.chains:
            for ins in chain.instructions:
                args = ins.instr_args
                kind = type(args).__name__
                if kind == "KernelCall":
                    names.append(ops[args.op_index].split("::")[-1])
                elif kind == "DelegateCall":
                    names.append(f"delegate:{delegates[args.delegate_index]}")
    return histogram(names)


def run(path: Path, images: np.ndarray, nhwc: bool = False) -> np.ndarray:
    """Logits for each NCHW image (batch 1 each) through ExecuTorch's Python runtime, one thread
    (the export's verify step)."""
    return run_each(load_runner(RUNTIME, path), images, nhwc)
