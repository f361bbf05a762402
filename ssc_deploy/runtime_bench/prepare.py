"""Preparing a run: sources and baselines resolved into models with artifacts for the runtimes measured."""

from __future__ import annotations

from pathlib import Path

from ssc_deploy.errors import SscDeployError

from .baselines import add_baselines
from .exports import export_for
from .model_under_test import Model
from .runtime_choice import runtimes_to_measure
from .settings import BenchSettings
from .sources import check_same_input, classify_sources, load_sources


def prepare_models(sources: list[str | Path], settings: BenchSettings, work: Path) -> tuple[list[Model], list[str]]:
    """Resolve sources and baselines into models with artifacts for the runtimes asked.

    Returns the models and the runtimes to measure. Raises :class:`SscDeployError` for bad input.
    """
    classified = classify_sources(sources)
    if not classified and not settings.baselines:
        raise SscDeployError("nothing to benchmark: pass artifacts or checkpoints (or --baselines)")
    baseline_names = settings.baseline_names()
    # Runtimes or precisions asked by name: artifacts with their checkpoint are exported for what they lack.
    models = load_sources(classified, baseline_names, bool(settings.runtimes or settings.precisions))
    # A checkpoint passed beside its artifacts (for PyTorch parity) asks for no other runtime.
    runtimes = runtimes_to_measure(settings.runtimes, models, any(not m.artifacts for m in models))
    add_baselines(models, baseline_names)
    check_same_input(models)
    for m in models:
        export_for(m, runtimes, work / "exports", settings.lowering, settings.data, settings.precisions)
    return models, runtimes
