"""Artifacts a model lacks, exported for the runtimes asked; a failing target is recorded, not raised."""

from __future__ import annotations

from pathlib import Path

from ssc_deploy.errors import SscDeployError
from ssc_deploy.runtimes import by_runtime, by_target

from .model_under_test import Artifact, Model
from .rows import one_line


def _export(model: Model, runtimes: list[str], out_dir: Path, lowering: str, data: str | None) -> list:
    """Export from the checkpoint when there is one (its facts go in the manifest), else the net in memory."""
    from ssc_deploy.export import export_model, export_module

    targets = tuple(by_runtime(rt).target for rt in runtimes)
    options = dict(targets=targets, out_dir=out_dir, lowering=lowering, data=data, progress=False, force=True)
    if model.checkpoint is not None:
        return export_model(str(model.checkpoint), **options)
    import torch

    return export_module(model.module, torch.zeros(1, *model.input_shape), name=model.name, class_names=model.classes,
                         mean=model.mean, std=model.std, trained=model.trained, **options)


def export_for(model: Model, runtimes: list[str], out_dir: Path, lowering: str, data: str | None = None) -> None:
    """Export ``model`` for each runtime it lacks an artifact for; failures go in export_errors.

    All targets are exported together (one rewrite and one reference pass); when that fails,
    each target is tried alone so one failing target does not cost the others.
    """
    todo = [rt for rt in runtimes if rt not in model.artifacts]
    if not todo or not model.can_export:
        return
    try:
        import ssc_deploy.export  # noqa: F401
    except ImportError:
        for rt in todo:
            model.export_errors[rt] = "export is not available in this installation (ssc_deploy.export)"
        return
    dest = out_dir / model.file_stem
    try:
        results = _export(model, todo, dest, lowering, data)
    except Exception:  # noqa: BLE001 - retried one target at a time below, to name the failing one
        results = []
        for rt in todo:
            try:
                results += _export(model, [rt], dest, lowering, data)
            except SscDeployError as err:
                model.export_errors[rt] = f"export failed: {err}"
            except Exception as err:  # noqa: BLE001 - an exporter crash fails this row only
                model.export_errors[rt] = f"export failed: {type(err).__name__}: {one_line(err)}"
    for res in results:
        man = dict(res.manifest or {})
        rt = man.get("runtime") or by_target(res.target).runtime
        layout = (man.get("input") or {}).get("layout", "NCHW")
        model.artifacts[rt] = Artifact(Path(res.artifact), rt, layout=layout, manifest=man or None)
        mm = man.get("model") or {}
        model.params = model.params if model.params is not None else mm.get("params")
        model.macs = model.macs if model.macs is not None else mm.get("macs")
