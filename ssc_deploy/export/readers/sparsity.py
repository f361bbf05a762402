"""``inspect --sparsity``: each convolution of a program or checkpoint, its zeros, and what the graph rewrite makes of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError


def _load(path: Path):
    """``(module, in_size, name)`` of a ``.pt2`` program or a checkpoint."""
    if path.suffix.lower() == ".pt2":
        from ssc_deploy.export.readers.program import load_program

        loaded = load_program(path)
        return loaded.module, loaded.in_size, path.stem
    from ssc_deploy.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    return ckpt.build_model().eval(), ckpt.in_size, ckpt.model_name


def sparsity_report(path: str | Path) -> dict[str, Any]:
    """Per conv of the file's traced graph: shape, groups, fraction of exact-zero weights, whether the rewrite
    turns it into shift + 1x1 conv (else why not), MACs before/after; the shifts found; totals.

    Zoo nets are traced too (their shifts then show as recognised shifts, their SSC layers as 1x1 convs).
    """
    import torch

    from ssc_deploy.export.foreign import rewrite_program
    from ssc_deploy.export.foreign.graph import trace_module

    path = Path(path)
    if path.is_dir():
        raise SscDeployError(f"{path}: is a directory, not a program or checkpoint")
    module, size, name = _load(path)
    with torch.no_grad():
        report = rewrite_program(trace_module(module, torch.zeros(1, 3, size, size))).report
    before = sum(c.macs_before for c in report.convs)
    after = sum(c.macs_after for c in report.convs)
    return {"file": str(path), "model": name, "in_size": size, **report.to_dict(),
            "conv_macs_before": before, "conv_macs_after": after, "lines": report.lines()}
