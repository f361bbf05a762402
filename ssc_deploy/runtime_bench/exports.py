"""Artifacts a model lacks, exported for the runtimes and precisions asked; a failing target is recorded, not raised."""

from __future__ import annotations

from pathlib import Path

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.runtimes import by_runtime, by_target

from .jobs import job_precisions
from .model_under_test import Artifact, Model


def _export(model: Model, runtimes: list[str], precision: str, out_dir: Path, lowering: str,
            data: str | None) -> list:
    """Export from the checkpoint when there is one (its facts go in the manifest), else the net in memory."""
    from ssc_deploy.export import ModelFacts, VerifyOptions, export_model, export_module

    targets = tuple(by_runtime(rt).target for rt in runtimes)
    options = dict(targets=targets, precisions=(precision,), out_dir=out_dir, lowering=lowering,
                   verify=VerifyOptions(data=data), progress=False, force=True)
    if model.checkpoint is not None:
        return export_model(str(model.checkpoint), **options)
    import torch

    facts = ModelFacts(name=model.name, class_names=model.classes, mean=model.mean, std=model.std,
                       trained=model.trained)
    return export_module(model.module, torch.zeros(1, *model.input_shape), facts, **options)


def export_for(model: Model, runtimes: list[str], out_dir: Path, lowering: str, data: str | None = None,
               precisions: list[str] | None = None) -> None:
    """Export ``model`` for each runtime and precision it lacks an artifact for; failures go in export_errors.

    ``precisions``: those asked (``None``: fp32 where the model has no file for a runtime). Each
    precision's targets are exported together (one rewrite and one reference pass); when that
    fails, each target is tried alone so one failing target does not cost the others.
    """
    if not model.can_export:
        return
    todo = {}
    for rt in runtimes:
        for prec in job_precisions(model, rt, precisions):
            if (rt, prec) not in model.artifacts:
                todo.setdefault(prec, []).append(rt)
    if not todo:
        return
    try:
        import ssc_deploy.export  # noqa: F401
    except ImportError:
        for prec, rts in todo.items():
            for rt in rts:
                model.export_errors[(rt, prec)] = "export is not available in this installation (ssc_deploy.export)"
        return
    dest = out_dir / model.file_stem
    for prec, rts in todo.items():
        for res in _export_each(model, rts, prec, dest, lowering, data):
            _add_artifact(model, res)


def _export_each(model: Model, runtimes: list[str], precision: str, dest: Path, lowering: str,
                 data: str | None) -> list:
    """The export results of every runtime in one call, else one call a runtime (failures recorded)."""
    try:
        return _export(model, runtimes, precision, dest, lowering, data)
    except Exception:  # noqa: BLE001 - retried one target at a time below, to name the failing one
        pass
    results = []
    for rt in runtimes:
        try:
            results += _export(model, [rt], precision, dest, lowering, data)
        except SscDeployError as err:
            model.export_errors[(rt, precision)] = f"export failed: {err}"
        except Exception as err:  # noqa: BLE001 - an exporter crash fails this row only
            model.export_errors[(rt, precision)] = f"export failed: {type(err).__name__}: {one_line(err)}"
    return results


def _add_artifact(model: Model, res) -> None:
    """One export result as the model's artifact (its manifest's runtime, precision and layout)."""
    man = dict(res.manifest or {})
    rt = man.get("runtime") or by_target(res.target).runtime
    prec = man.get("precision") or "fp32"
    layout = (man.get("input") or {}).get("layout", "NCHW")
    model.artifacts[(rt, prec)] = Artifact(Path(res.artifact), rt, layout=layout, manifest=man or None, precision=prec)
    mm = man.get("model") or {}
    model.params = model.params if model.params is not None else mm.get("params")
    model.macs = model.macs if model.macs is not None else mm.get("macs")
