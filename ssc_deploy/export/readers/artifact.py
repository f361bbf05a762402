"""What an exported artifact is: its manifest, when present, and the op histogram read from the file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ssc_deploy.errors import SscDeployError, one_line
from ssc_deploy.quiet import quiet_native
from ssc_deploy.runtimes import SUFFIXES, by_suffix

from ssc_deploy.export.manifest import SUFFIX, load_manifest, manifest_path


def target_of(path: str | Path) -> str:
    """The target a file name belongs to, from its suffix."""
    spec = by_suffix(path)
    if spec is None:
        expected = f"{', '.join(SUFFIXES[:-1])} or {SUFFIXES[-1]}"
        raise SscDeployError(f"{path}: unknown artifact type '{Path(path).suffix.lower()}' (expected {expected})")
    return spec.target


def inspect_artifact(path: str | Path) -> dict[str, Any]:
    """``{"file", "target", "bytes", "manifest" (or None), "op_histogram", "metadata"}`` for an artifact.

    The histogram is read from the file itself with the target's own tools (ONNX nodes,
    .pte kernel and delegate calls, .tflite builtin ops); ``metadata`` is what the file carries
    itself (:func:`~ssc_deploy.export.readers.embedded.embedded_metadata`; None: nothing).
    """
    from ssc_deploy.export.readers.embedded import embedded_metadata
    from ssc_deploy.export.targets import TARGETS

    path = Path(path)
    if path.name.endswith(SUFFIX):
        path = path.with_name(path.name[: -len(SUFFIX)])
    if not path.exists():
        raise SscDeployError(f"{path}: no such file")
    if path.is_dir():
        raise SscDeployError(f"{path}: is a directory, not an artifact")
    target = target_of(path)
    mod = TARGETS[target]
    with quiet_native():
        mod.check_installed()
    manifest = load_manifest(path) if manifest_path(path).exists() else None
    try:
        with quiet_native():
            ops = mod.op_histogram(path)
    except SscDeployError:
        raise
    except Exception as err:  # noqa: BLE001 - an unreadable file is one line
        first = one_line(err)
        raise SscDeployError(f"{path}: not a readable {target} file ({first})") from None
    with quiet_native():
        metadata = embedded_metadata(target, path)
    return {"file": str(path), "target": target, "bytes": path.stat().st_size, "manifest": manifest, "op_histogram": ops,
            "metadata": metadata}
