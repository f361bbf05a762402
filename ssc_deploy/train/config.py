"""Every option of one training run in one dataclass (torch-free).

``ssc-deploy train`` builds a :class:`TrainConfig`, :func:`ssc_deploy.train.train_model` takes
it, the quickstart builds one a model, and ``ssc-deploy train --nproc N`` hands it to the
``torchrun`` entry point (:mod:`ssc_deploy.train.ddp`) as command-line flags generated from the
fields, which that entry point parses back with a parser generated from the same fields.

>>> cfg = TrainConfig(model="ssc-net-1-9", epochs=2, progress=False)
>>> cfg.to_argv()
['--model', 'ssc-net-1-9', '--epochs', '2', '--no-progress']
>>> TrainConfig.from_argv(cfg.to_argv()) == cfg
True
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from ssc_deploy.errors import SscDeployError

_PATH_FIELDS = ("out", "resume", "init")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``None`` means the recipe's default for the data (or, on resume, the stored value)."""

    model: str | None = None  # zoo name; on resume taken from the checkpoint
    data: str | None = None  # data spec; default digits, on resume the checkpoint's data
    epochs: int | None = None
    out: Path | None = None  # checkpoint to write; default the resume file or <model>.pt
    batch_size: int | None = None  # global batch, split across data-parallel ranks
    lr: float | None = None
    weight_decay: float | None = None
    recipe: str | None = None  # recipe name (paper, digits-fast); default per data, on resume the stored one
    seed: int = 0
    resume: Path | None = None  # continue this checkpoint's run exactly
    init: Path | None = None  # start from these weights, with a fresh optimizer
    in_size: int = 32
    progress: bool = True
    epoch_lines: bool = False  # print one line a finished epoch on stdout (for a parent reading a worker)
    num_workers: int = 0
    max_batches: int | None = None  # cap on batches an epoch (quick runs; kept on resume)
    eval_every: int = 0  # also evaluate every N epochs (0: only at the end)
    eval_limit: int | None = None  # evaluate on the first N test images only
    threads: int | None = None  # torch CPU threads a process; default the fastest of 1..cores, timed
    device: str | None = None  # cpu or cuda; default cuda when available
    force: bool = False  # replace an existing ``out``

    def __post_init__(self) -> None:
        for name in _PATH_FIELDS:
            value = getattr(self, name)
            if value is not None and not isinstance(value, Path):
                object.__setattr__(self, name, Path(value) if str(value) else None)

    def output_path(self) -> Path:
        """The checkpoint file this run writes: ``out``, else the ``resume`` file, else ``<model>.pt``."""
        if self.out is not None:
            return self.out
        if self.resume is not None:
            return self.resume
        return Path(f"{require_model(self.model).strip().lower()}.pt")

    def to_argv(self) -> list[str]:
        """Command-line flags for the fields that differ from their defaults (parsed back by :meth:`from_argv`)."""
        argv: list[str] = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value == f.default:
                continue
            if isinstance(value, bool):
                argv.append(_flag(f.name, negated=not value))
            else:
                argv += [_flag(f.name), str(value)]
        return argv

    @classmethod
    def from_argv(cls, argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> TrainConfig:
        """The config that :meth:`to_argv` wrote (``argv`` None: ``sys.argv[1:]``)."""
        args = (parser or build_parser()).parse_args(argv)
        return cls(**{f.name: getattr(args, f.name) for f in dataclasses.fields(cls)})


def require_model(name: str | None) -> str:
    """``name``, refused in one line when a run names no architecture."""
    if not name:
        raise SscDeployError("name the architecture with --model (or pass --resume CHECKPOINT)")
    return name


def _flag(name: str, negated: bool = False) -> str:
    return ("--no-" if negated else "--") + name.replace("_", "-")


def _value_type(annotation: Any) -> type:
    """``int`` from ``int | None`` (the type argparse converts a flag's value with)."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        (inner,) = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner
    return annotation


def build_parser(prog: str | None = None, description: str | None = None,
                 required: Sequence[str] = ()) -> argparse.ArgumentParser:
    """An argparse parser with one flag a :class:`TrainConfig` field (``--no-X`` for fields on by default)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        kind = _value_type(hints[f.name])
        if kind is bool:
            action = "store_false" if f.default else "store_true"
            parser.add_argument(_flag(f.name, negated=bool(f.default)), dest=f.name, action=action)
        else:
            parser.add_argument(_flag(f.name), dest=f.name, type=kind, default=f.default,
                                required=f.name in required)
    return parser
