"""Bring your own SSC-Net: the deployment rewrite on a traced graph, for modules the zoo did not build.

:func:`foreign_rewrite` traces any ``nn.Module`` with ``torch.export`` (:func:`rewrite_program`
takes an ``ExportedProgram``, e.g. one loaded from a ``.pt2``), finds the SSC kernels (k x k
convs with one non-zero per (out, in) slice at a position fixed per input channel: shift +
1x1 conv, k*k fewer MACs) and the shifts written as pad + slice + concat or roll + mask, and
returns a module of ``Shift`` + ``nn.Conv2d`` + ``nn.BatchNorm2d`` calls that the deployment
rewrite folds and lowers like a zoo net. A zoo net, or one with nothing to rewrite, comes
back as it is.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.models import layers
from ssc_deploy.models.modes import kept_mode

from ssc_deploy.export.foreign.graph import program_graph, trace_module
from ssc_deploy.export.foreign.rewrite import ConvReport, ForeignReport, ShiftReport, rewrite_graph

__all__ = ["ConvReport", "ForeignReport", "ForeignRewrite", "ShiftReport", "foreign_rewrite", "is_zoo_net",
           "rewrite_program"]

_OURS = (layers.Shift, layers.ChannelShuffle, layers.MaskedConv2d)


@dataclass(frozen=True)
class ForeignRewrite:
    """The module to export and what the rewrite found (None: a zoo net, not traced)."""

    module: nn.Module
    report: ForeignReport | None


def is_zoo_net(model: nn.Module) -> bool:
    """True for a module built from the zoo's own layers (the module-level rewrite handles it)."""
    return isinstance(getattr(model, "model_name", None), str) or any(isinstance(m, _OURS) for m in model.modules())


def rewrite_program(program: torch.export.ExportedProgram) -> ForeignRewrite:
    """The rewritten graph module of ``program`` (always a graph module, even with nothing found)."""
    gm = program_graph(program)
    report = rewrite_graph(gm)
    return ForeignRewrite(gm, report)


@torch.no_grad()
def foreign_rewrite(model: nn.Module, example: torch.Tensor) -> ForeignRewrite:
    """``model`` traced on ``example`` (1, 3, S, S) and rewritten; ``model`` itself when it is a zoo
    net or when no SSC kernel or shift was found (it then exports exactly as before)."""
    if is_zoo_net(model):
        return ForeignRewrite(model, None)
    try:
        with kept_mode(model):
            found = rewrite_program(trace_module(model, example[:1]))
    except SscDeployError as err:  # exported as before (the ONNX exporter traces differently); said so
        return ForeignRewrite(model, ForeignReport(untraced=str(err)))
    except Exception as err:  # noqa: BLE001 - a graph the rewrite cannot read exports as before, said so
        if os.environ.get("SSC_DEPLOY_DEBUG"):
            raise
        first = one_line(err)
        return ForeignRewrite(model, ForeignReport(untraced=f"the graph rewrite failed ({type(err).__name__}: {first})"))
    return found if found.report.changed else ForeignRewrite(model, found.report)
