"""What is exported: the module, its example input and the facts its manifests record (checked)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.models.complexity import net_complexity
from ssc_deploy.models.modes import eval_mode
from ssc_deploy.models.registry import known_family

from ssc_deploy.export.manifest import SourceInfo
from ssc_deploy.export.options import ModelFacts

CHANNELS = 3  # the verification images are RGB


@dataclass(frozen=True)
class ExportSubject:
    """A module ready to export, with everything its manifests say about it."""

    model: nn.Module
    example: torch.Tensor  # (1, 3, S, S) float32
    name: str
    family: str | None
    classes: list[str]
    mean: list[float]
    std: list[float]
    trained: bool
    source: SourceInfo
    source_data: str | None  # the data the weights were trained on, if known
    params: int
    macs: int | None

    @property
    def in_size(self) -> int:
        """Input height and width in pixels."""
        return int(self.example.shape[-1])


def describe_module(model: nn.Module, example_input: torch.Tensor, facts: ModelFacts | None = None) -> ExportSubject:
    """Check ``model``, ``example_input`` and ``facts`` and fill in the defaults; one-line error for bad input.

    ``facts.name`` (of the files) defaults to the zoo name the module carries (``model.model_name``),
    which also gives the family; ``class_names`` default to ``"0"``, ``"1"``, ... (one per
    logit) and ``mean``/``std`` to the default data's.
    """
    from ssc_deploy.data import DEFAULT_MEAN, DEFAULT_STD
    from ssc_deploy.data.normalization import check_mean_std

    if not isinstance(model, nn.Module):
        raise SscDeployError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    example = _check_example(example_input)
    zoo_name = getattr(model, "model_name", None)
    facts = ModelFacts() if facts is None else facts
    if not isinstance(facts, ModelFacts):
        raise SscDeployError(f"facts must be a ModelFacts, got {type(facts).__name__}")
    name = _check_name(facts.name or zoo_name or type(model).__name__.lower())
    _check_budget(model, name, example.shape[-1])
    num_classes = _num_logits(model, example)
    classes = _check_class_names(facts.class_names, num_classes)
    mean, std = check_mean_std(DEFAULT_MEAN if facts.mean is None else facts.mean,
                               DEFAULT_STD if facts.std is None else facts.std,
                               CHANNELS, "export_module")
    params, macs = net_complexity(model, example.shape[-1], CHANNELS)
    return ExportSubject(model=model, example=example, name=name, family=known_family(zoo_name or name),
                         classes=classes, mean=mean, std=std, trained=bool(facts.trained),
                         source=SourceInfo(checkpoint=None if facts.checkpoint is None else str(facts.checkpoint),
                                           checkpoint_sha256=facts.checkpoint_sha256, test_top1=facts.test_top1),
                         source_data=facts.source_data, params=params, macs=macs)


def _check_budget(model: nn.Module, name: str, in_size: int) -> None:
    """Refuse a module whose run on the example would need more than the size budget, before it runs."""
    from ssc_deploy.models.budget import check_module

    try:
        check_module(f"{name} on a {in_size}x{in_size} example_input", model, in_size)
    except SscDeployError:
        raise
    except Exception:  # noqa: BLE001 - a module the shape trace cannot follow is run as it is
        pass


def _check_class_names(class_names: Sequence[str] | None, num_classes: int) -> list[str]:
    """One non-empty string per logit (default ``"0"``, ``"1"``, ...): a bare string or ``None``
    entries are refused, not turned into characters or ``"None"``."""
    if class_names is None:
        return [str(i) for i in range(num_classes)]
    if isinstance(class_names, (str, bytes)) or not isinstance(class_names, Sequence):
        raise SscDeployError(f"class_names must be a list of strings, got {type(class_names).__name__}")
    bad = [c for c in class_names if not isinstance(c, str) or not c.strip()]
    if bad:
        raise SscDeployError(f"class_names must be non-empty strings, got {bad[0]!r}")
    classes = list(class_names)
    if len(classes) != num_classes:
        raise SscDeployError(f"class_names has {len(classes)} names but the model outputs {num_classes} logits")
    return classes


def _check_example(example) -> torch.Tensor:
    shape = tuple(example.shape) if isinstance(example, torch.Tensor) else None
    if (shape is None or example.dtype != torch.float32 or len(shape) != 4 or shape[:2] != (1, CHANNELS)
            or shape[2] != shape[3] or shape[2] < 1):
        got = f"a {example.dtype} tensor of shape {shape}" if shape is not None else type(example).__name__
        raise SscDeployError(f"example_input must be a float32 tensor of shape (1, {CHANNELS}, S, S), got {got}")
    return example.detach().cpu()


def _check_name(name: str) -> str:
    name = str(name).strip()
    if not name or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise SscDeployError(f"name '{name}' cannot name an artifact file")
    return name


def _num_logits(model: nn.Module, example: torch.Tensor) -> int:
    try:
        with torch.no_grad(), eval_mode(model):
            out = model(example)
    except Exception as err:  # noqa: BLE001 - a module that cannot run its example is one line
        first = one_line(err)
        raise SscDeployError(f"the model fails on example_input ({type(err).__name__}: {first})") from None
    if not isinstance(out, torch.Tensor) or out.dim() != 2 or out.shape[0] != 1:
        got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise SscDeployError(f"the model must return (1, num_classes) logits for example_input, got {got}")
    return int(out.shape[1])
