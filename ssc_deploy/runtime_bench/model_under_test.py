"""A model under test: its artifacts (one per runtime and precision), its evaluation inputs and what is known of
it; and a job, one measurement of one of its artifacts."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .precision import precision_order


@dataclass
class Artifact:
    """One exported file and what runs it."""

    path: Path
    runtime: str
    layout: str = "NCHW"
    manifest: dict[str, Any] | None = None
    precision: str = "fp32"  # "fp32" | "int8" | "fp16" (the manifest's; fp32 for files without one)

    @property
    def bytes(self) -> int:
        """The file's size on disk."""
        return self.path.stat().st_size


# Artifacts and export failures are keyed by (runtime, precision).
ArtifactKey = tuple[str, str]


@dataclass
class Model:
    """One model under test with its artifacts (one per runtime and precision) and its evaluation inputs."""

    name: str
    family: str
    role: str  # "candidate" | "baseline"
    trained: bool
    input_shape: list[int] | None  # C, H, W
    mean: list[float] | None = None
    std: list[float] | None = None
    classes: list[str] | None = None
    params: int | None = None
    macs: int | None = None
    test_top1: float | None = None  # PyTorch accuracy of the checkpoint, when known
    checkpoint: Path | None = None
    artifacts: dict[ArtifactKey, Artifact] = field(default_factory=dict)
    inputs: Path | None = None
    has_reference: bool = False
    notes: list[str] = field(default_factory=list)
    export_errors: dict[ArtifactKey, str] = field(default_factory=dict)
    exportable: bool = False  # exported for runtimes it lacks (checkpoints; artifacts only with --runtime)
    module: Any = None  # the PyTorch net in memory, when one was built or loaded (never serialised)

    @property
    def file_stem(self) -> str:
        """The stem of this model's files in the work directory.

        Names come from manifests and checkpoints, files anyone may have written: they are data,
        never path parts. The stem is a slug of the name (letters, digits, ``-``, ``_``) and a hash
        of name and role, so distinct models never share a file and no name can leave the directory.
        """
        slug = re.sub(r"[^A-Za-z0-9_-]+", "-", self.name)[:40].strip("-_") or "model"
        digest = hashlib.sha256(f"{self.name}\0{self.role}".encode("utf-8", "surrogatepass")).hexdigest()[:10]
        return f"{slug}-{digest}.{self.role}"

    def has_runtime(self, runtime: str) -> bool:
        """True when the model has an artifact of any precision for ``runtime``."""
        return any(rt == runtime for rt, _ in self.artifacts)

    def precisions(self, runtime: str) -> list[str]:
        """The precisions of the model's artifacts for ``runtime``, fp32 first."""
        return sorted((p for rt, p in self.artifacts if rt == runtime), key=precision_order)

    @property
    def can_export(self) -> bool:
        """True when artifacts it lacks may be exported: asked for, and a net to export from."""
        return self.exportable and (self.checkpoint is not None or self.module is not None)

    def describe(self) -> dict[str, Any]:
        """The model's entry in the result's ``models`` list."""
        return {
            "name": self.name, "family": self.family, "role": self.role, "trained": self.trained,
            "input_shape": self.input_shape, "params": self.params, "macs": self.macs,
            "test_top1": self.test_top1, "checkpoint": str(self.checkpoint) if self.checkpoint else None,
            "artifacts": {rt if p == "fp32" else f"{rt}:{p}": str(a.path) for (rt, p), a in self.artifacts.items()},
            "notes": self.notes,
        }


@dataclass
class Job:
    """One measurement: a model's artifact for one runtime and precision at one thread count, by one source."""

    model: Model
    runtime: str
    threads: int
    source: str = "device-runner"  # or "native-tool"
    precision: str = "fp32"

    @property
    def artifact(self) -> Artifact | None:
        """The file this job measures (None when it could not be exported)."""
        return self.model.artifacts.get((self.runtime, self.precision))
