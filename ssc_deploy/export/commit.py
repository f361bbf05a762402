"""Export step 4, commit: the scratch directory every target is staged in, and moving the verified
files from it into place once all targets passed."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ssc_deploy.errors import SscDeployError, raise_if_stopped

from ssc_deploy.export.manifest import Parity, manifest_path
from ssc_deploy.export.sidecars import sidecars
from ssc_deploy.export.stage import StagedArtifact
from ssc_deploy.export.validate import ArtifactKey, OutputPlan


@dataclass
class ExportResult:
    """One verified artifact on disk and its manifest."""

    target: str
    artifact: Path
    manifest_path: Path
    manifest: dict[str, Any]
    parity: Parity
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0
    precision: str = "fp32"

    @property
    def key(self) -> ArtifactKey:
        """The target and precision of this file."""
        return ArtifactKey(self.target, self.precision)


class ExportIncomplete(SscDeployError):
    """Some int8/fp16 files failed (their gate, or their export); the files that passed were written.

    ``results``: the files written; ``failed``: each failed file's one-line reason. Exit code 3.
    """

    def __init__(self, results: list[ExportResult], failed: list[str]) -> None:
        written = ", ".join(str(r.key) for r in results) or "none"
        super().__init__(f"{failed[0]} (written: {written}" + (f"; {len(failed) - 1} more failed: see above)"
                                                                if len(failed) > 1 else ")"), exit_code=3)
        self.results = results
        self.failed = failed


@contextlib.contextmanager
def staging(plan: OutputPlan, name: str) -> Iterator[Path]:
    """A scratch directory inside ``plan.out_dir``, removed afterwards with whatever is left in it.

    An output directory this export created is removed again when nothing was committed to it.
    """
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}.export.", dir=plan.out_dir))
    try:
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if plan.created:
            with contextlib.suppress(OSError):
                plan.out_dir.rmdir()  # only succeeds when empty


def commit(staged: Sequence[StagedArtifact], plan: OutputPlan) -> list[ExportResult]:
    """Move each staged artifact and its manifest to its final path (replacing what ``--force`` allowed)."""
    raise_if_stopped()
    results: list[ExportResult] = []
    for item in staged:
        final = plan.finals[item.key]
        try:
            os.replace(item.path, final)
            for staged_file in sidecars(item.path):  # the manifest, and the app files beside it (.ort)
                if staged_file.exists():
                    os.replace(staged_file, final.with_name(staged_file.name))  # scratch names are the final names
        except OSError as err:
            done = ", ".join(str(r.key) for r in results) or "none"
            raise SscDeployError(f"{final}: cannot move the verified {item.key} artifact into place "
                                 f"({err.strerror or err}); targets written: {done}") from None
        m = item.manifest
        results.append(ExportResult(item.target, final, manifest_path(final), m.to_dict(), m.parity,
                                    m.warnings, item.seconds, item.precision))
    return results
