"""onnxruntime's per-op profiler (the runtime table's ``profiler_module`` of onnx; ssc_deploy/op_profile.py).

Its session profiler's node times of the optimized graph; convs are classed by kernel size and
grouping (dense / grouped (k ch/group) / depthwise, NCHWc where the layout transformer took them)
and their MACs are read from the weights.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np

from ssc_deploy.errors import SscDeployError
from ssc_deploy.op_profile import Op
from ssc_deploy.sessions import Session
from ssc_deploy.timing import median

from ssc_deploy.export.targets.onnx.session import OPTIMIZED_GRAPH


def onnx_conv_class(op_type: str, attrs: dict, weight_dims: list[int] | None) -> str:
    """'Conv 1x1 dense', 'Conv 3x3 depthwise', 'Conv 1x1 grouped (9 ch/group)' or the op type."""
    if "Conv" not in op_type or not weight_dims or len(weight_dims) != 4:
        return op_type
    group = int(attrs.get("group", 1))
    k = f"{weight_dims[2]}x{weight_dims[3]}"
    if group == 1:
        kind = "dense"
    elif weight_dims[1] == 1:
        kind = "depthwise"
    else:
        kind = f"grouped ({weight_dims[1]} ch/group)"
    layout = " NCHWc" if op_type.startswith("com.microsoft.nchwc") else ""
    return f"Conv {k} {kind}{layout}"


def _unblocked_weight(nchwc_name: str, producers: dict, inits: dict[str, list[int]]) -> list[int] | None:
    """Weight dims of the original conv an NCHWc conv node came from (its own weights are padded
    to the channel block), given the source graph's tensor -> producing node and initializer
    dims. The layout transformer names the node after the fused chain's output tensor: a Conv's,
    or a ReLU/Clip's right after one. None when that chain cannot be traced."""
    node = producers.get(nchwc_name.removesuffix("_nchwc"))
    if node is not None and node.op_type in ("Relu", "Clip"):
        node = producers.get(node.input[0])
    if node is None or node.op_type != "Conv" or len(node.input) < 2:
        return None
    return inits.get(node.input[1])


def read(session: Session, runs: int) -> tuple[list[float], list[Op]]:
    """The last ``runs`` runs' wall times (ms) and ops of a profiled ``.onnx`` session: node times of the
    optimized graph, each with its median time a run, convs with their MACs."""
    import onnx

    path = session.path
    optimized = onnx.load(str(session.profile_dir / OPTIMIZED_GRAPH))
    records = json.loads(session.end_profile().read_text())
    # Keep the node events of the last ``runs`` runs (the profiler records from session creation).
    run_spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in records if e.get("name") == "model_run")[-runs:]
    if not run_spans:
        raise SscDeployError(f"{path.name}: onnxruntime's profile holds no runs")
    first = run_spans[0][0]
    records = [e for e in records if e.get("ts", -1) >= first]
    wall = [(end - start) / 1e3 for start, end in run_spans]
    inits = {i.name: list(i.dims) for i in optimized.graph.initializer}
    nodes = {n.name: n for n in optimized.graph.node}
    source = onnx.load(str(path), load_external_data=False).graph
    source_producers = {out: n for n in source.node for out in n.output}
    source_inits = {i.name: list(i.dims) for i in source.initializer}
    times: dict[str, list[float]] = defaultdict(list)
    info: dict[str, tuple[str, float | None]] = {}
    for e in records:
        if e.get("cat") != "Node" or not e["name"].endswith("_kernel_time"):
            continue
        name = e["name"][: -len("_kernel_time")]
        times[name].append(e["dur"] / 1e3)
        if name in info:
            continue
        node = nodes.get(name)
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute} if node else {}
        weight = inits.get(node.input[1]) if node is not None and len(node.input) > 1 else None
        op = (f"{node.domain}.{node.op_type}" if node.domain else node.op_type) if node else e["args"].get("op_name", "?")
        if node is not None and node.domain == "com.microsoft.nchwc":
            true_weight = _unblocked_weight(name, source_producers, source_inits)
        else:
            true_weight = weight
        macs = None
        out_shape = e["args"].get("output_type_shape") or []
        if true_weight and len(true_weight) == 4 and out_shape:
            dims = next(iter(out_shape[0].values()))
            spatial = int(np.prod(dims[2:4])) if len(dims) >= 4 else 1
            macs = float(spatial * int(np.prod(true_weight)))
        info[name] = (onnx_conv_class(op, attrs, true_weight or weight), macs)
    ops = [Op(name, info[name][0], median(v), info[name][1]) for name, v in times.items()]
    return wall, ops
