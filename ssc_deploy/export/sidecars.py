"""The files written beside an artifact, moved into place with it and refused like it without ``--force``."""

from __future__ import annotations

from pathlib import Path

from ssc_deploy.runtimes import by_suffix

from ssc_deploy.export.manifest import manifest_path


def sidecars(artifact: str | Path) -> list[Path]:
    """``artifact``'s manifest, then the files its target makes for apps beside it (onnx: the
    ``.ort`` file and its operator config; ``companions`` of the target module)."""
    from ssc_deploy.export.targets import TARGETS

    artifact = Path(artifact)
    spec = by_suffix(artifact)
    module = TARGETS.get(spec.target) if spec is not None else None
    return [manifest_path(artifact), *(module.companions(artifact) if hasattr(module, "companions") else [])]
