"""The export's progress bar on the real stderr (the converters' own output is silenced meanwhile)."""

from __future__ import annotations

import contextlib
import os
from typing import Iterable, Iterator, TypeVar

T = TypeVar("T")


class ExportProgress:
    """One bar: the rewrite, then each target, then done; every method is a no-op when disabled."""

    def __init__(self, bar, name: str, total: int) -> None:
        self._bar, self._name = bar, name
        self._task = bar.add_task(f"{name}: rewrite", total=total) if bar is not None else None

    def step(self, description: str) -> None:
        """Finish the current step and show ``description`` for the next."""
        if self._bar is not None:
            self._bar.update(self._task, advance=1, description=f"{self._name}: {description}")

    def each(self, targets: Iterable[T], doing: str) -> Iterator[T]:
        """Yield each target, one step per target (``"<target> <doing>"``), then step to done."""
        for target in targets:
            self.step(f"{target} {doing}")
            yield target
        self.step("done")


@contextlib.contextmanager
def export_progress(enabled: bool, name: str, n_targets: int) -> Iterator[ExportProgress]:
    """The progress of exporting ``name`` to ``n_targets`` targets (a bar only when ``enabled``)."""
    if not enabled:
        yield ExportProgress(None, name, 0)
        return
    from rich.console import Console
    from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    # A private handle on the real stderr: the converters write to fd 2, which is silenced meanwhile.
    with os.fdopen(os.dup(2), "w", closefd=True) as stream:
        with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), TimeElapsedColumn(),
                      console=Console(file=stream), transient=True) as bar:
            yield ExportProgress(bar, name, 1 + n_targets)
